//! The `linx-cni` binary: one CNI operation per run, as the container
//! runtime invokes it.

use std::io::{Read, Write};

fn main() {
    let env = linx_cni::plugin::Env::from_process();
    let mut stdin = Vec::new();
    // VERSION may come without input; any other operation without a
    // readable configuration fails in `run` with a decoding error.
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let out = linx_cni::plugin::run(&env, &stdin, &mut std::io::stderr());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out.stdout);
    let _ = stdout.flush();
    std::process::exit(out.status);
}
