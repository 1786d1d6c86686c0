//! Node agent benchmark: N pod namespaces (default 200) each kept equal to
//! an R-rule ruleset (default 200). Measures the time to converge from
//! start, to re-converge after one rule changes (in every pod, and in one
//! pod), and the process's resident memory.
//!
//! `cargo bench -p linx-agent --bench converge [-- PODS RULES]` (root: it
//! makes namespaces and cgroups, removed at the end).

use std::sync::Arc;
use std::time::{Duration, Instant};

use linx_agent::testing::{pod_uid, resolver, FakePod};
use linx_agent::{NodeController, Options, Pod, PodState, Target};
use linx_netfilter::diff::share_unchanged;
use linx_netfilter::testing::TestNetns;
use linx_netfilter::Ruleset;

fn ruleset(rules: usize, changed: Option<usize>) -> Arc<Ruleset> {
    let mut s = String::from(
        "table inet linx {\n chain input {\n  type filter hook input priority filter; policy drop;\n  ct state established,related accept\n",
    );
    for i in 0..rules.saturating_sub(1) {
        let port = if changed == Some(i) { 60000 } else { 1000 + i };
        s.push_str(&format!(
            "  ip saddr 10.{}.{}.0/24 tcp dport {port} accept\n",
            i / 250,
            i % 250
        ));
    }
    s.push_str(" }\n}\n");
    Arc::new(linx_netfilter::syntax::compile(&s).expect("benchmark ruleset compiles"))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn wait_applied(node: &NodeController, uids: &[String], revision: u64) -> Duration {
    let t = Instant::now();
    let ok = node
        .reports()
        .wait_for(Duration::from_secs(600), |r| {
            uids.iter().all(|u| {
                r.get(u)
                    .is_some_and(|r| r.state == PodState::Applied && r.revision >= revision)
            })
        })
        .await;
    assert!(ok, "did not converge");
    t.elapsed()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let pods_n = args.first().copied().unwrap_or(200);
    let rules = args.get(1).copied().unwrap_or(200);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base_rss = rss_kib();

    eprintln!("setting up {pods_n} namespaces...");
    let fixtures: Vec<(TestNetns, FakePod, Pod)> = (0..pods_n)
        .map(|i| {
            let ns = TestNetns::new();
            let uid = pod_uid(100_000 + i as u32);
            let fake = FakePod::start(&uid, false, Some(&ns));
            let pod = Pod {
                namespace: "bench".into(),
                name: format!("pod-{i}"),
                uid,
                ..Default::default()
            };
            (ns, fake, pod)
        })
        .collect();
    let uids: Vec<String> = fixtures.iter().map(|f| f.2.uid.clone()).collect();
    let a = ruleset(rules, None);
    // The edit, compiled anew and sharing what it kept with `a`, as the
    // agent's policy does for a new generation of a resource.
    let mut b = (*ruleset(rules, Some(rules / 2))).clone();
    share_unchanged(&mut b, &a);
    let b = Arc::new(b);
    let targets = |v: &Arc<Ruleset>, rest: &Arc<Ruleset>, only: Option<usize>| -> Vec<Target> {
        fixtures
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let v = if only.is_none_or(|o| o == i) { v } else { rest };
                Target::new(f.2.clone(), Some(v.clone()))
            })
            .collect()
    };
    let opts = Options::default();
    let concurrency = opts.concurrency;
    let rss_before = rss_kib();

    let (start, all_change, one_change, rss_after, ops) = rt.block_on(async {
        let mut node = NodeController::new(
            Arc::new(resolver()),
            opts,
            linx_agent::metrics::Metrics::default(),
        );
        let rev = node.apply(targets(&a, &a, None));
        let start = wait_applied(&node, &uids, rev).await;
        let rss_after = rss_kib();
        let rev = node.apply(targets(&b, &b, None));
        let all_change = wait_applied(&node, &uids, rev).await;
        let ops = node.reports().get(&uids[0]).map(|r| r.patch_ops);
        let rev = node.apply(targets(&a, &b, Some(0)));
        let one_change = wait_applied(&node, &uids[..1], rev).await;
        node.shutdown().await;
        (start, all_change, one_change, rss_after, ops)
    });
    // Sanity: the kernel holds what was asked (nft's own listing).
    let listing = fixtures[1].0.ruleset();
    assert!(listing.contains("tcp dport 60000 accept"), "{listing}");

    println!(
        "linx-agent convergence: {pods_n} pods x {rules} rules, concurrency {concurrency}, {} cpus",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| measure                                   | value      |");
    println!("|-------------------------------------------|------------|");
    println!(
        "| converge from start (all pods)            | {:>8.0} ms |",
        start.as_secs_f64() * 1e3
    );
    println!(
        "| re-converge, one rule changed in all pods | {:>8.0} ms |",
        all_change.as_secs_f64() * 1e3
    );
    println!(
        "|   patch ops per pod                       | {:>10} |",
        ops.unwrap_or(0)
    );
    println!(
        "| re-converge, one rule changed in one pod  | {:>8.1} ms |",
        one_change.as_secs_f64() * 1e3
    );
    println!(
        "| RSS at start (fixtures made)              | {:>7} KiB |",
        rss_before
    );
    println!(
        "| RSS converged                             | {:>7} KiB |",
        rss_after
    );
    println!(
        "| RSS growth for {pods_n:>4} pods                  | {:>7} KiB |",
        rss_after.saturating_sub(rss_before)
    );
    let _ = base_rss;
    drop(fixtures);
}
