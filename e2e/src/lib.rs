//! End-to-end tests of the built binaries; see `tests/` (binaries are
//! found or built by `linx_agent::testing::binary`). [`apiserver`]: a
//! fake Kubernetes API server the cluster flow can run against; [`node`]:
//! a node without Kubernetes (the agent fed by a pods file) for fault tests.

use std::time::{Duration, Instant};

mod admission;
pub mod apiserver;
pub mod node;

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
