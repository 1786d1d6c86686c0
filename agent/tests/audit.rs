//! Audit mode and drop logs in a real namespace: the instrumented value is
//! a fixed point (what the agent pushes is what nft makes of its listing,
//! and a second reconcile sends nothing), packets that would be dropped
//! pass and reach the agent's NFLOG group with the tag of the rule that
//! would have dropped them, and switching Audit → Enforce is one minimal
//! patch.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linx_agent::desired::Policy;
use linx_agent::drops::{DropConfig, DropMetrics, Drops, PodRules};
use linx_agent::pod::Pod;
use linx_agent::rulesets::RulesetPolicy;
use linx_crds::instrument::LogKind;
use linx_crds::{FirewallRuleset, FirewallRulesetSpec};
use linx_netfilter::diff::Op;
use linx_netfilter::netlink::stream::Feed;
use linx_netfilter::nflog::{LogConfig, LogItem, Nflog};
use linx_netfilter::print::PrintOptions;
use linx_netfilter::reconcile::{Options, Reconciler};
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{Ruleset, Socket};

/// Rule 2 (line 6) drops TCP 22, rule 3 (line 7) UDP 9999; the policy
/// (chain declared at 2:8) drops the rest.
const WEB: &str = "table inet linx {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tct state established,related accept
\t\ttcp dport 80 accept
\t\ttcp dport 22 drop
\t\tudp dport 9999 drop
\t}
}
";
const GROUP: u16 = 77;
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 2);

fn resource(generation: i64, extra: serde_json::Value) -> FirewallRuleset {
    let mut spec = serde_json::json!({"podSelector": {}, "nft": WEB});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let spec: FirewallRulesetSpec = serde_json::from_value(spec).unwrap();
    let mut r = FirewallRuleset::new("web", spec);
    r.metadata.namespace = Some("shop".into());
    r.metadata.uid = Some("uid-web".into());
    r.metadata.generation = Some(generation);
    r
}

fn pod() -> Pod {
    Pod {
        uid: "uid-pod".into(),
        namespace: "shop".into(),
        name: "web-0".into(),
        ..Default::default()
    }
}

/// What the agent writes, kept for the test.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Lines {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn stateless(rs: &Ruleset) -> String {
    let opts = PrintOptions {
        stateless: true,
        ..Default::default()
    };
    linx_netfilter::print::ruleset(rs, &opts)
}

/// What nft lists after loading `text` in a fresh namespace.
fn nft_listing(text: &str) -> String {
    let ns = TestNetns::new();
    ns.load(text);
    ns.ruleset_stateless()
}

#[test]
fn audit_passes_logs_and_counts_then_enforce_is_one_minimal_patch() {
    let host_before = linx_netfilter::testing::host_ruleset();
    let (client, server) = (TestNetns::new(), TestNetns::new());
    client.link(&server, CLIENT, SERVER);

    let audit = RulesetPolicy::next(
        &RulesetPolicy::with_group(GROUP),
        &[resource(1, serde_json::json!({"enforcement": "Audit"}))],
    );
    let desired = audit.desired(&pod()).expect("selected");
    let mut rec = Reconciler::new(Socket::open(&server.netns()).unwrap(), Options::default());
    rec.reconcile(&desired).unwrap();
    // The fixed point: the kernel holds what nft makes of the value's
    // listing, and nothing is left to do.
    assert_eq!(
        server.ruleset_stateless(),
        nft_listing(&stateless(&desired))
    );
    assert!(rec.reconcile(&desired).unwrap().patch.is_empty());
    assert!(server
        .ruleset_stateless()
        .contains("tcp dport 22 log prefix \"linx:A:inet:linx:0:2\" group 77 counter accept"));

    // A would-be drop passes (a listener gets it) and reaches the group
    // with the tag of rule 3, line 7.
    let mut log = Nflog::bind(&server.netns(), &LogConfig::group(GROUP)).unwrap();
    let to = SocketAddr::from((SERVER, 9999));
    let listener = server
        .netns()
        .run_in(|| UdpSocket::bind(to).unwrap())
        .unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
        .netns()
        .run_in(|| {
            let s = UdpSocket::bind((CLIENT, 0)).unwrap();
            s.send_to(b"would drop", to).unwrap();
        })
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = listener.recv_from(&mut buf).expect("Audit lets it through");
    assert_eq!(&buf[..n], b"would drop");
    let packet = match log.next_timeout(Duration::from_secs(5)).unwrap() {
        Some(LogItem::Packet(p)) => p,
        Some(LogItem::Lost(n)) => panic!("lost {n}"),
        None => panic!("nothing logged"),
    };
    let prefix = packet.prefix.clone().unwrap();
    let rules = PodRules::of(&audit, &pod());
    let tag = rules.rulesets[0]
        .rules
        .tags
        .get(&prefix)
        .expect("a known tag");
    assert_eq!(
        (
            tag.kind,
            tag.rule.to_string(),
            tag.source.as_ref().unwrap().to_string()
        ),
        (
            LogKind::Audit,
            "inet linx input #3".to_owned(),
            "7:3".to_owned()
        )
    );

    // The agent's accounting of the same packet: one would-be drop of
    // rule 3, for the pod, and no line (drops are not logged here).
    let lines = Lines::default();
    let drops = Drops::with_output(
        DropConfig {
            group: GROUP,
            rate: 100,
            node: "n1".into(),
        },
        DropMetrics::default(),
        Box::new(lines.clone()),
    );
    drops.set_pods([(pod(), rules)]);
    drops.record("uid-pod", LogItem::Packet(packet));
    let counts = drops.counts("uid-web").unwrap();
    assert_eq!(counts.would_drop_total, 1);
    assert_eq!(counts.pods.get("uid-pod"), Some(&1));
    let top = counts.top();
    assert_eq!(
        (top[0].rule.as_str(), top[0].source.as_deref(), top[0].count),
        ("inet linx input #3", Some("7:3"), 1)
    );
    assert_eq!(lines.text(), "");

    // Enforce again: one edit, one patch of four operations (the chain's
    // policy, the policy log rule out, the audited rules back to their
    // drop); the kernel holds what nft makes of the plain file.
    let enforce = RulesetPolicy::next(&audit, &[resource(2, serde_json::json!({}))]);
    let plain = enforce.desired(&pod()).unwrap();
    let out = rec.reconcile(&plain).unwrap();
    let kinds: Vec<&str> = out
        .patch
        .ops
        .iter()
        .map(|o| match o {
            Op::UpdateChain { .. } => "update chain",
            Op::DeleteRule { .. } => "delete rule",
            Op::AddRule { .. } => "add rule",
            _ => "other",
        })
        .collect();
    let mut sorted = kinds.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "add rule",
            "add rule",
            "delete rule",
            "delete rule",
            "delete rule",
            "update chain"
        ],
        "{kinds:?}"
    );
    assert_eq!(server.ruleset_stateless(), nft_listing(WEB));
    drop(rec);
    drop(log);
    assert_eq!(linx_netfilter::testing::host_ruleset(), host_before);
}

#[test]
fn drop_logs_give_one_line_per_packet_within_the_rate_and_count_the_rest() {
    let (client, server) = (TestNetns::new(), TestNetns::new());
    client.link(&server, CLIENT, SERVER);
    let policy = RulesetPolicy::next(
        &RulesetPolicy::with_group(GROUP),
        &[resource(1, serde_json::json!({"logging": {"drops": true}}))],
    );
    let desired = policy.desired(&pod()).unwrap();
    let mut rec = Reconciler::new(Socket::open(&server.netns()).unwrap(), Options::default());
    rec.reconcile(&desired).unwrap();
    assert_eq!(
        server.ruleset_stateless(),
        nft_listing(&stateless(&desired))
    );
    let mut log = Nflog::bind(&server.netns(), &LogConfig::group(GROUP)).unwrap();

    const N: usize = 40;
    const RATE: u32 = 10;
    let to = SocketAddr::from((SERVER, 9999));
    client
        .netns()
        .run_in(|| {
            let s = UdpSocket::bind((CLIENT, 0)).unwrap();
            for i in 0..N {
                s.send_to(format!("{i}").as_bytes(), to).unwrap();
            }
        })
        .unwrap();
    let lines = Lines::default();
    let started = std::time::Instant::now();
    let drops = Drops::with_output(
        DropConfig {
            group: GROUP,
            rate: RATE,
            node: "n1".into(),
        },
        DropMetrics::default(),
        Box::new(lines.clone()),
    );
    drops.set_pods([(pod(), PodRules::of(&policy, &pod()))]);
    let mut got = 0;
    while got < N {
        match log.next_timeout(Duration::from_secs(5)).unwrap() {
            Some(item @ LogItem::Packet(_)) => {
                got += 1;
                drops.record("uid-pod", item);
            }
            Some(LogItem::Lost(n)) => panic!("lost {n}"),
            None => panic!("{got} of {N} packets logged"),
        }
    }
    drops.tick();
    let text = lines.text();
    let parsed: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (packets, summaries): (Vec<_>, Vec<_>) =
        parsed.iter().partition(|v| v.get("suppressed").is_none());
    // The bucket's second's worth (and what refilled while reading), the
    // rest held back and counted exactly.
    let refilled = (started.elapsed().as_secs_f64() * f64::from(RATE)).ceil() as usize;
    assert!(
        packets.len() >= RATE as usize && packets.len() <= RATE as usize + refilled,
        "{} lines: {text}",
        packets.len()
    );
    let suppressed: u64 = summaries
        .iter()
        .map(|v| v["suppressed"].as_u64().unwrap())
        .sum();
    assert_eq!(packets.len() as u64 + suppressed, N as u64);
    for p in &packets {
        assert_eq!(p["pod"]["namespace"], "shop");
        assert_eq!(p["pod"]["name"], "web-0");
        assert_eq!(p["pod"]["uid"], "uid-pod");
        assert_eq!(p["node"], "n1");
        assert_eq!(p["ruleset"], "web");
        assert_eq!(p["kind"], "drop");
        assert_eq!(p["verdict"], "drop");
        assert_eq!(
            p["rule"],
            serde_json::json!({"table": "inet linx", "chain": "input", "index": 3, "source": "7:3"})
        );
        assert_eq!(
            (&p["protocol"], &p["saddr"], &p["daddr"], &p["dport"]),
            (
                &serde_json::json!("udp"),
                &serde_json::json!(CLIENT.to_string()),
                &serde_json::json!(SERVER.to_string()),
                &serde_json::json!(9999)
            )
        );
    }
    assert_eq!(summaries[0]["pod"]["name"], "web-0");
}
