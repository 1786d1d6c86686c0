use clap::Parser;

fn main() {
    let cli = linx_agent::cli::Cli::parse();
    match linx_agent::cli::run(cli) {
        Ok(out) => print!("{out}"),
        Err(e) => {
            eprintln!("linx-agent: error: {e}");
            std::process::exit(2);
        }
    }
}
