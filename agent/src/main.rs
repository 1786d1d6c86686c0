use clap::Parser;

// Parsing, compiling and printing allocate many small values: glibc's
// malloc and free were a third of a cold `apply`'s instructions (#20).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
