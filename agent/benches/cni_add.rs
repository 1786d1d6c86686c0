//! `ADD` latency added by `linx-cni`: the real chain (Debian's `bridge` +
//! `host-local`, then `linx-cni`) run as a runtime runs it, inside a
//! throwaway node namespace, against the agent (controller and endpoint in
//! this process) already keeping PODS pods (default 110, the kubelet's
//! default maximum) with an R-rule ruleset (default 200); against the same
//! chain without `linx-cni` on a node with as many pods. Each sample is
//! one new pod's `ADD` (then its `DEL`), the two chains interleaved.
//!
//! `cargo bench -p linx-agent --bench cni_add [-- PODS RULES SAMPLES]`
//! (root: it makes namespaces, removed at the end).

use std::sync::Arc;
use std::time::{Duration, Instant};

use linx_agent::cni::EndpointOptions;
use linx_agent::local::{self, LocalLookup};
use linx_agent::testing::{cni_args, pod_uid, resolver, CniChain};
use linx_agent::{NodeController, Options, Pod, PodState};
use linx_cni::conflist::Settings;
use linx_netfilter::testing::{synthetic_chain, TestNetns};

fn pod(i: usize) -> Pod {
    Pod {
        namespace: "bench".into(),
        name: format!("pod-{i}"),
        uid: pod_uid(200_000 + i as u32),
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// One pod's ADD through `chain`: the time of the whole chain and of its
/// last plugin (`linx-cni` when it is there).
fn add(chain: &CniChain, ns: &TestNetns, p: &Pod) -> (Duration, Duration) {
    let cid = format!("bench{}", p.uid.replace('-', ""));
    let args = cni_args(p, &cid);
    let n = chain.list["plugins"].as_array().map_or(0, Vec::len);
    let t = Instant::now();
    let mut prev: Option<Vec<u8>> = None;
    let mut last = Duration::ZERO;
    for i in 0..n {
        let s = Instant::now();
        let out = chain.plugin(i, "ADD", &ns.path(), &cid, &args, prev.as_deref());
        last = s.elapsed();
        assert!(out.ok(), "ADD failed: {}", out.stderr);
        prev = Some(out.stdout);
    }
    (t.elapsed(), last)
}

fn del(chain: &CniChain, ns: &TestNetns, p: &Pod) {
    let cid = format!("bench{}", p.uid.replace('-', ""));
    let out = chain.del(&ns.path(), &cid, &cni_args(p, &cid));
    assert!(out.ok(), "DEL failed: {}", out.stderr);
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let pods_n = args.first().copied().unwrap_or(110);
    let rules = args.get(1).copied().unwrap_or(200);
    let samples = args.get(2).copied().unwrap_or(200);
    let rt = tokio::runtime::Runtime::new().unwrap();

    let with = Arc::new(CniChain::new(81, Some(Settings::default())));
    let without = Arc::new(CniChain::new(82, None));
    // Every pod the bench makes, selected by one R-rule ruleset.
    let all: Vec<Pod> = (0..pods_n + 3 * samples).map(pod).collect();
    std::fs::write(with.dir.join("fw.nft"), synthetic_chain(rules)).unwrap();
    let list: Vec<serde_json::Value> = all
        .iter()
        .map(|p| serde_json::json!({"uid": p.uid, "namespace": p.namespace, "name": p.name, "ruleset": "fw.nft"}))
        .collect();
    let pods_file = with.dir.join("pods.json");
    std::fs::write(&pods_file, serde_json::json!({ "pods": list }).to_string()).unwrap();

    let _guard = rt.enter();
    let node = NodeController::new(
        Arc::new(resolver()),
        Options::default(),
        linx_agent::metrics::Metrics::default(),
    );
    // The policy is compiled once, as the agent's is, before any ADD.
    let lookup = Arc::new(LocalLookup::new(&pods_file));
    lookup.set(local::load(&pods_file).unwrap());
    let endpoint = linx_agent::cni::listen(EndpointOptions {
        socket: with.socket(),
        max_wait: Duration::from_secs(60),
        host_netns: "/proc/self/ns/net".into(),
    })
    .unwrap()
    .serve(node.handle(), lookup)
    .unwrap();

    eprintln!("putting {pods_n} pods on each node...");
    let mut resident = Vec::with_capacity(2 * pods_n);
    let t = Instant::now();
    for p in &all[..pods_n] {
        let (a, b) = (TestNetns::new(), TestNetns::new());
        add(&with, &a, p);
        add(&without, &b, p);
        resident.push(a);
        resident.push(b);
    }
    let setup = t.elapsed();
    let held = node
        .reports()
        .snapshot()
        .values()
        .filter(|r| r.state == PodState::Applied)
        .count();
    assert_eq!(held, pods_n, "the agent keeps every resident pod");

    eprintln!("measuring {samples} ADDs per chain...");
    let (mut chain_with, mut chain_without, mut plugin) = (Vec::new(), Vec::new(), Vec::new());
    let mut agent = Vec::new();
    for i in 0..samples {
        let (p, q, r) = (
            &all[pods_n + 3 * i],
            &all[pods_n + 3 * i + 1],
            &all[pods_n + 3 * i + 2],
        );
        let (a, b) = (TestNetns::new(), TestNetns::new());
        let (total, last) = add(&with, &a, p);
        // The firewall is there when ADD returns (checked on a few).
        if i % 50 == 0 {
            assert!(a.ruleset().contains("comment \"r0\""));
        }
        chain_with.push(total);
        plugin.push(last);
        chain_without.push(add(&without, &b, q).0);
        del(&with, &a, p);
        del(&without, &b, q);
        // The agent's part alone: the request from this process, no
        // plugin process and no interface set up.
        let c = TestNetns::new();
        let fd = std::fs::File::open(c.path()).unwrap();
        let req = linx_cni::protocol::Request::Add {
            pod: linx_cni::protocol::PodRef {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                uid: Some(r.uid.clone()),
            },
            container_id: format!("direct{i}"),
            timeout_ms: 10_000,
        };
        let t = Instant::now();
        let resp = linx_cni::protocol::call(
            &with.socket(),
            &req,
            Some(std::os::fd::AsFd::as_fd(&fd)),
            Duration::from_secs(10),
        )
        .unwrap();
        agent.push(t.elapsed());
        assert!(
            matches!(resp, linx_cni::protocol::Response::Applied { .. }),
            "{resp:?}"
        );
        let del = linx_cni::protocol::Request::Del {
            pod: None,
            container_id: format!("direct{i}"),
        };
        linx_cni::protocol::call(&with.socket(), &del, None, Duration::from_secs(10)).unwrap();
    }
    for v in [&mut chain_with, &mut chain_without, &mut plugin, &mut agent] {
        v.sort();
    }
    let row = |name: &str, v: &[Duration]| {
        println!(
            "| {name:<44} | {:>9} | {:>9} | {:>9} |",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.99)),
            ms(*v.last().unwrap())
        );
    };
    println!(
        "linx-cni ADD latency: {pods_n} pods on the node, {rules}-rule ruleset, {samples} samples per chain, {} cpus (setup of the resident pods: {})",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        ms(setup)
    );
    println!(
        "| ADD of one new pod                           | p50       | p99       | max       |"
    );
    println!(
        "|----------------------------------------------|-----------|-----------|-----------|"
    );
    row("bridge + host-local (without linx-cni)", &chain_without);
    row("bridge + host-local + linx-cni", &chain_with);
    row("linx-cni alone (process, agent, kernel)", &plugin);
    row("the agent's answer alone (request to commit)", &agent);
    let diff = |p: f64| percentile(&chain_with, p).saturating_sub(percentile(&chain_without, p));
    println!(
        "| added by linx-cni (difference of the above)  | {:>9} | {:>9} |           |",
        ms(diff(0.5)),
        ms(diff(0.99))
    );
    endpoint.abort();
    rt.block_on(node.shutdown());
    drop(resident);
}
