use clap::Parser;

// The system allocator, deliberately: mimalloc cut a cold `apply`'s
// allocator instructions from 32% to 14%, but the long-running agent at
// 1,000 pods held 799 MiB instead of 161 MiB (BENCHMARKS.md, #19/#20).

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
