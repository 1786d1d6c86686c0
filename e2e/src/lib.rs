//! End-to-end tests of the built binaries; see `tests/` (binaries are
//! found or built by `linx_agent::testing::binary`). [`apiserver`]: a
//! fake Kubernetes API server the cluster flow can run against.

use std::time::{Duration, Instant};

mod admission;
pub mod apiserver;

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

/// A component's metrics (Prometheus text) from `addr`; empty when it
/// does not answer.
pub fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
