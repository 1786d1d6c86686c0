//! End-to-end tests of the built binaries; see `tests/`. [`apiserver`]: a
//! fake Kubernetes API server the cluster flow can run against.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

mod admission;
pub mod apiserver;

/// A workspace binary: the path in `env` if set, else built here (once per
/// test process is cheap: cargo finds it fresh).
pub fn binary(package: &str, bin: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return p.into();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-q", "-p", package, "--bin", bin])
        .status()
        .expect("run cargo build");
    assert!(st.success(), "building {bin} failed");
    // target/debug/deps/TEST-HASH → target/debug/BIN
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target/debug")
        .join(bin)
}

/// Polls `f` every 20 ms until it holds; panics after `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free loopback address.
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local address").to_string()
}
