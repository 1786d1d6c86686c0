use clap::Parser;

fn main() {
    let cli = linx_agent::cli::Cli::parse();
    match linx_agent::cli::run(cli) {
        Ok(done) => {
            print!("{}", done.stdout);
            std::process::exit(done.status);
        }
        Err(e) => {
            eprintln!("linx-agent: error: {e}");
            std::process::exit(2);
        }
    }
}
