//! Rule tracing with real packets: a client namespace sends TCP SYNs
//! through a veth pair to a server namespace whose firewall drops one
//! port by policy (after a jump into a user chain and back), drops one by
//! a rule and accepts one. Each packet's path is compared with what
//! `nft monitor trace` printed for the same packet in the same run.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use linx_netfilter::packet::{Network, Transport};
use linx_netfilter::testing::TestNetns;
use linx_netfilter::trace::{Next, PacketPath, Session, SessionConfig, TraceKind};

const FIREWALL: &str = "table inet linx {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		tcp dport 22 jump admin
		tcp dport 23 drop
		tcp dport { 80, 443 } accept
	}

	chain admin {
		counter
		ip saddr 10.77.0.9 accept
	}
}
";

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

fn pair() -> (TestNetns, TestNetns) {
    let client = TestNetns::new();
    let server = TestNetns::new();
    client.link(&server, CLIENT, SERVER);
    server.load(FIREWALL);
    (client, server)
}

/// One SYN to `port` (the connection is refused, dropped or times out
/// before the first retransmission).
fn syn(from: &TestNetns, port: u16) {
    from.connect(SocketAddr::from((SERVER, port)), Duration::from_millis(300));
}

fn collect(s: &mut Session, n: usize) -> Vec<PacketPath> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        match s.next(Duration::from_millis(200)).unwrap() {
            Next::Path(p) => out.push(*p),
            Next::Pending => {}
            Next::Done => break,
        }
    }
    out
}

/// `nft monitor trace` inside a namespace, running until dropped.
struct Monitor(std::process::Child);

impl Monitor {
    fn start(ns: &TestNetns) -> Monitor {
        let child = ns.spawn_nft(&["monitor", "trace"]);
        // nft subscribes right after it starts; give it that moment.
        std::thread::sleep(Duration::from_millis(500));
        Monitor(child)
    }

    /// Stops nft and returns its lines, by trace id.
    fn lines(mut self) -> BTreeMap<u32, Vec<String>> {
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.0.kill();
        let mut text = String::new();
        self.0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let _ = self.0.wait();
        let mut by_id: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("trace id ") else {
                continue;
            };
            let (id, rest) = rest.split_once(' ').unwrap();
            by_id
                .entry(u32::from_str_radix(id, 16).unwrap())
                .or_default()
                .push(rest.trim_end().to_owned());
        }
        by_id
    }
}

/// nft's lines for the ruleset's own tables, in nft's words; counter
/// values left out (a path prints rules without their counters).
fn nft_steps(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| !l.contains(" packet: ") && !l.contains(" linx-trace-"))
        .map(|l| {
            let mut words: Vec<&str> = l.split(' ').collect();
            while let Some(i) = words.iter().position(|w| *w == "packets") {
                words.drain(i..i + 4); // packets N bytes M
            }
            words.join(" ")
        })
        .collect()
}

/// The same lines from a path: rule steps as `FAMILY TABLE CHAIN rule
/// TEXT (verdict V)`, policies as `... policy P`. The returns the kernel
/// reports at the end of a chain jumped to are not printed by nft.
fn our_steps(p: &PacketPath) -> Vec<String> {
    p.steps
        .iter()
        .filter(|s| s.kind != TraceKind::Return)
        .map(|s| {
            let v = linx_netfilter::print::verdict(s.verdict.as_ref().unwrap());
            match s.kind {
                TraceKind::Policy => format!("{} policy {v}", s.chain_name()),
                _ => format!(
                    "{} rule {} (verdict {v})",
                    s.chain_name(),
                    s.text.as_deref().unwrap()
                ),
            }
        })
        .collect()
}

#[test]
fn paths_of_dropped_and_accepted_packets_match_nft_monitor_trace() {
    let (client, server) = pair();
    let before = server.ruleset_stateless();
    let monitor = Monitor::start(&server);
    let mut cfg = SessionConfig::new("tcp dport { 22, 23, 80 }");
    cfg.count = Some(3);
    let mut session = Session::start(&server.netns(), &cfg).unwrap();
    assert!(
        server
            .ruleset_stateless()
            .contains(&format!("table inet {}", session.table().1)),
        "the session's table is loaded"
    );
    for port in [22, 23, 80] {
        syn(&client, port);
    }
    let paths = collect(&mut session, 3);
    assert!(matches!(session.next(Duration::ZERO).unwrap(), Next::Done));
    session.stop().unwrap();
    let nft = monitor.lines();
    assert_eq!(
        server.ruleset_stateless(),
        before,
        "the namespace lists as before"
    );
    assert_eq!(paths.len(), 3, "{paths:#?}");

    let port = |p: &PacketPath| match p.headers.transport {
        Some(Transport::Tcp { dport, .. }) => dport,
        ref t => panic!("not TCP: {t:?}"),
    };
    assert_eq!(paths.iter().map(port).collect::<Vec<_>>(), [22, 23, 80]);
    for p in &paths {
        assert!(
            matches!(p.headers.network, Some(Network::Ipv4 { src, dst, .. }) if src == CLIENT && dst == SERVER),
            "{p}"
        );
        assert_eq!(
            p.iif.as_ref().and_then(|i| i.name.as_deref()),
            Some("veth1")
        );
    }

    // Port 22: the jump into `admin`, its rule, the return, the policy.
    let jump = &paths[0];
    let kinds: Vec<_> = jump
        .steps
        .iter()
        .map(|s| (s.chain.as_str(), s.kind, s.index))
        .collect();
    assert_eq!(
        kinds,
        [
            ("input", TraceKind::Rule, Some(1)),
            ("admin", TraceKind::Rule, Some(0)),
            ("admin", TraceKind::Return, None),
            ("input", TraceKind::Policy, None),
        ],
        "{jump}"
    );
    assert_eq!(jump.summary(), "DROP by inet linx input: policy drop");
    let h = |rule| server.handle_of(rule);
    let expected = format!(
        "  inet linx input rule {}: tcp dport 22 jump admin (verdict jump admin)\n  inet linx admin rule {}: counter (verdict continue)\n  inet linx admin return (end of chain)\n  inet linx input policy drop\n",
        h("tcp dport 22 jump admin"),
        h("counter packets 1 bytes 60")
    );
    assert!(
        jump.to_string().contains(&expected),
        "{jump}\nexpected:\n{expected}"
    );

    // Port 23: dropped by a rule, which the path names as the kernel holds it.
    let dropped = &paths[1];
    let h23 = h("tcp dport 23 drop");
    assert_eq!(
        dropped.summary(),
        format!("DROP by inet linx input rule {h23}: tcp dport 23 drop")
    );
    let rule = dropped.deciding_step().unwrap().rule.as_ref().unwrap();
    assert_eq!(rule.handle, Some(h23));
    assert_eq!(dropped.deciding_step().unwrap().index, Some(2));

    // Port 80: accepted by the set rule.
    let accepted = &paths[2];
    assert_eq!(
        accepted.summary(),
        format!(
            "ACCEPT by inet linx input rule {}: tcp dport {{ 80, 443 }} accept",
            h("tcp dport { 80, 443 } accept")
        )
    );
    assert_eq!(accepted.deciding_step().unwrap().index, Some(3));

    for p in &paths {
        let theirs = nft
            .get(&p.id)
            .unwrap_or_else(|| panic!("nft saw no trace {:08x}: {nft:#?}", p.id));
        assert_eq!(our_steps(p), nft_steps(theirs), "trace {:08x}\n{p}", p.id);
    }
}

#[test]
fn a_session_leaves_the_namespace_as_it_was() {
    let (client, server) = pair();
    let before = server.ruleset_stateless();

    // Ended by its timeout, without a packet.
    let mut cfg = SessionConfig::new("udp dport 9");
    cfg.timeout = Some(Duration::from_millis(300));
    let mut s = Session::start(&server.netns(), &cfg).unwrap();
    assert_ne!(server.ruleset_stateless(), before);
    assert!(matches!(
        s.next(Duration::from_secs(5)).unwrap(),
        Next::Done
    ));
    s.stop().unwrap();
    assert_eq!(server.ruleset_stateless(), before);

    // Dropped while packets are being traced.
    let s = Session::start(&server.netns(), &SessionConfig::new("")).unwrap();
    syn(&client, 80);
    drop(s);
    assert_eq!(server.ruleset_stateless(), before);
}

#[test]
fn a_bad_match_is_refused_before_anything_is_loaded() {
    let (_client, server) = pair();
    let before = server.ruleset_stateless();
    let err = Session::start(&server.netns(), &SessionConfig::new("tcp dport 22 drop"))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("only matches are allowed"),
        "{err}"
    );
    let err = Session::start(&server.netns(), &SessionConfig::new("tcp dprt 22"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("--match"), "{err}");
    assert_eq!(server.ruleset_stateless(), before);
}
