use clap::Parser;

// The system allocator, deliberately: mimalloc cut a cold `apply`'s
// allocator instructions from 32% to 14%, but the long-running agent at
// 1,000 pods held 799 MiB instead of 161 MiB (BENCHMARKS.md, #19/#20).

fn main() {
    let cli = linx_agent::cli::Cli::parse();
    use linx_agent::cli::Command;
    if matches!(
        cli.command,
        Command::Pull { .. } | Command::Apply { .. } | Command::Diff { .. }
    ) {
        tune_malloc_for_one_shot();
    }
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

/// A one-shot command allocates a lot at once and exits. glibc's defaults
/// suit a long-running process instead: they hand freed memory back to the
/// kernel and take it again (a `brk` and fresh page faults each time) and
/// grow a thread's heap a few pages per `mprotect` (a cold `apply` of
/// 10,000 rules made 261 `brk` and 2,345 `mprotect` calls, 40 ms of system
/// time). Growing in large steps and never trimming costs such a command
/// nothing; the agent's `run` keeps the defaults (its memory comes first).
fn tune_malloc_for_one_shot() {
    // SAFETY: mallopt only sets allocator parameters; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}
