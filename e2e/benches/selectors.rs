//! Sets fed by a pod selector, end to end without an API server: the
//! operator's publisher (index of CLUSTER pods, default 5,000, all
//! `app=api`) resolves the set of one FirewallRuleset selecting PODS pods
//! on this node (default 200; the size is 1,000: processes in
//! network namespaces of their own, `testing::PodFarm`); pod IPs change at
//! RATE per second (default 100) in rounds of 100 ms (default 20 rounds),
//! each on its tick whatever the kernels hold; each round's published
//! chunks are assembled as an agent does, compiled by the agent's policy
//! and reconciled into every pod's kernel. Prints the time from a round's
//! pod events to every kernel holding them (p50/p99), the operations
//! per pod, the chunks rewritten (the watch events every agent receives),
//! and nft doing the same delta in one namespace for comparison.
//!
//! `cargo bench -p linx-e2e --bench selectors [-- PODS CLUSTER RATE ROUNDS]`
//! (root: makes namespaces and cgroups, removed at the end); the issue's
//! size: `-- 1000 5000 100 50`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod as KubePod;
use linx_agent::desired::targets;
use linx_agent::metrics::ProcessStats;
use linx_agent::rulesets::{AddressBook, RulesetPolicy};
use linx_agent::testing::{pod_uid, resolver, PodFarm};
use linx_agent::{NodeController, Options, Pod, PodState, Reports};
use linx_crds::addressset::assemble;
use linx_crds::{FirewallAddressSetSpec, FirewallRuleset};
use linx_netfilter::testing::TestNetns;
use linx_operator::publish::{Publisher, Write};
use serde_json::json;

const DB: &str = "table inet linx {\n\tset api {\n\t\ttype ipv4_addr\n\t}\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\tip saddr @api tcp dport 5432 counter accept\n\t}\n}\n";

fn ruleset() -> FirewallRuleset {
    serde_json::from_value(json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
        "metadata": {"name": "db", "namespace": "bench", "uid": "uid-db", "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "nft": DB,
                 "sources": [{"family": "inet", "table": "linx", "set": "api",
                              "source": {"pods": [{"podSelector": {"matchLabels": {"app": "api"}},
                                                   "namespaceSelector": {}}]}}]},
    }))
    .unwrap()
}

/// Client pod `i` of the cluster (spread over 50 namespaces), at address
/// generation `g`: each change moves it to a fresh address.
fn client(i: usize, g: u32) -> KubePod {
    let ip = format!("10.{}.{}.{}", 64 + g % 64, i / 250, i % 250 + 1);
    serde_json::from_value(json!({
        "metadata": {"name": format!("api-{i}"), "namespace": format!("app-{}", i % 50),
                     "labels": {"app": "api"}},
        "spec": {"containers": []},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }))
    .unwrap()
}

/// Plans, takes every write as done, returns the applies.
fn publish(p: &mut Publisher, chunks: &mut BTreeMap<String, FirewallAddressSetSpec>) -> usize {
    let writes = p.plan();
    for w in &writes {
        p.written(w);
        match w {
            Write::Apply(o) => {
                chunks.insert(o.metadata.name.clone().unwrap(), o.spec.clone());
            }
            Write::Delete { name, .. } => {
                chunks.remove(name);
            }
        }
    }
    writes.len()
}

/// The book an agent assembles from the chunks.
fn book(chunks: &BTreeMap<String, FirewallAddressSetSpec>) -> AddressBook {
    let lists = assemble(chunks.values())
        .into_iter()
        .map(|(k, v)| (k, Arc::<[String]>::from(v)))
        .collect();
    BTreeMap::from([(("bench".into(), "uid-db".into()), Arc::new(lists))])
}

async fn wait_applied(reports: &Reports, uids: &[String], revision: u64) {
    // The check runs under the reports' lock at every pod's update: it
    // drops the pods found applied (a pod's report stays at or past the
    // revision), so a round costs O(pods), not O(pods²) lookups that held
    // the workers back (profiled at 1,000 pods: 45% of the main thread was
    // this wait, a third more comparing UIDs).
    let mut pending: std::collections::VecDeque<&String> = uids.iter().collect();
    let ok = reports
        .wait_for(Duration::from_secs(600), |r| {
            while let Some(u) = pending.front() {
                let done = r
                    .get(*u)
                    .is_some_and(|r| r.state == PodState::Applied && r.revision >= revision);
                if !done {
                    return false;
                }
                pending.pop_front();
            }
            true
        })
        .await;
    assert!(ok, "did not converge");
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let pods_n = args.first().copied().unwrap_or(200);
    let cluster = args.get(1).copied().unwrap_or(5000);
    let rate = args.get(2).copied().unwrap_or(100);
    let rounds = args.get(3).copied().unwrap_or(20);
    let per_round = (rate / 10).max(1);
    let rt = tokio::runtime::Runtime::new().unwrap();

    let (from, to) = linx_agent::run::raise_open_files_limit().expect("raise RLIMIT_NOFILE");
    eprintln!("soft limit on open files: {from} -> {to}");
    let t = Instant::now();
    let uids: Vec<String> = (0..pods_n).map(|i| pod_uid(200_000 + i as u32)).collect();
    let mut farm = PodFarm::new();
    farm.start(&uids);
    let setup = t.elapsed();
    eprintln!("{pods_n} pods made in {setup:?}");
    let pods: Vec<Pod> = uids
        .iter()
        .enumerate()
        .map(|(i, uid)| Pod {
            namespace: "bench".into(),
            name: format!("db-{i}"),
            labels: [("app".to_string(), "db".to_string())].into(),
            uid: uid.clone(),
            ..Default::default()
        })
        .collect();
    let before = ProcessStats::read();

    let rs = [ruleset()];
    let mut publisher = Publisher::default();
    for n in 0..50 {
        let ns = serde_json::from_value(json!({"metadata": {"name": format!("app-{n}")}})).unwrap();
        publisher.index.namespace(&ns, false);
    }
    let bench_ns = serde_json::from_value(json!({"metadata": {"name": "bench"}})).unwrap();
    publisher.index.namespace(&bench_ns, false);
    let mut gen = vec![0u32; cluster];
    for (i, g) in gen.iter().enumerate() {
        publisher.index.pod(&client(i, *g), false);
    }
    publisher.ruleset(&rs[0], false);
    let mut chunks = BTreeMap::new();
    let t = Instant::now();
    publish(&mut publisher, &mut chunks);
    let first_publish = t.elapsed();
    let n_chunks = chunks.len();

    let (start, latencies, mut plans, writes, ops, late, held, reconciles) = rt.block_on(async {
        let mut node = NodeController::new(
            Arc::new(resolver()),
            Options::default(),
            linx_agent::metrics::Metrics::default(),
        );
        let t = Instant::now();
        let mut policy = RulesetPolicy::next_with(&RulesetPolicy::default(), &rs, &book(&chunks));
        let rev = node.apply(targets(&pods, &policy));
        wait_applied(&node.reports(), &uids, rev).await;
        let start = t.elapsed();
        let held = ProcessStats::read();
        let reconciles_before: u64 = uids
            .iter()
            .filter_map(|u| node.reports().get(u))
            .map(|r| r.reconciles)
            .sum();
        let (mut plans, mut writes) = (Vec::new(), Vec::new());
        let mut waiters = Vec::new();
        let uids_shared = Arc::new(uids.clone());
        let mut late = 0;
        let mut next = 0usize;
        let tick = Duration::from_millis(100);
        let mut due = Instant::now();
        // Rounds keep the rate: each starts on its tick whether or not the
        // kernels hold the previous ones (as watch events would arrive), and
        // its time ends when every pod holds it or a later round (a worker
        // takes the latest value: changes arriving while it reconciles are
        // pushed together).
        for _ in 0..rounds {
            let now = Instant::now();
            if now < due {
                tokio::time::sleep(due - now).await;
            } else if now > due + tick {
                late += 1;
            }
            due += tick;
            // `per_round` pods move to new addresses (one leaves, one arrives).
            let t = Instant::now();
            for _ in 0..per_round {
                let i = next % cluster;
                next += 7919; // a prime: spread over the cluster's pods
                gen[i] += 1;
                publisher.index.pod(&client(i, gen[i]), false);
            }
            writes.push(publish(&mut publisher, &mut chunks));
            plans.push(t.elapsed());
            policy = RulesetPolicy::next_with(&policy, &rs, &book(&chunks));
            let rev = node.apply(targets(&pods, &policy));
            let (reports, uids) = (node.reports(), uids_shared.clone());
            waiters.push(tokio::spawn(async move {
                wait_applied(&reports, &uids, rev).await;
                let took = t.elapsed();
                (took, reports.get(&uids[0]).map_or(0, |r| r.patch_ops))
            }));
        }
        let (mut latencies, mut ops) = (Vec::new(), Vec::new());
        for w in waiters {
            let (took, n) = w.await.unwrap();
            latencies.push(took);
            ops.push(n);
        }
        let reconciles: u64 = uids
            .iter()
            .filter_map(|u| node.reports().get(u))
            .map(|r| r.reconciles)
            .sum::<u64>()
            - reconciles_before;
        node.shutdown().await;
        let per_pod = reconciles as f64 / pods.len() as f64;
        (start, latencies, plans, writes, ops, late, held, per_pod)
    });

    // Sanity: a pod's kernel holds the final list (nft's own listing).
    let listing = farm.pods()[pods_n / 2]
        .nft(&["list", "set", "inet", "linx", "api"])
        .unwrap();
    let want = assemble(chunks.values()).into_values().next().unwrap();
    let mut have: Vec<String> = listing
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{' || c == '}')
        .filter(|t| t.parse::<std::net::Ipv4Addr>().is_ok())
        .map(String::from)
        .collect();
    have.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(have, want_sorted, "the kernel holds the published list");

    // nft, the same kind of delta in one namespace.
    let scratch = TestNetns::new();
    scratch.load(DB);
    let mut nft_times = Vec::new();
    for r in 0..20u32 {
        let add: Vec<String> = (0..per_round as u32)
            .map(|k| format!("10.200.{}.{}", r, k + 1))
            .collect();
        let del: Vec<String> = if r == 0 {
            Vec::new()
        } else {
            (0..per_round as u32)
                .map(|k| format!("10.200.{}.{}", r - 1, k + 1))
                .collect()
        };
        let mut script = String::new();
        if !del.is_empty() {
            script.push_str(&format!(
                "delete element inet linx api {{ {} }}\n",
                del.join(", ")
            ));
        }
        script.push_str(&format!(
            "add element inet linx api {{ {} }}\n",
            add.join(", ")
        ));
        let t = Instant::now();
        scratch.load(&script);
        nft_times.push(t.elapsed());
    }
    nft_times.sort();
    drop(scratch);

    let mut sorted = latencies.clone();
    sorted.sort();
    plans.sort();
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len().max(1) as f64;
    println!(
        "pod selectors: {pods_n} pods on the node, selector over {cluster} pods ({n_chunks} chunks), \
         {per_round} IP changes every 100 ms ({rate}/s), {rounds} rounds, {} cpus",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| measure | value |");
    println!("| --- | ---: |");
    println!(
        "| {pods_n} pods made (processes in namespaces and cgroups) | {:.1} s |",
        setup.as_secs_f64()
    );
    println!(
        "| first resolution and publish ({cluster} pods) | {:.1} ms |",
        first_publish.as_secs_f64() * 1e3
    );
    println!(
        "| converge from start ({pods_n} pods, {cluster} elements each) | {:.0} ms |",
        start.as_secs_f64() * 1e3
    );
    println!(
        "| resolve + plan per round, p50 / p99 | {:.2} / {:.2} ms |",
        pct(&plans, 0.5).as_secs_f64() * 1e3,
        pct(&plans, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "| pod events → every kernel updated, p50 / p99 | {:.0} / {:.0} ms |",
        pct(&sorted, 0.5).as_secs_f64() * 1e3,
        pct(&sorted, 0.99).as_secs_f64() * 1e3
    );
    println!("| rounds started late (rate not kept) | {late} of {rounds} |");
    println!("| reconciles per pod over the {rounds} rounds (changes pushed together) | {reconciles:.1} |");
    println!(
        "| patch operations per pod per round (mean) | {:.1} |",
        mean(&ops)
    );
    println!(
        "| chunks rewritten per round (watch events per agent, mean) | {:.1} |",
        mean(&writes)
    );
    println!(
        "| nft -f of the same delta, one namespace, p50 | {:.2} ms |",
        pct(&nft_times, 0.5).as_secs_f64() * 1e3
    );
    println!(
        "| nft -f of the same delta × {pods_n} pods (sequential estimate) | {:.0} ms |",
        pct(&nft_times, 0.5).as_secs_f64() * 1e3 * pods_n as f64
    );
    println!(
        "| process RSS: before / converged | {} / {} MiB |",
        before.rss_bytes >> 20,
        held.rss_bytes >> 20
    );
    println!(
        "| open fds / threads, converged | {} / {} |",
        held.open_fds, held.threads
    );
    let t = Instant::now();
    drop(farm);
    eprintln!("{pods_n} pods removed in {:?}", t.elapsed());
}
