//! The node controller against real network namespaces standing in for
//! pods (a process in each, in its pod cgroup), fed by an in-memory source
//! of pods and desired values: no Kubernetes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use linx_agent::testing::{open_netns_fds, pod_uid, resolver, FakePod};
use linx_agent::{NodeController, Options, Pod, PodReport, PodState, Target};
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{Ruleset, Socket};

static NEXT: AtomicU32 = AtomicU32::new(1);

/// A pod: its namespace and the process that keeps it "running".
struct TestPod {
    ns: TestNetns,
    fake: FakePod,
    pod: Pod,
}

fn test_pod() -> TestPod {
    let ns = TestNetns::new();
    let uid = pod_uid(NEXT.fetch_add(1, Ordering::Relaxed));
    let fake = FakePod::start(&uid, false, Some(&ns));
    let pod = Pod {
        name: format!("web-{}", &uid[uid.len() - 4..]),
        namespace: "shop".into(),
        uid,
        ..Default::default()
    };
    TestPod { ns, fake, pod }
}

/// A table someone else made; must never change.
const FOREIGN: &str = "table ip other {\n\tchain c {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 7 drop\n\t}\n}\n";

fn fw_script(ports: &[u16]) -> String {
    let mut s = String::from(
        "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n",
    );
    for p in ports {
        s.push_str(&format!("\t\ttcp dport {p} accept\n"));
    }
    s.push_str("\t}\n}\n");
    s
}

/// The value nft makes of a script, and nft's listing of it (the oracle).
fn value_of(script: &str) -> (Arc<Ruleset>, String) {
    let scratch = TestNetns::new();
    scratch.load(script);
    let mut sock = Socket::open(&scratch.netns()).unwrap();
    let v = pull(&mut sock, &Selector::All).unwrap().ruleset;
    (Arc::new(v), scratch.ruleset())
}

fn opts() -> Options {
    Options {
        concurrency: 4,
        resync: Duration::from_secs(60),
        retry: Duration::from_millis(100),
        ..Default::default()
    }
}

fn controller() -> NodeController {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("linx_agent=debug")
        .try_init();
    NodeController::new(
        Arc::new(resolver()),
        opts(),
        linx_agent::metrics::Metrics::default(),
    )
}

fn target(p: &TestPod, v: Option<&Arc<Ruleset>>) -> Target {
    Target::new(p.pod.clone(), v.cloned())
}

/// Waits until every listed pod reports `Applied` at (at least) its revision.
async fn converged(node: &NodeController, want: &[(&TestPod, u64)], timeout: Duration) {
    let reports = node.reports();
    let ok = reports
        .wait_for(timeout, |r| {
            want.iter().all(|(p, rev)| {
                r.get(&p.pod.uid)
                    .is_some_and(|r| r.state == PodState::Applied && r.revision >= *rev)
            })
        })
        .await;
    assert!(ok, "not converged: {:#?}", reports.snapshot());
}

fn report(node: &NodeController, p: &TestPod) -> PodReport {
    node.reports().get(&p.pod.uid).expect("report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_pods_converge_and_a_changed_subset_reconverges_alone() {
    let pods: Vec<TestPod> = (0..50).map(|_| test_pod()).collect();
    for p in &pods {
        p.ns.load(FOREIGN);
    }
    let (a, a_text) = value_of(&fw_script(&[80, 443]));
    let (b, b_text) = value_of(&fw_script(&[80, 443, 8080]));
    let mut node = controller();
    let start = Instant::now();
    let r1 = node.apply(pods.iter().map(|p| target(p, Some(&a))));
    let all: Vec<(&TestPod, u64)> = pods.iter().map(|p| (p, r1)).collect();
    converged(&node, &all, Duration::from_secs(60)).await;
    eprintln!("50 pods converged in {:?}", start.elapsed());
    for p in &pods {
        assert_eq!(
            p.ns.ruleset(),
            format!("{FOREIGN}{a_text}"),
            "pod {}",
            p.pod
        );
        assert_eq!(report(&node, p).reconciles, 1);
    }

    // Ten pods get a new value: exactly those reconcile again.
    let changed = |i: usize| i % 5 == 0;
    let r2 = node.apply(
        pods.iter()
            .enumerate()
            .map(|(i, p)| target(p, Some(if changed(i) { &b } else { &a }))),
    );
    let subset: Vec<(&TestPod, u64)> = pods
        .iter()
        .enumerate()
        .filter(|(i, _)| changed(*i))
        .map(|(_, p)| (p, r2))
        .collect();
    converged(&node, &subset, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (i, p) in pods.iter().enumerate() {
        let r = report(&node, p);
        if changed(i) {
            assert_eq!((r.revision, r.reconciles, r.patch_ops), (r2, 2, 1), "{r:?}");
            assert_eq!(p.ns.ruleset(), format!("{FOREIGN}{b_text}"));
        } else {
            assert_eq!((r.revision, r.reconciles), (r1, 1), "{r:?}");
            assert_eq!(p.ns.ruleset(), format!("{FOREIGN}{a_text}"));
        }
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_no_longer_selected_loses_its_tables_but_not_foreign_ones() {
    let p = test_pod();
    p.ns.load(FOREIGN);
    let (a, a_text) = value_of(&fw_script(&[22]));
    let mut node = controller();
    let r1 = node.apply([target(&p, Some(&a))]);
    converged(&node, &[(&p, r1)], Duration::from_secs(10)).await;
    assert_eq!(p.ns.ruleset(), format!("{FOREIGN}{a_text}"));
    let r2 = node.apply([target(&p, None)]);
    converged(&node, &[(&p, r2)], Duration::from_secs(10)).await;
    assert_eq!(p.ns.ruleset(), FOREIGN);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_change_to_an_owned_table_is_repaired_within_a_second() {
    let p = test_pod();
    p.ns.load(FOREIGN);
    let (a, a_text) = value_of(&fw_script(&[80, 443]));
    let mut node = controller();
    let r1 = node.apply([target(&p, Some(&a))]);
    converged(&node, &[(&p, r1)], Duration::from_secs(10)).await;
    // Our own commit caused events: they must not cause another reconcile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(report(&node, &p).reconciles, 1);

    // From here on the source sends nothing (as if the API server were
    // unreachable): the last desired value is still enforced.
    let expected = format!("{FOREIGN}{a_text}");
    for (i, change) in [
        vec![
            "add", "rule", "inet", "linx", "input", "tcp", "dport", "9999", "accept",
        ],
        vec!["flush", "chain", "inet", "linx", "input"],
        vec!["delete", "table", "inet", "linx"],
    ]
    .into_iter()
    .enumerate()
    {
        // (The repair may land before nft can list the change: the
        // report's repair count proves it happened.)
        let t = Instant::now();
        p.ns.nft(&change).unwrap();
        while p.ns.ruleset() != expected {
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "not repaired within a second after `nft {}`: {}",
                change.join(" "),
                p.ns.ruleset()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ok = node
            .reports()
            .wait_for(Duration::from_secs(2), |r| {
                r[&p.pod.uid].repairs == i as u64 + 1
            })
            .await;
        assert!(ok, "{:?}", report(&node, &p));
    }
    // A change to someone else's table is not ours to repair.
    let before = report(&node, &p).reconciles;
    p.ns.nft(&[
        "add", "rule", "ip", "other", "c", "udp", "dport", "53", "accept",
    ])
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(report(&node, &p).reconciles, before);
    assert!(p.ns.ruleset().contains("udp dport 53 accept"));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_pods_are_skipped_and_never_touched() {
    let host_before = linx_netfilter::testing::host_ruleset();
    let uid = pod_uid(NEXT.fetch_add(1, Ordering::Relaxed));
    // Its process lives in the "host" namespace (the test's own).
    let _fake = FakePod::start(&uid, false, None);
    let pod = Pod {
        uid: uid.clone(),
        namespace: "kube-system".into(),
        name: "node-exporter".into(),
        host_network: true,
        labels: BTreeMap::from([("app".into(), "x".into())]),
    };
    let (a, _) = value_of(&fw_script(&[22]));
    let mut node = controller();
    node.apply([Target::new(pod, Some(a))]);
    let reports = node.reports();
    let ok = reports
        .wait_for(Duration::from_secs(5), |r| {
            r.get(&uid)
                .is_some_and(|r| r.state == PodState::Skipped("hostNetwork".into()))
        })
        .await;
    assert!(ok, "{:?}", reports.snapshot());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(linx_netfilter::testing::host_ruleset(), host_before);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_process_dies_is_let_go_and_its_new_sandbox_found() {
    let mut p = test_pod();
    let old_inode = p.ns.netns().inode().unwrap().1;
    let (a, a_text) = value_of(&fw_script(&[80]));
    let mut node = controller();
    let r1 = node.apply([target(&p, Some(&a))]);
    converged(&node, &[(&p, r1)], Duration::from_secs(10)).await;
    assert!(open_netns_fds(old_inode) > 0, "the namespace is held");

    // The sandbox dies: the held pid is gone (or would be reused). The
    // worker must let go of the namespace, never keep using it.
    p.fake.stop();
    let reports = node.reports();
    let ok = reports
        .wait_for(Duration::from_secs(5), |r| {
            r[&p.pod.uid].state == PodState::NotRunning
        })
        .await;
    assert!(ok, "{:?}", reports.snapshot());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        open_netns_fds(old_inode),
        0,
        "descriptors of the old namespace closed"
    );

    // A new sandbox of the same pod, in a fresh namespace: found and converged.
    let fresh = TestNetns::new();
    let _new = FakePod::start(&p.pod.uid, true, Some(&fresh));
    let ok = reports
        .wait_for(Duration::from_secs(10), |r| {
            r[&p.pod.uid].state == PodState::Applied
        })
        .await;
    assert!(ok, "{:?}", reports.snapshot());
    assert_eq!(fresh.ruleset(), a_text);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_mid_apply_ends_cleanly_and_closes_its_descriptors() {
    let mut p = test_pod();
    let inode = p.ns.netns().inode().unwrap().1;
    let ports: Vec<u16> = (1..=4000).collect();
    let (big, _) = value_of(&fw_script(&ports));
    let mut node = controller();
    node.apply([target(&p, Some(&big))]);
    // Wait until the worker holds the namespace, then pull everything away
    // while it applies: the process dies, the namespace name is removed,
    // and the pod leaves the node.
    let t = Instant::now();
    while open_netns_fds(inode) == 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "never attached");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    p.fake.stop();
    drop(p.ns);
    node.apply([]);
    let reports = node.reports();
    let ok = reports
        .wait_for(Duration::from_secs(20), |r| r.is_empty())
        .await;
    assert!(ok, "{:?}", reports.snapshot());
    node.shutdown().await;
    assert_eq!(
        open_netns_fds(inode),
        0,
        "every descriptor of the namespace closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_agent_adopts_its_tables_and_never_flushes() {
    let p = test_pod();
    p.ns.load(FOREIGN);
    let (a, _) = value_of(&fw_script(&[80, 443, 8443]));
    let (b, b_text) = value_of(&fw_script(&[80, 443, 8443, 9000]));
    let mut node = controller();
    let r1 = node.apply([target(&p, Some(&a))]);
    converged(&node, &[(&p, r1)], Duration::from_secs(10)).await;
    node.shutdown().await;
    let handles = |ns: &TestNetns| -> Vec<String> {
        ns.nft(&["-a", "list", "table", "inet", "linx"])
            .unwrap()
            .lines()
            .filter(|l| l.contains("dport") && l.contains("# handle"))
            .map(str::to_owned)
            .collect()
    };
    let before = handles(&p.ns);
    assert_eq!(before.len(), 3);

    // A new agent with the same value: nothing to do, nothing recreated.
    let mut node = controller();
    let r = node.apply([target(&p, Some(&a))]);
    converged(&node, &[(&p, r)], Duration::from_secs(10)).await;
    assert_eq!(report(&node, &p).patch_ops, 0);
    assert_eq!(handles(&p.ns), before);
    node.shutdown().await;

    // A new agent with a changed value: one rule added, the others kept.
    let mut node = controller();
    let r = node.apply([target(&p, Some(&b))]);
    converged(&node, &[(&p, r)], Duration::from_secs(10)).await;
    assert_eq!(report(&node, &p).patch_ops, 1);
    assert_eq!(handles(&p.ns)[..3], before[..]);
    assert_eq!(p.ns.ruleset(), format!("{FOREIGN}{b_text}"));

    // And once the pod is no longer selected, the adopted table goes too.
    let r = node.apply([target(&p, None)]);
    converged(&node, &[(&p, r)], Duration::from_secs(10)).await;
    assert_eq!(p.ns.ruleset(), FOREIGN);
    node.shutdown().await;
}

fn firewall_ruleset(name: &str, generation: i64, nft: &str) -> linx_crds::FirewallRuleset {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1",
        "kind": "FirewallRuleset",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                     "generation": generation, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"podSelector": {}, "nft": nft},
    }))
    .unwrap()
}

/// nft's listing of one table in a namespace.
fn table_text(ns: &TestNetns, family: &str, name: &str) -> String {
    ns.nft(&["list", "table", family, name]).unwrap_or_default()
}

const EXTRA: &str = "table ip extra {\n\tchain out {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tudp dport 53 accept\n\t}\n}\n";
const EXTRA2: &str = "table ip extra {\n\tchain out {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tudp dport 53 accept\n\t\tudp dport 123 accept\n\t}\n}\n";
const TYPO: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 80 acept\n\t}\n}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_last_valid_generation_and_a_restart_holds_its_tables() {
    use linx_agent::desired::targets;
    use linx_agent::rulesets::RulesetPolicy;
    let p = test_pod();
    p.ns.load(FOREIGN);
    let pods = [p.pod.clone()];
    let (fw1, fw3) = (fw_script(&[80, 443]), fw_script(&[80]));
    let listing = |script: &str, family: &str, name: &str| {
        let scratch = TestNetns::new();
        scratch.load(script);
        table_text(&scratch, family, name)
    };
    let (fw1_text, fw3_text) = (listing(&fw1, "inet", "linx"), listing(&fw3, "inet", "linx"));
    let (extra_text, extra2_text) = (
        listing(EXTRA, "ip", "extra"),
        listing(EXTRA2, "ip", "extra"),
    );
    let kernel = |p: &TestPod| {
        (
            table_text(&p.ns, "inet", "linx"),
            table_text(&p.ns, "ip", "extra"),
            table_text(&p.ns, "ip", "other"),
        )
    };
    let foreign_text = listing(FOREIGN, "ip", "other");

    let pol1 = RulesetPolicy::new(&[
        firewall_ruleset("fw", 1, &fw1),
        firewall_ruleset("extra", 1, EXTRA),
    ]);
    let mut node = controller();
    let r1 = node.apply(targets(&pods, &pol1));
    converged(&node, &[(&p, r1)], Duration::from_secs(10)).await;
    assert_eq!(
        kernel(&p),
        (fw1_text.clone(), extra_text.clone(), foreign_text.clone())
    );

    // Generation 2 of fw has a typo: generation 1 stays enforced, the
    // desired value does not change, nothing is pushed.
    let pol2 = RulesetPolicy::next(
        &pol1,
        &[
            firewall_ruleset("fw", 2, TYPO),
            firewall_ruleset("extra", 1, EXTRA),
        ],
    );
    let fw = pol2.selecting(&p.pod).find(|c| c.name == "fw").unwrap();
    assert!(fw.value.is_err());
    assert_eq!(fw.enforced.as_ref().map(|e| e.generation), Some(1));
    let note = fw.note().unwrap();
    assert!(
        note.starts_with("generation 2 does not compile (spec.nft, 4:16: "),
        "{note}"
    );
    assert!(note.ends_with("generation 1 stays enforced"), "{note}");
    let t2 = targets(&pods, &pol2);
    assert_eq!(t2, targets(&pods, &pol1), "same desired value, no hold");
    node.apply(t2);
    // While fw is invalid, extra changes: only extra's table moves.
    let pol3 = RulesetPolicy::next(
        &pol2,
        &[
            firewall_ruleset("fw", 2, TYPO),
            firewall_ruleset("extra", 2, EXTRA2),
        ],
    );
    let r3 = node.apply(targets(&pods, &pol3));
    converged(&node, &[(&p, r3)], Duration::from_secs(10)).await;
    assert_eq!(
        kernel(&p),
        (fw1_text.clone(), extra2_text.clone(), foreign_text.clone())
    );
    assert_eq!(report(&node, &p).patch_ops, 1, "one rule added to extra");
    node.shutdown().await;

    // A restarted agent knows no valid generation of fw: the pod is held,
    // its fw table stays as the previous agent left it; extra still applies.
    let fresh = RulesetPolicy::new(&[
        firewall_ruleset("fw", 2, TYPO),
        firewall_ruleset("extra", 2, EXTRA2),
    ]);
    let t = targets(&pods, &fresh);
    assert!(t[0].hold);
    assert_eq!(
        t[0].desired.as_ref().map(|d| d.tables.len()),
        Some(1),
        "only extra is desired"
    );
    assert!(fresh
        .selecting(&p.pod)
        .find(|c| c.name == "fw")
        .and_then(|c| c.note())
        .is_some_and(|n| n.contains("no valid generation is known")));
    let mut node = controller();
    let r = node.apply(t);
    converged(&node, &[(&p, r)], Duration::from_secs(10)).await;
    assert_eq!(
        report(&node, &p).patch_ops,
        0,
        "nothing removed, nothing to add"
    );
    assert_eq!(
        kernel(&p),
        (fw1_text.clone(), extra2_text.clone(), foreign_text.clone())
    );

    // Fixed in generation 3: applied, the hold is lifted.
    let pol4 = RulesetPolicy::next(
        &fresh,
        &[
            firewall_ruleset("fw", 3, &fw3),
            firewall_ruleset("extra", 2, EXTRA2),
        ],
    );
    let t4 = targets(&pods, &pol4);
    assert!(!t4[0].hold);
    let r4 = node.apply(t4);
    converged(&node, &[(&p, r4)], Duration::from_secs(10)).await;
    assert_eq!(kernel(&p), (fw3_text, extra2_text, foreign_text.clone()));

    // And with both resources gone the pod keeps only the foreign table.
    let r5 = node.apply(targets(&pods, &RulesetPolicy::next(&pol4, &[])));
    converged(&node, &[(&p, r5)], Duration::from_secs(10)).await;
    assert_eq!(p.ns.ruleset(), FOREIGN);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn program_latency_counts_from_when_the_change_was_learned() {
    let p = test_pod();
    let (a, _) = value_of(&fw_script(&[80]));
    let (b, b_text) = value_of(&fw_script(&[80, 443]));
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = linx_agent::metrics::Metrics::register(&mut registry);
    let mut node = NodeController::new(Arc::new(resolver()), opts(), metrics);
    let r1 = node.apply([target(&p, Some(&a))]);
    converged(&node, &[(&p, r1)], Duration::from_secs(10)).await;
    let first = report(&node, &p)
        .program_latency
        .expect("a new pod's latency");
    // An edit learned two seconds before it reaches the controller (say,
    // a watch event that waited behind a slow list): the clock runs from
    // the learning, through the commit.
    let learned = tokio::time::Instant::now() - Duration::from_secs(2);
    let start = Instant::now();
    let r2 = node.apply_learned([target(&p, Some(&b))], learned);
    converged(&node, &[(&p, r2)], Duration::from_secs(10)).await;
    let took = start.elapsed();
    let l = report(&node, &p)
        .program_latency
        .expect("the edit's latency");
    assert!(
        l >= Duration::from_secs(2) && l <= Duration::from_secs(2) + took,
        "{l:?} (the edit took {took:?})"
    );
    assert_eq!(p.ns.ruleset(), b_text);
    // A reconcile that programs no change (a resync) adds no sample.
    node.apply([target(&p, Some(&b))]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = linx_agent::metrics::encode(&registry);
    assert!(
        text.contains("linx_program_latency_seconds_count 2\n"),
        "{text}"
    );
    let sum: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("linx_program_latency_seconds_sum "))
        .and_then(|v| v.parse().ok())
        .expect("a sum");
    assert!(
        (sum - (first + l).as_secs_f64()).abs() < 1e-3,
        "{sum} vs {first:?} + {l:?}"
    );
    // The process's own resources are exported beside.
    for name in [
        "process_open_fds ",
        "process_threads ",
        "process_resident_memory_bytes ",
    ] {
        assert!(text.contains(name), "{name} missing: {text}");
    }
    node.shutdown().await;
}

/// The value of a metric line `name{…} V` (summed over label sets that
/// contain `with`) in the agent's Prometheus text.
fn metric(registry: &prometheus_client::registry::Registry, name: &str, with: &str) -> f64 {
    linx_agent::metrics::encode(registry)
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Issue #13's steady state: pods given the real-world rulesets (compiled,
/// as the agent compiles a FirewallRuleset's `spec.nft`). After another
/// writer's commit in each pod's namespace, and after an agent restart, the
/// reconciles of the unchanged rulesets send no batch — counted here and
/// in the agent's metrics — and no rule is recreated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_real_world_rulesets_send_no_batch_after_a_foreign_commit_or_a_restart() {
    let values: Vec<Arc<Ruleset>> = linx_netfilter::testing::real_world_rulesets()
        .into_iter()
        .filter_map(|(_, text)| linx_netfilter::syntax::compile(&text).ok())
        .map(Arc::new)
        .collect();
    assert!(
        values.len() >= 25,
        "{} real-world rulesets compile",
        values.len()
    );
    let pods: Vec<TestPod> = values.iter().map(|_| test_pod()).collect();
    let start = |registry: &mut prometheus_client::registry::Registry| {
        let metrics = linx_agent::metrics::Metrics::register(registry);
        let mut node = NodeController::new(
            Arc::new(resolver()),
            Options {
                resync: Duration::from_millis(300),
                ..opts()
            },
            metrics,
        );
        let rev = node.apply(pods.iter().zip(&values).map(|(p, v)| target(p, Some(v))));
        (node, rev)
    };
    let changed = r#"result="Changed""#;
    let handles = |ns: &TestNetns| {
        linx_netfilter::testing::masked_listing(&ns.nft(&["-a", "list", "ruleset"]).unwrap())
    };

    let mut registry = prometheus_client::registry::Registry::default();
    let (node, rev) = start(&mut registry);
    let want: Vec<(&TestPod, u64)> = pods.iter().map(|p| (p, rev)).collect();
    converged(&node, &want, Duration::from_secs(60)).await;
    let pushed = metric(&registry, "linx_agent_reconciles_total", changed);
    let batches = metric(&registry, "linx_agent_patch_operations_count", "");
    assert_eq!(pushed as usize, pods.len(), "one batch per pod to apply");
    let before: Vec<String> = pods.iter().map(|p| handles(&p.ns)).collect();

    // Another writer commits in every pod's namespace (a CNI plugin's
    // table): the periodic reconcile finds the generation moved, pulls, and
    // has nothing to do.
    let seen: Vec<u64> = pods.iter().map(|p| report(&node, p).reconciles).collect();
    for p in &pods {
        p.ns.load("table ip cni-foreign {\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tmasquerade\n\t}\n}\n");
    }
    let reports = node.reports();
    let again = reports
        .wait_for(Duration::from_secs(30), |r| {
            pods.iter().zip(&seen).all(|(p, n)| {
                r.get(&p.pod.uid)
                    .is_some_and(|r| r.reconciles >= n + 2 && r.state == PodState::Applied)
            })
        })
        .await;
    assert!(again, "every pod reconciled after the foreign commit");
    assert_eq!(
        metric(&registry, "linx_agent_reconciles_total", changed),
        pushed,
        "a reconcile after a foreign commit sent a batch:\n{}",
        linx_agent::metrics::encode(&registry)
    );
    assert_eq!(
        metric(&registry, "linx_agent_patch_operations_count", ""),
        batches
    );
    assert!(
        metric(
            &registry,
            "linx_agent_reconciles_total",
            r#"result="Unchanged""#
        ) >= pods.len() as f64
    );
    for (p, b) in pods.iter().zip(&before) {
        assert_eq!(report(&node, p).patch_ops, 0);
        assert_eq!(&handles(&p.ns).replace(&foreign_listing(&p.ns), ""), b);
    }
    node.shutdown().await;

    // A new agent (a DaemonSet rollout): it adopts its tables, pulls, and
    // has nothing to do.
    let mut registry = prometheus_client::registry::Registry::default();
    let (node, rev) = start(&mut registry);
    let want: Vec<(&TestPod, u64)> = pods.iter().map(|p| (p, rev)).collect();
    converged(&node, &want, Duration::from_secs(60)).await;
    assert_eq!(
        metric(&registry, "linx_agent_reconciles_total", changed),
        0.0,
        "after a restart a reconcile sent a batch:\n{}",
        linx_agent::metrics::encode(&registry)
    );
    assert_eq!(
        metric(&registry, "linx_agent_patch_operations_count", ""),
        0.0
    );
    for (p, b) in pods.iter().zip(&before) {
        assert_eq!(report(&node, p).patch_ops, 0);
        assert_eq!(&handles(&p.ns).replace(&foreign_listing(&p.ns), ""), b);
    }
    println!(
        "{} real-world rulesets: no batch after a foreign commit, none after a restart",
        pods.len()
    );
    node.shutdown().await;
}

/// The foreign table's part of `nft -a list ruleset` (masked).
fn foreign_listing(ns: &TestNetns) -> String {
    let all = linx_netfilter::testing::masked_listing(&ns.nft(&["-a", "list", "ruleset"]).unwrap());
    match all.find("table ip cni-foreign") {
        Some(i) => {
            let rest = &all[i..];
            let end = rest.find("\n}\n").map(|e| e + 3).unwrap_or(rest.len());
            rest[..end].to_owned()
        }
        None => String::new(),
    }
}
