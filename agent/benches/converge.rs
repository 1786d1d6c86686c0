//! Node agent benchmark: N pod namespaces (default 200) each kept equal to
//! an R-rule ruleset (default 200). Measures the time to converge from
//! start, to re-converge after one rule changes (in every pod, and in one
//! pod), each pod's time to program the edit (p50/p99, as the node report
//! gives it), and the process's resident memory, open descriptors,
//! threads and CPU; then removes every pod and shows the descriptors and
//! threads it held returned.
//!
//! `cargo bench -p linx-agent --bench converge [-- PODS RULES]` (root: it
//! makes namespaces and cgroups, removed at the end). Like the agent, it
//! raises its soft limit on open files to the hard limit first: the
//! 1,000-pod run works from `ulimit -Sn 1024`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use linx_agent::metrics::ProcessStats;
use linx_agent::testing::{pod_uid, resolver, FakePod};
use linx_agent::{NodeController, Options, Pod, PodState, Target};
use linx_crds::report::ProgramLatency;
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
    let (from, to) = linx_agent::run::raise_open_files_limit().expect("raise RLIMIT_NOFILE");
    eprintln!("soft limit on open files: {from} -> {to}");
    let rt = tokio::runtime::Runtime::new().unwrap();

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
    let before = ProcessStats::read();

    let (start, all_change, one_change, rss_after, ops, latency, held, cpu, after) =
        rt.block_on(async {
            let mut node = NodeController::new(
                Arc::new(resolver()),
                opts,
                linx_agent::metrics::Metrics::default(),
            );
            let rev = node.apply(targets(&a, &a, None));
            let start = wait_applied(&node, &uids, rev).await;
            let rss_after = rss_kib();
            let held = ProcessStats::read();
            let rev = node.apply(targets(&b, &b, None));
            let all_change = wait_applied(&node, &uids, rev).await;
            let mut millis: Vec<i64> = node
                .reports()
                .snapshot()
                .values()
                .filter_map(|r| Some(r.program_latency?.as_millis() as i64))
                .collect();
            assert_eq!(millis.len(), pods_n, "every pod's edit latency");
            let latency = ProgramLatency::of(&mut millis).expect("samples");
            let ops = node.reports().get(&uids[0]).map(|r| r.patch_ops);
            let rev = node.apply(targets(&a, &b, Some(0)));
            let one_change = wait_applied(&node, &uids[..1], rev).await;
            let cpu = ProcessStats::read().cpu_seconds - before.cpu_seconds;
            // Every pod gone: its descriptors are closed with its worker.
            node.apply(Vec::new());
            let gone = node
                .reports()
                .wait_for(Duration::from_secs(120), |r| r.is_empty())
                .await;
            assert!(gone, "workers did not end");
            // Idle blocking-pool threads linger up to 10 s before exiting.
            tokio::time::sleep(Duration::from_secs(11)).await;
            let after = ProcessStats::read();
            node.shutdown().await;
            (
                start, all_change, one_change, rss_after, ops, latency, held, cpu, after,
            )
        });
    // Sanity: the kernel holds what was asked (nft's own listing).
    let listing = fixtures[1].0.ruleset();
    assert!(listing.contains("tcp dport 60000 accept"), "{listing}");
    let fds_per_pod = (held.open_fds as f64 - before.open_fds as f64) / pods_n as f64;

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
    println!(
        "| edit's time to program, p50 / p99         | {:>4} / {:>4} ms |",
        latency.p50_millis, latency.p99_millis
    );
    println!(
        "| open fds: before / converged / all gone   | {} / {} / {} ({fds_per_pod:.2} per pod) |",
        before.open_fds, held.open_fds, after.open_fds
    );
    println!(
        "| threads: before / converged / all gone    | {} / {} / {} |",
        before.threads, held.threads, after.threads
    );
    println!(
        "| RSS after every pod went                  | {:>7} KiB |",
        after.rss_bytes / 1024
    );
    println!(
        "| CPU, start to last change                 | {:>8.2} s  |",
        cpu
    );
    drop(fixtures);
}
