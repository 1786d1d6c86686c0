//! End-to-end tests of the built binaries; see `tests/` (binaries are
//! found or built by `linx_agent::testing::binary`). [`apiserver`]: a
//! fake Kubernetes API server the cluster flows can run against;
//! [`cluster`]: the setup those flows share; [`node`]: a node without
//! Kubernetes (the agent fed by a pods file) for fault tests.

use std::time::{Duration, Instant};

mod admission;
pub mod apiserver;
pub mod cluster;
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

/// The Prometheus text of the metrics endpoint at `addr` (empty when it
/// does not answer).
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

/// The value of the sample whose line starts with `series` (0 if none).
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The peak resident set of process `pid` (`VmHWM`), in KiB (0 when
/// unreadable).
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
