use clap::Parser;

// Arguments first, before any runtime or client: `--help` and `--version`
// answer at once.
fn main() {
    let cli = kubectl_linx::Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubectl-linx: error: starting the runtime: {e}");
            std::process::exit(1);
        }
    };
    match rt.block_on(kubectl_linx::run(cli)) {
        Ok(status) => std::process::exit(status),
        Err(e) => {
            eprintln!("kubectl-linx: error: {e}");
            std::process::exit(1);
        }
    }
}
