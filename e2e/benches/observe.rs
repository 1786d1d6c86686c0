//! Observability under load (issue #18, done-when 5), through the fake API
//! server: the built `linx-agent` (release) on one node with PODS pods
//! (processes in network namespaces and pod cgroups of their own), half of
//! them selected by a FirewallRuleset in `Audit`, half by the same rules in
//! `Enforce`, both with `logging.drops`, so every packet the rule
//! `udp dport 9999 counter drop` meets is read by the agent from the pod's
//! NFLOG group (a would-be drop, or a drop). Real packets: a sender thread
//! in a peer namespace, linked to every pod by a veth pair, sends UDP to
//! port 9999 round-robin at RATE datagrams per second for SECS seconds.
//! Meanwhile rounds of TRACES FirewallTraces at once (one per pod, taking
//! turns) trace 5 of those datagrams each.
//!
//! Measured and printed: the agent's CPU (utime + stime of `/proc/PID/stat`
//! over the flood) and RSS; the rate really achieved (the kernel's rule
//! counters in every pod); per pod, the drop-log lines per second against
//! the configured rate (`--drop-log-rate LOG_RATE`); traces completed and
//! their latency (created → `Completed` seen, polled every 50 ms).
//!
//! What must hold (the bench fails otherwise, after printing): in every
//! pod, packets counted by the kernel = lines + suppressed + lost (the
//! agent's `{"suppressed": N}` and `{"lost": N}` lines), lines ≤ LOG_RATE ×
//! (W + 1), W the seconds from the flood's start to every packet accounted
//! for (the bucket holds one second's worth at the start); the agent's metrics agree (`linx_drop_log_suppressed_total`
//! = the suppressed lines, `linx_audit_would_drop_total` and
//! `linx_dropped_packets_total` = packets − lost); every line and every
//! traced packet names its FirewallRuleset, rule index and line:column;
//! every trace completes with its count.
//!
//! `cargo bench -p linx-e2e --bench observe [-- PODS RATE SECS LOG_RATE TRACES]`
//! (root); by default `20 10000 10 100 20`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};
use linx_agent::metrics::ProcessStats;
use linx_agent::testing::veth;
use linx_crds::trace::reasons;
use linx_crds::{FirewallTrace, TracePhase};
use linx_e2e::cluster::{
    apply_spec, create_trace_of, on_fake_apiserver, Flow, Proc, Scratch, TestPod, WAIT,
};
use linx_e2e::{eventually, free_addr, peak_rss_kib, sample, scrape};
use linx_netfilter::testing::TestNetns;
use serde_json::{json, Value};

const PORT: u16 = 9999;
/// The flooded rule is rule 1 of `inet linx input`, written at 5:3.
const NFT: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 22 drop\n\t\tudp dport 9999 counter drop\n\t}\n}\n";
const RULE_INDEX: u64 = 1;
const RULE_LABEL: &str = "inet linx input #1";
const SOURCE: &str = "5:3";
/// Packets each trace waits for.
const TRACE_PACKETS: u32 = 5;

#[derive(Clone, Copy, Debug)]
struct Args {
    pods: usize,
    rate: u64,
    secs: u64,
    log_rate: u32,
    traces: usize,
}

/// Pod `i`'s FirewallRuleset (and `app` label): even pods Audit, odd Enforce.
fn ruleset_of(i: usize) -> &'static str {
    if i % 2 == 0 {
        "audit"
    } else {
        "enforce"
    }
}

/// The addresses of pod `i`'s veth pair: (the peer's end, the pod's).
fn addrs(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    let (a, b) = (100 + (i / 250) as u8, (i % 250) as u8);
    (Ipv4Addr::new(10, a, b, 1), Ipv4Addr::new(10, a, b, 2))
}

/// What the sender did: datagrams sent, sends that failed, its duration.
struct Sent {
    sent: u64,
    failed: u64,
    took: Duration,
}

/// Sends `total` UDP datagrams from `peer` to the pods, round-robin, paced
/// at `rate` per second (behind, it catches up: the rate over the run).
fn flood(
    peer: &TestNetns,
    to: Vec<SocketAddrV4>,
    rate: u64,
    total: u64,
) -> std::thread::JoinHandle<Sent> {
    let path = peer.path();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(path).expect("open the peer namespace");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("enter the peer namespace");
        let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind the sender");
        let (mut sent, mut failed) = (0u64, 0u64);
        let t = Instant::now();
        while sent + failed < total {
            let due = ((t.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
            while sent + failed < due {
                let i = ((sent + failed) % to.len() as u64) as usize;
                match s.send_to(b"linx observe bench", to[i]) {
                    Ok(_) => sent += 1,
                    Err(_) => failed += 1,
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        Sent {
            sent,
            failed,
            took: t.elapsed(),
        }
    })
}

/// Packets the flooded rule's (first) counter holds in the pod's kernel.
fn counted(pod: &TestPod) -> u64 {
    let t = pod.table("inet", "linx");
    t.lines()
        .find(|l| l.contains("udp dport 9999"))
        .and_then(|l| l.split("counter packets ").nth(1))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {}/{}: {t}", pod.namespace, pod.name))
}

/// One pod's drop log as the agent wrote it.
#[derive(Clone, Copy, Debug, Default)]
struct Logged {
    lines: u64,
    suppressed: u64,
    lost: u64,
    /// Lines not naming the pod's FirewallRuleset, rule and source.
    wrong: u64,
}

impl std::ops::Sub for Logged {
    type Output = Logged;
    fn sub(self, b: Logged) -> Logged {
        Logged {
            lines: self.lines - b.lines,
            suppressed: self.suppressed - b.suppressed,
            lost: self.lost - b.lost,
            wrong: self.wrong - b.wrong,
        }
    }
}

/// The agent's stdout, per pod (by index).
fn logged(out: &Path, uids: &HashMap<String, usize>) -> Vec<Logged> {
    let mut per = vec![Logged::default(); uids.len()];
    let text = std::fs::read_to_string(out).unwrap_or_default();
    for v in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let Some(&i) = v["pod"]["uid"].as_str().and_then(|u| uids.get(u)) else {
            continue;
        };
        let p = &mut per[i];
        if let Some(n) = v["suppressed"].as_u64() {
            p.suppressed += n;
        } else if let Some(n) = v["lost"].as_u64() {
            p.lost += n;
        } else {
            p.lines += 1;
            let kind = if ruleset_of(i) == "audit" {
                "audit"
            } else {
                "drop"
            };
            let ok = v["ruleset"] == ruleset_of(i)
                && v["kind"] == kind
                && v["rule"]["index"] == RULE_INDEX
                && v["rule"]["source"] == SOURCE
                && v["dport"] == PORT;
            p.wrong += u64::from(!ok);
        }
    }
    per
}

/// What the rounds of traces gave.
#[derive(Debug, Default)]
struct Traced {
    rounds: usize,
    created: usize,
    completed: usize,
    /// Traces that did not complete with their count, and why.
    failures: Vec<String>,
    /// Traced packets whose deciding step is not the flooded rule.
    misattributed: usize,
    latencies: Vec<Duration>,
}

/// One round: `n` traces at once (pod `k % pods`), each of 5 flooded
/// datagrams; waits until all have finished, then deletes them.
async fn trace_round(c: &Client, ns: &str, round: usize, n: usize, pods: usize, out: &mut Traced) {
    let api: Api<FirewallTrace> = Api::namespaced(c.clone(), ns);
    let mut pending: HashMap<String, (usize, Instant)> = HashMap::new();
    for k in 0..n {
        let name = format!("t{round}-{k}");
        let t = Instant::now();
        create_trace_of(
            c,
            ns,
            &name,
            &format!("p-{}", k % pods),
            "udp dport 9999",
            TRACE_PACKETS,
            60,
        )
        .await;
        pending.insert(name, (k % pods, t));
    }
    out.rounds += 1;
    out.created += n;
    let names: Vec<String> = pending.keys().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !pending.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Ok(list) = api.list(&Default::default()).await else {
            continue;
        };
        for t in list.items {
            let st = t.status.clone().unwrap_or_default();
            if !st.phase.is_some_and(TracePhase::is_finished) {
                continue;
            }
            let Some((pod, start)) = pending.remove(&t.name_any()) else {
                continue;
            };
            out.latencies.push(start.elapsed());
            let reason = st.current().map(|c| c.reason.clone()).unwrap_or_default();
            if st.phase != Some(TracePhase::Completed)
                || reason != reasons::COUNT_REACHED
                || st.packets.len() != TRACE_PACKETS as usize
            {
                out.failures.push(format!(
                    "{}: {:?} {reason}, {} packets",
                    t.name_any(),
                    st.phase,
                    st.packets.len()
                ));
                continue;
            }
            out.completed += 1;
            for p in &st.packets {
                let by = p.decided_by.and_then(|i| p.steps.get(i as usize));
                let right = by.is_some_and(|s| {
                    s.ruleset.as_deref() == Some(ruleset_of(pod))
                        && s.rule == Some(RULE_INDEX as u32)
                        && s.source.as_deref() == Some(SOURCE)
                });
                out.misattributed += usize::from(!right);
            }
        }
    }
    for name in pending.keys() {
        out.failures
            .push(format!("{name}: not finished after 90 s"));
    }
    for name in names {
        let _ = api.delete(&name, &DeleteParams::default()).await;
    }
}

struct Figures {
    made: Duration,
    instrumented: Duration,
    converge: Duration,
    sent: Sent,
    counted: Vec<u64>,
    logged: Vec<Logged>,
    /// Flood start → every pod's packets accounted for (or the wait gave up).
    window: Duration,
    accounted: bool,
    cpu: f64,
    cpu_drain: f64,
    rss_before: u64,
    rss_after: u64,
    rss_peak_kib: u64,
    threads: u64,
    fds: u64,
    metric_suppressed: f64,
    metric_lost: f64,
    metric_would_drop: f64,
    metric_dropped: f64,
    traced: Traced,
}

fn run(kubeconfig: &Path, a: Args) -> Figures {
    let f = Flow::start(kubeconfig, None, &["obs"]);
    let ns = f.namespaces[0].clone();
    let c = f.client.clone();
    let t = Instant::now();
    let pods: Vec<TestPod> = f.rt.block_on(async {
        let mut v = Vec::with_capacity(a.pods);
        for i in 0..a.pods {
            v.push(f.pod(&ns, &format!("p-{i}"), ruleset_of(i)).await);
        }
        v
    });
    let peer = TestNetns::new();
    for (i, p) in pods.iter().enumerate() {
        let (pa, pb) = addrs(i);
        veth(
            &peer,
            &format!("p{i}"),
            &format!("{pa}/24"),
            &p.netns,
            "eth0",
            &format!("{pb}/24"),
        );
    }
    let made = t.elapsed();
    let uids: HashMap<String, usize> = f.rt.block_on(async {
        let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(c.clone(), &ns);
        let mut m = HashMap::new();
        for i in 0..a.pods {
            let p = api.get(&format!("p-{i}")).await.expect("get pod");
            m.insert(p.uid().expect("a UID"), i);
        }
        m
    });

    let dir = Scratch::new(&format!("obsbench-{}", f.id));
    let out = dir.0.join("agent.out");
    let metrics = free_addr();
    let t = Instant::now();
    let agent = Proc::spawn(
        Proc::agent_command(kubeconfig, &f.node, &metrics)
            .args(["--drop-log-rate", &a.log_rate.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(std::fs::File::create(&out).expect("agent stdout")),
    );
    let pid = agent.0.id().to_string();
    f.rt.block_on(async {
        for (name, enforcement) in [("audit", "Audit"), ("enforce", "Enforce")] {
            let spec = json!({"podSelector": {"matchLabels": {"app": name}}, "enforcement": enforcement,
                              "logging": {"drops": true}, "nft": NFT});
            apply_spec(&c, &ns, name, spec).await;
            f.delete_at_end::<linx_crds::FirewallRuleset>(&ns, name);
        }
    });
    for p in &pods {
        eventually(&format!("{} instrumented", p.name), WAIT, || {
            p.table("inet", "linx").contains(" group ")
        });
    }
    let instrumented = t.elapsed();
    // One datagram each until every pod's reader answers: the flood then
    // meets readers already bound (a packet logged before is not lost,
    // just never read, and could not be accounted for).
    let to: Vec<SocketAddrV4> = (0..a.pods)
        .map(|i| SocketAddrV4::new(addrs(i).1, PORT))
        .collect();
    eventually("every pod's drop log read", WAIT, || {
        flood(&peer, to.clone(), 1_000_000, a.pods as u64)
            .join()
            .expect("sender");
        std::thread::sleep(Duration::from_millis(200));
        logged(&out, &uids).iter().all(|l| l.lines > 0)
    });
    let converge = t.elapsed();
    let counted0: Vec<u64> = pods.iter().map(counted).collect();
    let logged0 = logged(&out, &uids);
    let m0 = scrape(&metrics);
    let s0 = ProcessStats::of(&pid);

    let start = Instant::now();
    let sender = flood(&peer, to, a.rate, a.rate * a.secs);
    let mut traced = Traced::default();
    f.rt.block_on(async {
        let mut round = 0;
        // A round takes a few seconds: none starts in the flood's last 5 s.
        while round == 0
            || (!sender.is_finished()
                && start.elapsed() + Duration::from_secs(5) < Duration::from_secs(a.secs))
        {
            trace_round(&c, &ns, round, a.traces, a.pods, &mut traced).await;
            round += 1;
        }
    });
    let sent = sender.join().expect("sender");
    let s1 = ProcessStats::of(&pid);
    // Suppressed counts are said once a second: wait for the last.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (counted1, logged1, accounted) = loop {
        let c1: Vec<u64> = pods.iter().map(counted).collect();
        let l1 = logged(&out, &uids);
        let ok = (0..a.pods).all(|i| {
            let l = l1[i] - logged0[i];
            c1[i] - counted0[i] == l.lines + l.suppressed + l.lost
        });
        if ok || Instant::now() > deadline {
            break (c1, l1, ok);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let window = start.elapsed();
    let s2 = ProcessStats::of(&pid);
    let m1 = scrape(&metrics);
    let rss_peak_kib = peak_rss_kib(agent.0.id());
    let delta = |m: &str| sample(&m1, m) - sample(&m0, m);
    let series = |name: &str, ruleset: Option<&str>| match ruleset {
        Some(r) => format!("{name}{{namespace=\"{ns}\",ruleset=\"{r}\",rule=\"{RULE_LABEL}\"}}"),
        None => format!("{name}{{namespace=\"{ns}\"}}"),
    };
    let figures = Figures {
        made,
        instrumented,
        converge,
        sent,
        counted: (0..a.pods).map(|i| counted1[i] - counted0[i]).collect(),
        logged: (0..a.pods).map(|i| logged1[i] - logged0[i]).collect(),
        window,
        accounted,
        cpu: s1.cpu_seconds - s0.cpu_seconds,
        cpu_drain: s2.cpu_seconds - s0.cpu_seconds,
        rss_before: s0.rss_bytes,
        rss_after: s2.rss_bytes,
        rss_peak_kib,
        threads: s1.threads,
        fds: s1.open_fds,
        metric_suppressed: delta(&series("linx_drop_log_suppressed_total", None)),
        metric_lost: delta(&series("linx_nflog_lost_total", None)),
        metric_would_drop: delta(&series("linx_audit_would_drop_total", Some("audit"))),
        metric_dropped: delta(&series("linx_dropped_packets_total", Some("enforce"))),
        traced,
    };
    drop(agent);
    drop(peer);
    drop(pods);
    f.finish();
    figures
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let a = Args {
        pods: num(0, 20).max(1) as usize,
        rate: num(1, 10_000),
        secs: num(2, 10),
        log_rate: num(3, 100) as u32,
        traces: num(4, 20) as usize,
    };
    let mut figures = None;
    on_fake_apiserver("obsbench", |kubeconfig| figures = Some(run(kubeconfig, a)));
    let f = figures.expect("the run's figures");

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "linx observability under load: {} pods ({} Audit, {} Enforce, drop logs on), {} datagrams/s for {} s, {} traces at once, --drop-log-rate {}; {} cpus, load average {}",
        a.pods,
        a.pods.div_ceil(2),
        a.pods / 2,
        a.rate,
        a.secs,
        a.traces,
        a.log_rate,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let flood_secs = f.sent.took.as_secs_f64();
    let total: u64 = f.counted.iter().sum();
    let sum = |g: fn(&Logged) -> u64| f.logged.iter().map(g).sum::<u64>();
    let (lines, suppressed, lost, wrong) = (
        sum(|l| l.lines),
        sum(|l| l.suppressed),
        sum(|l| l.lost),
        sum(|l| l.wrong),
    );
    let per_sec: Vec<f64> = f
        .logged
        .iter()
        .map(|l| l.lines.saturating_sub(a.log_rate.into()) as f64 / flood_secs)
        .collect();
    let (min_ps, max_ps) = per_sec
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
    // One second's worth at the start, then `rate` a second: lines come
    // from the flood's start until every packet is accounted for.
    let bound = f64::from(a.log_rate) * (f.window.as_secs_f64() + 1.0);
    let over: Vec<usize> = (0..f.logged.len())
        .filter(|&i| f.logged[i].lines as f64 > bound)
        .collect();
    let unbalanced: Vec<usize> = (0..f.logged.len())
        .filter(|&i| f.counted[i] != f.logged[i].lines + f.logged[i].suppressed + f.logged[i].lost)
        .collect();
    let audit_packets: u64 = (0..f.counted.len())
        .filter(|i| ruleset_of(*i) == "audit")
        .map(|i| f.counted[i] - f.logged[i].lost)
        .sum();
    let enforce_packets: u64 = (0..f.counted.len())
        .filter(|i| ruleset_of(*i) == "enforce")
        .map(|i| f.counted[i] - f.logged[i].lost)
        .sum();
    let mut lat = f.traced.latencies.clone();
    lat.sort_unstable();
    let q = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };

    println!("| measure | |");
    println!("| --- | ---: |");
    let row = |k: &str, v: String| println!("| {k} | {v} |");
    row(
        "pods made (API objects, namespaces, veth pairs)",
        format!("{:.1} s", f.made.as_secs_f64()),
    );
    row(
        "agent start → every pod instrumented / its drop log read",
        format!("{} / {}", ms(f.instrumented), ms(f.converge)),
    );
    row(
        "datagrams sent (send errors), seconds",
        format!("{} ({}) in {:.2} s", f.sent.sent, f.sent.failed, flood_secs),
    );
    row(
        "packets the rule counted in the pods' kernels (rate achieved)",
        format!("{total} ({:.0}/s)", total as f64 / flood_secs),
    );
    row(
        "agent CPU over the flood (utime + stime), per packet",
        format!(
            "{:.2} s = {:.0}% of one core, {:.1} µs",
            f.cpu,
            100.0 * f.cpu / flood_secs,
            1e6 * f.cpu / total.max(1) as f64
        ),
    );
    row(
        "agent CPU including the drain until accounted",
        format!("{:.2} s", f.cpu_drain),
    );
    row(
        "agent RSS before / after (peak)",
        format!(
            "{:.1} / {:.1} MiB ({:.1} MiB)",
            f.rss_before as f64 / 1048576.0,
            f.rss_after as f64 / 1048576.0,
            f.rss_peak_kib as f64 / 1024.0
        ),
    );
    row(
        "agent threads / open fds",
        format!("{} / {}", f.threads, f.fds),
    );
    row(
        "drop-log lines per pod per second after the first second's burst, min / max (limit)",
        format!("{min_ps:.1} / {max_ps:.1} ({})", a.log_rate),
    );
    row(
        "lines / suppressed / lost, all pods",
        format!("{lines} / {suppressed} / {lost}"),
    );
    row(
        "packets = lines + suppressed + lost, per pod",
        format!(
            "{} of {} pods{}",
            a.pods - unbalanced.len(),
            a.pods,
            if f.accounted {
                ""
            } else {
                " (gave up waiting)"
            }
        ),
    );
    row(
        "lines ≤ rate × (seconds from the flood's start to accounted + 1), per pod",
        format!("{} of {} pods (≤ {bound:.0})", a.pods - over.len(), a.pods),
    );
    // What the agent's metrics say beside what they must equal.
    let metric_rows = [
        (
            "linx_drop_log_suppressed_total / Σ suppressed lines",
            f.metric_suppressed,
            suppressed,
        ),
        ("linx_nflog_lost_total / Σ lost lines", f.metric_lost, lost),
        (
            "linx_audit_would_drop_total / Audit pods' packets − lost",
            f.metric_would_drop,
            audit_packets,
        ),
        (
            "linx_dropped_packets_total / Enforce pods' packets − lost",
            f.metric_dropped,
            enforce_packets,
        ),
    ];
    for (k, got, want) in metric_rows {
        row(k, format!("{got} / {want}"));
    }
    row(
        "lines not naming ruleset, rule #1 and 5:3",
        wrong.to_string(),
    );
    row(
        "traces completed / created",
        format!(
            "{} / {} ({} rounds of {} at once)",
            f.traced.completed, f.traced.created, f.traced.rounds, a.traces
        ),
    );
    row(
        "trace latency, created → Completed seen: p50 / p99 / max",
        format!("{} / {} / {}", ms(q(0.5)), ms(q(0.99)), ms(q(1.0))),
    );
    row(
        "traced packets not decided by the flooded rule",
        f.traced.misattributed.to_string(),
    );
    println!(
        "(the whole wait, flood start → accounted: {})",
        ms(f.window)
    );

    let mut broken = Vec::new();
    if !unbalanced.is_empty() {
        let detail: Vec<String> = unbalanced
            .iter()
            .map(|&i| format!("p-{i}: {} counted, {:?}", f.counted[i], f.logged[i]))
            .collect();
        broken.push(format!("packets ≠ lines + suppressed + lost: {detail:?}"));
    }
    if !over.is_empty() {
        let detail: Vec<String> = over
            .iter()
            .map(|&i| format!("p-{i}: {:?}", f.logged[i]))
            .collect();
        broken.push(format!("over the rate: {detail:?}"));
    }
    for (k, got, want) in metric_rows {
        if got != want as f64 {
            broken.push(format!("{k}: {got} / {want}"));
        }
    }
    if wrong > 0 || f.traced.misattributed > 0 {
        broken.push("lines or traced packets misattributed".into());
    }
    if !f.traced.failures.is_empty() {
        broken.push(format!("traces failed: {:?}", f.traced.failures));
    }
    assert!(broken.is_empty(), "{broken:#?}");
}
