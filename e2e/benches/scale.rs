//! The agent at fleet scale, through the fake API server: the built
//! `linx-operator` and `linx-agent` binaries (release), PODS pods on one
//! node (processes in network namespaces and pod cgroups of their own,
//! `testing::PodFarm`) selected by RULESETS FirewallRulesets of RULES
//! rules each (every pod by one, over 10 namespaces). For each size, from
//! a fresh API server, operator and agent:
//!
//! * converge from start: the agent's start to every pod's first commit;
//! * an edit of every ruleset (one rule each, 2 operations per pod): from
//!   the first PATCH to the last pod's commit (every pod's time from the
//!   API change is at most this), each pod's time to program (the node
//!   report's per-ruleset p50/p99, and `linx_program_latency_seconds`);
//! * pod churn at RATE pods per second for CHURN seconds (one pod deleted
//!   and one created each 1/RATE s): pods programmed per second, and how
//!   long after the churn every new pod was programmed;
//! * the agent's RSS, CPU, open fds and threads (from `/proc`), and the API
//!   requests the agent and the operator made (told apart by their
//!   `User-Agent`), per minute over the edit and churn, with the watches
//!   they opened and the writes (reports, statuses, address sets).
//!
//! `cargo bench -p linx-e2e --bench scale [-- SIZES RULESETS RULES CHURN RATE]`
//! (root), e.g. `-- 1000 100 50 20 50`; by default `100,200 20 20 2 50` (keep
//! CHURN × RATE ≤ the smallest size: a pod replaced before the agent found it
//! is never programmed).
//! The agent starts under `ulimit -Sn 1024` (containerd's default) and
//! raises its own limit. The binaries are built as `testing::binary` does
//! (the whole workspace, whose features differ from `-p linx-e2e`'s, so the
//! next `cargo bench -p linx-e2e` rebuilds the dependencies): set
//! `LINX_AGENT_BIN` and `LINX_OPERATOR_BIN` to copies of built ones to skip
//! that when running it again.
//!
//! Churn is offered one pod at a time, every 1/RATE s: the pod deleted
//! in the API and its process killed, a new one created in the API and a
//! process made its pod (moved into the pod's cgroup). The new pods'
//! processes and namespaces are made before the churn starts
//! (`PodFarm::prepare`), and the old ones' cgroups removed after it
//! (`PodFarm::retire`), so that a step costs two API requests and a
//! cgroup move; the table says what was offered. (It offered ~8 pods/s
//! while each step made a namespace and each request to the fake API
//! server waited 40 ms on Nagle's algorithm.) A new pod's process
//! appears just after its API object, as with a kubelet; without the CNI
//! plugin here, a pod the agent looked at too early is found on its
//! 2 s retry.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use linx_agent::metrics::ProcessStats;
use linx_agent::testing::{binary, PodFarm};
use linx_crds::{FirewallNodeReport, FirewallRuleset};
use linx_e2e::apiserver::FakeApiServer;
use linx_e2e::{free_addr, peak_rss_kib, scrape};
use serde_json::json;

const NODE: &str = "scale-node";
const NAMESPACES: usize = 10;

/// A process of ours, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(bin: &Path, args: &[&str], kubeconfig: &Path, log: &Path) -> Proc {
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new("sh")
        // containerd's soft limit on open files; the binaries raise it.
        .arg("-c")
        .arg("ulimit -Sn 1024 && exec \"$0\" \"$@\"")
        .arg(bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info,kube=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    Proc(child)
}

fn nft(ruleset: usize, rules: usize, edited: bool) -> String {
    let mut s = String::from(
        "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n",
    );
    for j in 0..rules.saturating_sub(1) {
        let port = if edited && j == rules / 2 {
            60000
        } else {
            1000 + j
        };
        s.push_str(&format!(
            "\t\tip saddr 10.{}.{}.0/24 tcp dport {port} accept\n",
            ruleset % 250,
            j % 250
        ));
    }
    s.push_str("\t}\n}\n");
    s
}

fn namespace(group: usize) -> String {
    format!("scale-{}", group % NAMESPACES)
}

/// Sum of the samples of `name` whose labels contain every one of `labels`.
fn sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `linx_program_latency_seconds` bucket counts (upper bound → count).
fn latency_buckets(metrics: &str) -> Vec<(f64, f64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with("linx_program_latency_seconds_bucket{"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// The bucket bound holding quantile `q` of the samples between two scrapes.
fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let b = before.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1);
            (*le, n - b)
        })
        .collect();
    let total = counts.last().map_or(0.0, |x| x.1);
    counts
        .iter()
        .find(|(_, n)| *n >= (total * q).ceil())
        .map_or(f64::NAN, |x| x.0)
}

/// First-commit reconciles (one per pod the agent attached to).
fn started(metrics: &str) -> f64 {
    sum(
        metrics,
        "linx_agent_reconciles_total",
        &["trigger=\"Start\""],
    )
}

fn desired_changed(metrics: &str) -> f64 {
    sum(
        metrics,
        "linx_agent_reconciles_total",
        &["trigger=\"Desired\"", "result=\"Changed\""],
    )
}

/// Polls the agent's metrics every 20 ms until `done` holds.
fn until(addr: &str, timeout: Duration, what: &str, done: impl Fn(&str) -> bool) -> Duration {
    let t = Instant::now();
    loop {
        if done(&scrape(addr)) {
            return t.elapsed();
        }
        assert!(t.elapsed() < timeout, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn client(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(cfg).expect("client")
}

/// Creates pod `i` of group `i % rulesets`; returns its UID.
async fn create_pod(c: &Client, i: usize, rulesets: usize) -> String {
    let g = i % rulesets;
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p-{i}"), "labels": {"app": format!("g{g}")}},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "linx.invalid/x:0"}]},
        "status": {"phase": "Running"},
    }))
    .unwrap();
    let made = Api::<Pod>::namespaced(c.clone(), &namespace(g))
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    made.metadata.uid.expect("a UID")
}

/// What the components asked of the API server, by `User-Agent` prefix.
#[derive(Default, Clone, Copy, Debug)]
struct Asked {
    total: usize,
    watches: usize,
    writes: usize,
}

fn asked(requests: &[(String, String)], who: &str) -> Asked {
    let mut a = Asked::default();
    for (_, line) in requests.iter().filter(|(u, _)| u.starts_with(who)) {
        a.total += 1;
        if line.starts_with("GET ") && line.contains("watch=true") {
            a.watches += 1;
        }
        if !line.starts_with("GET ") {
            a.writes += 1;
        }
    }
    a
}

struct Figures {
    pods: usize,
    made: Duration,
    converge: Duration,
    edit_all: Duration,
    edit_p50_ms: i64,
    edit_p99_ms: i64,
    hist_p50: f64,
    hist_p99: f64,
    churned: usize,
    churn_secs: f64,
    churn_programmed_per_sec: f64,
    churn_drain: Duration,
    agent: ProcessStats,
    agent_cpu: f64,
    agent_rss_peak_kib: u64,
    operator: ProcessStats,
    window_secs: f64,
    by_agent: Asked,
    by_operator: Asked,
    requests: Vec<String>,
}

fn run(pods_n: usize, rulesets: usize, rules: usize, churn: u64, rate: u64) -> Figures {
    assert!(
        (churn * rate) as usize <= pods_n,
        "churn replaces {} pods, more than the {pods_n} there are: new pods would go before the agent found them",
        churn * rate
    );
    let agent_bin = binary("linx-agent", "LINX_AGENT_BIN");
    let operator_bin = binary("linx-operator", "LINX_OPERATOR_BIN");
    let dir = std::env::temp_dir().join(format!("linx-scale-{}-{pods_n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = FakeApiServer::start().expect("fake API server");
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(client(&kubeconfig));

    // The cluster: a node, namespaces, rulesets, pods (objects, then processes).
    let t = Instant::now();
    let mut uids: Vec<String> = rt.block_on(async {
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.clone());
        let node = serde_json::from_value(json!({"metadata": {"name": NODE}})).unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c.clone());
        for n in 0..NAMESPACES {
            let ns = serde_json::from_value(json!({"metadata": {"name": namespace(n)}})).unwrap();
            nss.create(&PostParams::default(), &ns).await.unwrap();
        }
        for k in 0..rulesets {
            let rs: FirewallRuleset = serde_json::from_value(json!({
                "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
                "metadata": {"name": format!("rs-{k}")},
                "spec": {"podSelector": {"matchLabels": {"app": format!("g{k}")}},
                         "nft": nft(k, rules, false)},
            }))
            .unwrap();
            Api::<FirewallRuleset>::namespaced(c.clone(), &namespace(k))
                .create(&PostParams::default(), &rs)
                .await
                .expect("create ruleset");
        }
        let mut uids = Vec::with_capacity(pods_n);
        for i in 0..pods_n {
            uids.push(create_pod(&c, i, rulesets).await);
        }
        uids
    });
    let mut farm = PodFarm::new();
    farm.start(&uids);
    let made = t.elapsed();
    eprintln!("{pods_n} pods made in {made:?}");

    let op_metrics = free_addr();
    let _operator = start(
        &operator_bin,
        &[
            "--metrics-addr",
            &op_metrics,
            "--lease-namespace",
            &namespace(0),
            "--identity",
            "scale-operator",
            "--webhook-addr",
            "",
        ],
        &kubeconfig,
        &dir.join("operator.log"),
    );
    let metrics = free_addr();
    let t = Instant::now();
    let agent = start(
        &agent_bin,
        &[
            "run",
            "--node-name",
            NODE,
            "--report-interval-secs",
            "1",
            "--metrics-addr",
            &metrics,
            // As the e2e: pid 1's namespace may not be readable here; this
            // process's is the host's.
            "--proc-root",
            "/proc",
            "--host-netns",
            "/proc/self/ns/net",
        ],
        &kubeconfig,
        &dir.join("agent.log"),
    );
    let agent_pid = agent.0.id().to_string();
    until(&metrics, Duration::from_secs(900), "converge", |m| {
        started(m) >= pods_n as f64
    });
    let converge = t.elapsed();
    eprintln!("converged in {converge:?}");
    // The churn's new pods' processes, made ahead (outside the window).
    let churned = (churn * rate) as usize;
    farm.prepare(churned);
    let cpu_start = ProcessStats::of(&agent_pid).cpu_seconds;

    // The edit: one rule of every ruleset.
    let window = Instant::now();
    let seen_before = server.requests().len();
    let m0 = scrape(&metrics);
    let (d0, h0) = (desired_changed(&m0), latency_buckets(&m0));
    let t = Instant::now();
    rt.block_on(async {
        for k in 0..rulesets {
            Api::<FirewallRuleset>::namespaced(c.clone(), &namespace(k))
                .patch(
                    &format!("rs-{k}"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"nft": nft(k, rules, true)}})),
                )
                .await
                .expect("edit ruleset");
        }
    });
    let edit_all = t.elapsed()
        + until(&metrics, Duration::from_secs(300), "the edit", |m| {
            desired_changed(m) - d0 >= pods_n as f64
        });
    let m1 = scrape(&metrics);
    let h1 = latency_buckets(&m1);
    let (hist_p50, hist_p99) = (
        bucket_quantile(&h0, &h1, 0.5),
        bucket_quantile(&h0, &h1, 0.99),
    );
    // Each pod's time to program, as the node report gives it per ruleset.
    let reports: Api<FirewallNodeReport> = Api::all(c.clone());
    let (edit_p50_ms, edit_p99_ms) = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reports.get(NODE).await {
                let done = r.spec.rulesets.len() == rulesets
                    && r.spec.rulesets.iter().all(|e| {
                        // `enforced_generation` is set only while another
                        // generation than `generation` is enforced.
                        e.generation == 2
                            && e.enforced_generation.is_none()
                            && e.applied_pods == e.matched_pods
                    });
                if done {
                    let mut p50: Vec<i64> = r
                        .spec
                        .rulesets
                        .iter()
                        .filter_map(|e| Some(e.program_latency?.p50_millis))
                        .collect();
                    p50.sort_unstable();
                    let p99 = r
                        .spec
                        .rulesets
                        .iter()
                        .filter_map(|e| Some(e.program_latency?.p99_millis))
                        .max()
                        .unwrap_or(-1);
                    return (p50.get(p50.len() / 2).copied().unwrap_or(-1), p99);
                }
            }
            assert!(
                Instant::now() < deadline,
                "the node report never showed the edit"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    eprintln!("edit reached every pod in {edit_all:?}");

    // Churn: one pod out and one in every 1/rate s.
    let s0 = started(&scrape(&metrics));
    let mut next = pods_n;
    let mut oldest = 0;
    let tick = Duration::from_secs_f64(1.0 / rate as f64);
    let t = Instant::now();
    rt.block_on(async {
        let mut due = tokio::time::Instant::now();
        for _ in 0..churned {
            tokio::time::sleep_until(due).await;
            due += tick;
            let g = oldest % rulesets;
            let _ = Api::<Pod>::namespaced(c.clone(), &namespace(g))
                .delete(&format!("p-{oldest}"), &DeleteParams::default())
                .await;
            farm.retire(&uids[oldest]);
            oldest += 1;
            let uid = create_pod(&c, next, rulesets).await;
            assert!(farm.adopt(&uid), "a prepared process");
            // Churn outlasts the first pods: the new ones go next.
            uids.push(uid);
            next += 1;
        }
    });
    let churn_secs = t.elapsed().as_secs_f64();
    let s1 = started(&scrape(&metrics));
    let churn_drain = until(
        &metrics,
        Duration::from_secs(300),
        "the churned pods",
        |m| started(m) - s0 >= churned as f64,
    );
    let window_secs = window.elapsed().as_secs_f64();
    let requests = server.requests_by()[seen_before..].to_vec();
    let agent_stats = ProcessStats::of(&agent_pid);
    let agent_cpu = agent_stats.cpu_seconds - cpu_start;
    let agent_rss_peak_kib = peak_rss_kib(agent.0.id());
    let operator_pid = _operator.0.id().to_string();
    let operator = ProcessStats::of(&operator_pid);

    // Sanity: a pod's kernel holds the edit (nft's own listing).
    let listing = farm.pods()[0].nft(&["list", "ruleset"]).expect("nft");
    assert!(listing.contains("tcp dport 60000 accept"), "{listing}");
    drop(agent);
    drop(_operator);
    let t = Instant::now();
    drop(farm);
    eprintln!("pods removed in {:?}", t.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
    let lines = requests.iter().map(|(u, l)| format!("{u} {l}")).collect();
    Figures {
        pods: pods_n,
        made,
        converge,
        edit_all,
        edit_p50_ms,
        edit_p99_ms,
        hist_p50,
        hist_p99,
        churned,
        churn_secs,
        churn_programmed_per_sec: (s1 - s0) / churn_secs,
        churn_drain,
        agent: agent_stats,
        agent_cpu,
        agent_rss_peak_kib,
        operator,
        window_secs,
        by_agent: asked(&requests, "linx-agent/"),
        by_operator: asked(&requests, "linx-operator/"),
        requests: lines,
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let sizes: Vec<usize> = args
        .first()
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 200]);
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (rulesets, rules, churn, rate) = (
        num(1, 20) as usize,
        num(2, 20) as usize,
        num(3, 2),
        num(4, 50),
    );
    let figures: Vec<Figures> = sizes
        .iter()
        .map(|&n| run(n, rulesets, rules, churn, rate))
        .collect();

    println!(
        "linx at scale: {rulesets} FirewallRulesets x {rules} rules, one node, fake API server, {} cpus, load average {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let head: Vec<String> = figures.iter().map(|f| format!("{} pods", f.pods)).collect();
    println!("| measure | {} |", head.join(" | "));
    println!("| --- |{}", " ---: |".repeat(figures.len()));
    let row = |name: &str, f: &dyn Fn(&Figures) -> String| {
        let cells: Vec<String> = figures.iter().map(f).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    let per_min = |n: usize, f: &Figures| n as f64 * 60.0 / f.window_secs;
    row("pods made (API objects, processes)", &|f| {
        format!("{:.1} s", f.made.as_secs_f64())
    });
    row("converge from start", &|f| ms(f.converge));
    row("edit of every ruleset → last pod committed", &|f| {
        ms(f.edit_all)
    });
    row(
        "edit, time to program per pod: p50 / p99 (node report)",
        &|f| format!("{} / {} ms", f.edit_p50_ms, f.edit_p99_ms),
    );
    row(
        "edit, linx_program_latency_seconds bucket of p50 / p99",
        &|f| format!("≤ {} / ≤ {} s", f.hist_p50, f.hist_p99),
    );
    row("churn offered: pods replaced in (pods/s)", &|f| {
        format!(
            "{} in {:.1} s ({:.1}/s)",
            f.churned,
            f.churn_secs,
            f.churned as f64 / f.churn_secs
        )
    });
    row("churn: new pods programmed per second", &|f| {
        format!("{:.1}", f.churn_programmed_per_sec)
    });
    row("churn: last new pod programmed after the churn", &|f| {
        ms(f.churn_drain)
    });
    row("agent RSS (peak)", &|f| {
        format!(
            "{} MiB ({} MiB)",
            f.agent.rss_bytes >> 20,
            f.agent_rss_peak_kib >> 10
        )
    });
    row("agent CPU, edit and churn", &|f| {
        format!("{:.1} s", f.agent_cpu)
    });
    row("agent open fds / threads", &|f| {
        format!("{} / {}", f.agent.open_fds, f.agent.threads)
    });
    row("operator RSS", &|f| {
        format!("{} MiB", f.operator.rss_bytes >> 20)
    });
    row(
        "agent API requests per minute (watches opened, writes)",
        &|f| {
            format!(
                "{:.0} ({}, {})",
                per_min(f.by_agent.total, f),
                f.by_agent.watches,
                f.by_agent.writes
            )
        },
    );
    row(
        "operator API requests per minute (watches opened, writes)",
        &|f| {
            format!(
                "{:.0} ({}, {})",
                per_min(f.by_operator.total, f),
                f.by_operator.watches,
                f.by_operator.writes
            )
        },
    );
    row("window of those counts", &|f| {
        format!("{:.1} s", f.window_secs)
    });
    if std::env::var_os("LINX_SCALE_REQUESTS").is_some() {
        for f in &figures {
            let mut by: BTreeMap<String, usize> = BTreeMap::new();
            for l in &f.requests {
                let key: String = l.split('?').next().unwrap_or(l).to_string();
                *by.entry(key).or_default() += 1;
            }
            eprintln!("requests at {} pods:", f.pods);
            for (k, n) in by {
                eprintln!("{n:>6} {k}");
            }
        }
    }
}
