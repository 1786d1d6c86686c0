//! Sets with a source, in the kernel: the node controller fed by the
//! policy with resolved elements, real namespaces standing in for pods.
//! A change of a list reaches each pod as an element delta in one
//! transaction: no rule recreated, counters kept, nothing else moved.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use linx_agent::desired::targets;
use linx_agent::rulesets::{AddressBook, RulesetPolicy};
use linx_agent::testing::{in_netns, ip, pod_uid, resolver, FakePod};
use linx_agent::{NodeController, Options, Pod, PodState};
use linx_crds::source::SetRef;
use linx_crds::{Family, FirewallRuleset};
use linx_netfilter::testing::TestNetns;

static NEXT: AtomicU32 = AtomicU32::new(1);

struct TestPod {
    ns: TestNetns,
    _fake: FakePod,
    pod: Pod,
}

fn test_pod(app: &str) -> TestPod {
    let ns = TestNetns::new();
    let uid = pod_uid(0x5e1_0000 + NEXT.fetch_add(1, Ordering::Relaxed));
    let fake = FakePod::start(&uid, false, Some(&ns));
    let pod = Pod {
        name: format!("db-{}", &uid[uid.len() - 4..]),
        namespace: "shop".into(),
        labels: [("app".to_string(), app.to_string())].into(),
        uid,
        ..Default::default()
    };
    TestPod {
        ns,
        _fake: fake,
        pod,
    }
}

const DB: &str = "table inet linx {
	set api {
		type ipv4_addr
		flags interval
		elements = { 10.9.0.0/16 }
	}
	chain input {
		type filter hook input priority filter; policy drop;
		ip saddr @api tcp dport 5432 counter accept
	}
	chain output {
		type filter hook output priority filter; policy accept;
		counter
	}
}
";

fn ruleset() -> FirewallRuleset {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1",
        "kind": "FirewallRuleset",
        "metadata": {"name": "db", "namespace": "shop", "uid": "uid-db", "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "nft": DB,
                 "sources": [{"family": "inet", "table": "linx", "set": "api",
                              "source": {"pods": [{"podSelector": {"matchLabels": {"app": "api"}}}]}}]},
    }))
    .unwrap()
}

fn book(addrs: &[&str]) -> AddressBook {
    let lists = BTreeMap::from([(
        SetRef::new(Family::Inet, "linx", "api"),
        Arc::from(addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>()),
    )]);
    BTreeMap::from([(("shop".into(), "uid-db".into()), Arc::new(lists))])
}

/// nft's listing of the set's elements after loading `DB` with `extra`
/// added: the oracle for what the kernel must hold.
fn elements_by_nft(extra: &[&str]) -> String {
    let scratch = TestNetns::new();
    scratch.load(DB);
    if !extra.is_empty() {
        scratch
            .nft(&[
                "add",
                "element",
                "inet",
                "linx",
                "api",
                &format!("{{ {} }}", extra.join(", ")),
            ])
            .unwrap();
    }
    set_listing(&scratch)
}

fn set_listing(ns: &TestNetns) -> String {
    ns.nft(&["list", "set", "inet", "linx", "api"])
        .unwrap_or_default()
}

/// The rules with their handles and counters (`nft -a list chain`).
fn rules(ns: &TestNetns) -> String {
    ["input", "output"]
        .iter()
        .map(|c| {
            ns.nft(&["-a", "list", "chain", "inet", "linx", c])
                .unwrap_or_default()
        })
        .collect()
}

/// Sends `n` datagrams to the namespace's own loopback: the output
/// chain's counter counts them.
fn traffic(ns: &TestNetns, n: usize) {
    ip(&["-n", ns.name(), "link", "set", "lo", "up"]);
    in_netns(ns, move || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..n {
            s.send_to(b"x", "127.0.0.1:9").unwrap();
        }
    });
}

async fn converged(node: &NodeController, pods: &[&TestPod], revision: u64) {
    let reports = node.reports();
    let ok = reports
        .wait_for(Duration::from_secs(20), |r| {
            pods.iter().all(|p| {
                r.get(&p.pod.uid)
                    .is_some_and(|r| r.state == PodState::Applied && r.revision >= revision)
            })
        })
        .await;
    assert!(ok, "not converged: {:#?}", reports.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_list_reaches_each_pod_as_one_element_delta() {
    let dbs = [test_pod("db"), test_pod("db")];
    let other = test_pod("web");
    let pods: Vec<Pod> = dbs.iter().chain([&other]).map(|p| p.pod.clone()).collect();
    let mut node = NodeController::new(
        Arc::new(resolver()),
        Options {
            retry: Duration::from_millis(100),
            ..Default::default()
        },
        linx_agent::metrics::Metrics::default(),
    );
    let rs = [ruleset()];

    let p1 = RulesetPolicy::next_with(
        &RulesetPolicy::default(),
        &rs,
        &book(&["10.0.0.1", "10.0.0.2"]),
    );
    let t1 = targets(&pods, &p1);
    assert!(
        Arc::ptr_eq(
            t1[0].desired.as_ref().unwrap(),
            t1[1].desired.as_ref().unwrap()
        ),
        "pods selected alike share one value"
    );
    let r1 = node.apply(t1);
    converged(&node, &[&dbs[0], &dbs[1], &other], r1).await;
    let want1 = elements_by_nft(&["10.0.0.1", "10.0.0.2"]);
    for db in &dbs {
        assert_eq!(set_listing(&db.ns), want1);
        traffic(&db.ns, 3);
    }
    assert_eq!(other.ns.ruleset(), "", "a pod the ruleset does not select");
    let before: Vec<String> = dbs.iter().map(|d| rules(&d.ns)).collect();
    assert!(before[0].contains("counter packets 3 "), "{}", before[0]);
    let generations: Vec<u32> = dbs
        .iter()
        .map(|d| node.reports().get(&d.pod.uid).unwrap().generation.unwrap())
        .collect();

    // 10.0.0.1 leaves and 10.0.0.3 arrives in the same update.
    let p2 = RulesetPolicy::next_with(&p1, &rs, &book(&["10.0.0.2", "10.0.0.3"]));
    let r2 = node.apply(targets(&pods, &p2));
    converged(&node, &[&dbs[0], &dbs[1]], r2).await;
    let want2 = elements_by_nft(&["10.0.0.2", "10.0.0.3"]);
    for (i, db) in dbs.iter().enumerate() {
        assert_eq!(set_listing(&db.ns), want2);
        assert_eq!(
            rules(&db.ns),
            before[i],
            "rules, handles and counters unchanged"
        );
        let r = node.reports().get(&db.pod.uid).unwrap();
        assert_eq!(r.patch_ops, 2, "one delete and one add of elements");
        assert_eq!(
            r.generation,
            Some(generations[i] + 1),
            "one transaction (one generation)"
        );
    }
    assert_eq!(other.ns.ruleset(), "");

    // The same list again (another allocation): nothing to do.
    let p3 = RulesetPolicy::next_with(&p2, &rs, &book(&["10.0.0.2", "10.0.0.3"]));
    assert!(Arc::ptr_eq(
        targets(&pods, &p3)[0].desired.as_ref().unwrap(),
        targets(&pods, &p2)[0].desired.as_ref().unwrap()
    ));
    // An address inside the static interval is not added twice.
    let p4 = RulesetPolicy::next_with(&p3, &rs, &book(&["10.0.0.3", "10.9.1.1"]));
    let r4 = node.apply(targets(&pods, &p4));
    converged(&node, &[&dbs[0]], r4).await;
    assert_eq!(set_listing(&dbs[0].ns), elements_by_nft(&["10.0.0.3"]));
    node.shutdown().await;
}
