//! `linx-agent trace` and `linx-agent log` against real namespaces joined
//! by a veth pair: what they print for real packets, and that the
//! namespace lists exactly as before after a normal end, Ctrl-C (SIGINT)
//! and SIGKILL.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use linx_netfilter::testing::TestNetns;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const FIREWALL: &str = "table inet linx {
	chain input {
		type filter hook input priority filter; policy drop;
		tcp dport 22 drop
		tcp dport { 80, 443 } accept
		udp dport 5555 log prefix \"seen \" group 7 drop
	}
}
";
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);

fn pair() -> (TestNetns, TestNetns) {
    let client = TestNetns::new();
    let server = TestNetns::new();
    client.link(&server, CLIENT, SERVER);
    server.load(FIREWALL);
    (client, server)
}

/// The agent with stdout read line by line on a thread.
struct Agent {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Agent {
    fn start(args: &[&str]) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_linx-agent"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run linx-agent");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Agent { child, lines }
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Exit status (None: killed by a signal) and the rest of stdout.
    fn wait(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "linx-agent did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        use std::io::Read;
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let out: Vec<String> = self.lines.iter().collect();
        if !status.success() && status.code() != Some(130) {
            eprintln!("stderr: {err}");
        }
        (status.code(), out.join("\n"))
    }
}

/// Waits until `cond` holds (the agent has set itself up).
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tracing_table(ns: &TestNetns) -> bool {
    ns.nft(&["list", "tables"]).unwrap().contains("linx-trace-")
}

fn syn(from: &TestNetns, port: u16) {
    from.connect(SocketAddr::from((SERVER, port)), Duration::from_millis(300));
}

#[test]
fn trace_prints_each_path_and_ends_after_count() {
    let (client, server) = pair();
    let before = server.ruleset_stateless();
    let path = server.path().display().to_string();
    let agent = Agent::start(&[
        "trace",
        "--netns",
        &path,
        "--match",
        "tcp dport { 22, 80 }",
        "--count",
        "2",
        "--timeout",
        "20s",
    ]);
    until("the tracing table", || tracing_table(&server));
    syn(&client, 22);
    syn(&client, 80);
    let (status, out) = agent.wait();
    assert_eq!(status, Some(0), "{out}");
    let handle = |rule: &str| server.handle_of(rule);
    let lines: Vec<&str> = out.lines().collect();
    let drop_line = format!(
        "DROP by inet linx input rule {}: tcp dport 22 drop",
        handle("tcp dport 22 drop")
    );
    let accept_line = format!(
        "ACCEPT by inet linx input rule {}: tcp dport {{ 80, 443 }} accept",
        handle("tcp dport { 80, 443 } accept")
    );
    assert!(lines.contains(&drop_line.as_str()), "{out}");
    assert!(lines.contains(&accept_line.as_str()), "{out}");
    assert!(
        lines[0].starts_with("trace id ") && lines[0].contains(" iif \"veth1\" "),
        "{out}"
    );
    assert!(
        lines[0].contains("ip saddr 10.79.0.1 ip daddr 10.79.0.2")
            && lines[0].contains("tcp dport 22 "),
        "{out}"
    );
    assert_eq!(server.ruleset_stateless(), before);
}

#[test]
fn trace_as_json_lines() {
    let (client, server) = pair();
    let path = server.path().display().to_string();
    let agent = Agent::start(&[
        "trace",
        "--netns",
        &path,
        "--match",
        "tcp dport 22",
        "--output",
        "json",
    ]);
    until("the tracing table", || tracing_table(&server));
    syn(&client, 22);
    let (status, out) = agent.wait();
    assert_eq!(status, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["verdict"], "drop", "{v}");
    assert_eq!(v["steps"][0]["text"], "tcp dport 22 drop", "{v}");
    assert_eq!(v["steps"][0]["index"], 0, "{v}");
    assert_eq!(v["headers"]["transport"]["dport"], 22, "{v}");
}

#[test]
fn trace_leaves_nothing_after_ctrl_c_or_sigkill() {
    let (_client, server) = pair();
    let before = server.ruleset_stateless();
    let path = server.path().display().to_string();
    for sig in [Signal::SIGINT, Signal::SIGKILL] {
        let agent = Agent::start(&[
            "trace",
            "--netns",
            &path,
            "--match",
            "tcp dport 5432",
            "--count",
            "0",
            "--timeout",
            "0",
        ]);
        until("the tracing table", || tracing_table(&server));
        assert_ne!(server.ruleset_stateless(), before);
        agent.signal(sig);
        let (status, _) = agent.wait();
        match sig {
            Signal::SIGINT => {
                assert_eq!(status, Some(130));
                assert_eq!(server.ruleset_stateless(), before, "after Ctrl-C");
            }
            _ => {
                assert_eq!(status, None, "killed");
                // The kernel deletes an owned table when its socket closes.
                until("the owned table to go", || {
                    server.ruleset_stateless() == before
                });
            }
        }
    }
}

fn bound_groups(ns: &TestNetns) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .args(["cat", "/proc/net/netfilter/nfnetlink_log"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn log_prints_logged_packets_until_ctrl_c_and_unbinds() {
    let (client, server) = pair();
    let path = server.path().display().to_string();
    let agent = Agent::start(&["log", "--netns", &path, "--group", "7", "--output", "json"]);
    until("group 7 bound", || !bound_groups(&server).trim().is_empty());
    let sport = client
        .netns()
        .run_in(|| {
            let s = UdpSocket::bind((CLIENT, 0)).unwrap();
            for i in 0..5u8 {
                s.send_to(&[i; 10], (SERVER, 5555)).unwrap();
            }
            s.local_addr().unwrap().port()
        })
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 5 {
        let line = agent
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a logged packet");
        got.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
    }
    agent.signal(Signal::SIGINT);
    let (status, _) = agent.wait();
    assert_eq!(status, Some(130));
    for (i, v) in got.iter().enumerate() {
        let p = &v["packet"];
        assert_eq!(p["group"], 7, "{v}");
        assert_eq!(p["prefix"], "seen ", "{v}");
        assert_eq!(p["seq"], i, "{v}");
        assert_eq!(p["indev"]["name"], "veth1", "{v}");
        assert_eq!(p["headers"]["network"]["src"], "10.79.0.1", "{v}");
        assert_eq!(p["headers"]["transport"]["sport"], sport, "{v}");
        assert_eq!(p["headers"]["transport"]["dport"], 5555, "{v}");
        assert_eq!(p["headers"]["transport"]["length"], 18, "{v}");
    }
    assert_eq!(bound_groups(&server).trim(), "", "group unbound");
}
