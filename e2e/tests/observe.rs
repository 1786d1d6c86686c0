//! Issue #18 in the cluster: a pod's packets traced through FirewallTrace
//! and `kubectl linx trace`, Audit letting would-be drops through and
//! counting them, Audit → Enforce as one minimal patch, drop logs within
//! their rate, traces refused for another namespace's pod and a
//! hostNetwork pod, no trace rules left after the agent is SIGKILLed.
//! Real packets: a peer namespace linked to the pod's by a veth pair.
//! Setup shared with the other cluster flows: `linx_e2e::cluster`.
//!
//! * `observe_flow`: against `LINX_E2E_KUBECONFIG` (skipped, with a
//!   printed reason, when unset); pods bound to `LINX_E2E_NODE` if set.
//! * `observe_flow_on_fake_apiserver`: against the fake API server.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::ResourceExt;
use linx_crds::trace::reasons as trace_reasons;
use linx_crds::{FirewallRuleset, FirewallTrace, TracePhase};
use linx_e2e::cluster::{
    apply_spec, create_trace, eventually_async, kubectl_bin, listing, on_fake_apiserver,
    real_cluster, trace_phase, Flow, Proc, Scratch, WAIT,
};
use linx_e2e::{eventually, free_addr, sample, scrape};
use linx_netfilter::testing::TestNetns;
use serde_json::{json, Value};

/// Rule 2 (6:3) drops TCP 22, rule 1 (5:3) accepts TCP 80, rule 3 (7:3)
/// drops UDP 9999; the policy drops the rest.
const GUARDED: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\ttcp dport 80 accept\n\t\ttcp dport 22 drop\n\t\tudp dport 9999 drop\n\t}\n}\n";
const PEER: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 82, 0, 1);
const POD: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 82, 0, 2);
/// Drop-log lines per second per pod the agent is started with.
const LOG_RATE: u32 = 10;

#[test]
fn observe_flow() {
    if let Some(kubeconfig) = real_cluster() {
        observe(&kubeconfig, std::env::var("LINX_E2E_NODE").ok());
    }
}

#[test]
fn observe_flow_on_fake_apiserver() {
    on_fake_apiserver("observe-fake", |kubeconfig| observe(kubeconfig, None));
}

/// The agent, its stdout (the drop-log lines) appended to `stdout`.
fn start_agent(kubeconfig: &Path, node: &str, metrics: &str, stdout: &Path) -> Proc {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stdout)
        .unwrap();
    let rate = LOG_RATE.to_string();
    Proc::spawn(
        Proc::agent_command(kubeconfig, node, metrics)
            .args(["--drop-log-rate", &rate])
            .env("RUST_LOG", "info,kube=warn")
            .stdout(out),
    )
}

/// Sends TCP SYNs from `peer` to `to` until `done` is set.
fn syns(
    peer: &TestNetns,
    to: std::net::SocketAddr,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let path = peer.path();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(path).unwrap();
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200));
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Whether one UDP datagram from `peer` to `pod`'s port 9999 arrives.
fn udp_arrives(peer: &TestNetns, pod: &TestNetns) -> bool {
    let to = std::net::SocketAddr::from((POD, 9999));
    let listener = pod
        .netns()
        .run_in(|| std::net::UdpSocket::bind(to).unwrap())
        .unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    peer.netns()
        .run_in(|| {
            let s = std::net::UdpSocket::bind((PEER, 0)).unwrap();
            s.send_to(b"audit", to).unwrap();
        })
        .unwrap();
    let mut buf = [0u8; 16];
    listener.recv_from(&mut buf).is_ok()
}

fn observe(kubeconfig: &Path, node: Option<String>) {
    let kubectl_bin = kubectl_bin();
    let f = Flow::start(kubeconfig, node, &["oa", "ob"]);
    let (rt, c, node_name) = (&f.rt, f.client.clone(), f.node.clone());
    let [ns_a, ns_b] = [0, 1].map(|i| f.namespaces[i].clone());
    let (web, other) = rt.block_on(async {
        (
            f.pod(&ns_a, "web-0", "web").await,
            f.pod(&ns_b, "web-0", "web").await,
        )
    });
    // A hostNetwork pod: no process of its own needed (never entered).
    rt.block_on(async {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "host-0", "labels": {"app": "host"}},
            "spec": {"nodeName": node_name, "hostNetwork": true,
                     "containers": [{"name": "c", "image": "linx.invalid/not-pulled:0"}]},
        }))
        .unwrap();
        Api::<Pod>::namespaced(c.clone(), &ns_a)
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
    });
    f.delete_at_end::<Pod>(&ns_a, "host-0");
    let peer = TestNetns::new();
    peer.link(&web.netns, PEER, POD);

    let dir = Scratch::new(&format!("observe-{}", f.id));
    let agent_out = dir.0.join("agent.out");
    let metrics = free_addr();
    let identity = format!("linx-e2e-{}-o", f.id);
    let _operator = Proc::operator(kubeconfig, &ns_a, &identity, &[]);
    let mut agent = start_agent(kubeconfig, &node_name, &metrics, &agent_out);
    let guarded = json!({"podSelector": {"matchLabels": {"app": "web"}}, "nft": GUARDED});
    let guarded_text = listing(GUARDED, "inet", "linx");

    rt.block_on(async {
        apply_spec(&c, &ns_a, "web", guarded.clone()).await;
        f.delete_at_end::<FirewallRuleset>(&ns_a, "web");
        eventually_async("web in the pod's kernel", || async {
            let got = web.table("inet", "linx");
            (got == guarded_text).then_some(()).ok_or(got)
        })
        .await;

        // A dropped port: the path names the FirewallRuleset, the rule's
        // index and its line:column.
        create_trace(&c, &ns_a, "ssh", "web-0", "tcp dport 22", 30).await;
        f.delete_at_end::<FirewallTrace>(&ns_a, "ssh");
        trace_phase(&c, &ns_a, "ssh", TracePhase::Running).await;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sender = syns(&peer, (POD, 22).into(), done.clone());
        let st = trace_phase(&c, &ns_a, "ssh", TracePhase::Completed).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        sender.join().unwrap();
        assert_eq!(st.packets.len(), 1, "{st:?}");
        let p = &st.packets[0];
        assert_eq!(p.verdict.as_deref(), Some("drop"), "{p}");
        let by = &p.steps[p.decided_by.expect("a deciding step") as usize];
        assert_eq!(
            (
                by.ruleset.as_deref(),
                by.table.as_str(),
                by.chain.as_str(),
                by.rule,
                by.source.as_deref()
            ),
            (Some("web"), "inet linx", "input", Some(2), Some("6:3")),
            "{p}"
        );
        assert!(p.packet.contains("dport 22"), "{p}");
    });

    // An accepted port through `kubectl linx trace`: it prints the path
    // with the accepting rule, and deletes its FirewallTrace.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = syns(&peer, (POD, 80).into(), done.clone());
    let out = Command::new(&kubectl_bin)
        .args(["--kubeconfig", kubeconfig.to_str().unwrap(), "-n", &ns_a])
        .args([
            "trace",
            "pod/web-0",
            "--match",
            "tcp dport 80",
            "--timeout",
            "30",
        ])
        .output()
        .expect("run kubectl-linx");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.join().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl linx trace: {printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains(
            "ACCEPT by FirewallRuleset web: inet linx input rule 1 (5:3): tcp dport 80 accept"
        ),
        "{printed}"
    );
    rt.block_on(async {
        let left = Api::<FirewallTrace>::namespaced(c.clone(), &ns_a)
            .list(&Default::default())
            .await
            .unwrap();
        let names: Vec<String> = left.items.iter().map(|t| t.name_any()).collect();
        assert_eq!(names, ["ssh"], "kubectl linx trace deletes its trace");
    });

    // Audit: the would-be drop passes, status and metrics count it on
    // rule 3 (7:3).
    let metric = format!(
        "linx_audit_would_drop_total{{namespace=\"{ns_a}\",ruleset=\"web\",rule=\"inet linx input #3\"}}"
    );
    rt.block_on(async {
        let mut audit = guarded.clone();
        audit["enforcement"] = json!("Audit");
        apply_spec(&c, &ns_a, "web", audit).await;
        eventually_async("Audit in the pod's kernel", || async {
            let got = web.table("inet", "linx");
            got.contains("log prefix").then_some(()).ok_or(got)
        })
        .await;
    });
    assert!(
        udp_arrives(&peer, &web.netns),
        "Audit lets the packet through"
    );
    rt.block_on(async {
        let api: Api<FirewallRuleset> = Api::namespaced(c.clone(), &ns_a);
        eventually_async("one would-be drop in the status", || async {
            let r = api.get("web").await.map_err(|e| e.to_string())?;
            let st = r.status.unwrap_or_default();
            let top: Vec<(&str, Option<&str>, u64)> = st
                .would_drop
                .iter()
                .map(|r| (r.rule.as_str(), r.source.as_deref(), r.count))
                .collect();
            (st.would_drop_total == 1 && top == [("inet linx input #3", Some("7:3"), 1)])
                .then_some(())
                .ok_or(format!("{} {top:?}", st.would_drop_total))
        })
        .await;
    });
    let m = scrape(&metrics);
    assert_eq!(sample(&m, &metric), 1.0, "{metric} in {m}");

    // `kubectl linx status` and `explain` print what docs/audit.md and
    // docs/trace.md say: the would-be drop per pod and per rule, and the
    // resource owning the pod's table.
    let kubectl = |args: &[&str]| -> String {
        let out = Command::new(&kubectl_bin)
            .args(["--kubeconfig", kubeconfig.to_str().unwrap(), "-n", &ns_a])
            .args(args)
            .output()
            .expect("run kubectl-linx");
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "kubectl linx {args:?}: {printed}");
        printed
    };
    let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    // The node report (per pod) comes a report interval later.
    let until = std::time::Instant::now() + WAIT;
    loop {
        let status = kubectl(&["status", "fwr/web"]);
        let shown = status.contains("would-be drops: 1\n")
            && status
                .lines()
                .any(|l| words(l) == ["inet", "linx", "input", "#3", "7:3", "1"])
            && status
                .lines()
                .any(|l| l.contains("web-0") && words(l).last().map(String::as_str) == Some("1"));
        if shown {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "kubectl linx status: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let explained = kubectl(&["explain", "pod/web-0"]);
    for want in [
        "FirewallRulesets selecting it:\n  web (generation ".to_owned(),
        "    table inet linx: owned\n".to_owned(),
        format!("the agent on node {node_name} reports:\n  web: "),
    ] {
        assert!(explained.contains(&want), "{want:?} in {explained}");
    }

    // Enforce again: one edit, one patch of six operations (the policy,
    // the policy's log rule out, the two audited rules back to drop).
    let before = scrape(&metrics);
    let (count0, sum0) = (
        sample(&before, "linx_agent_patch_operations_count"),
        sample(&before, "linx_agent_patch_operations_sum"),
    );
    rt.block_on(async {
        // Said, not omitted: a merge patch (the fake's apply) keeps an
        // omitted field.
        let mut enforce = guarded.clone();
        enforce["enforcement"] = json!("Enforce");
        apply_spec(&c, &ns_a, "web", enforce).await;
        eventually_async("Enforce in the pod's kernel", || async {
            let got = web.table("inet", "linx");
            (got == guarded_text).then_some(()).ok_or(got)
        })
        .await;
    });
    let after = scrape(&metrics);
    assert_eq!(
        (
            sample(&after, "linx_agent_patch_operations_count") - count0,
            sample(&after, "linx_agent_patch_operations_sum") - sum0
        ),
        (1.0, 6.0),
        "one patch of six operations"
    );
    assert!(!udp_arrives(&peer, &web.netns), "Enforce drops it");

    // Drop logs: N drops → lines within the rate, the rest counted.
    rt.block_on(async {
        let mut logged = guarded.clone();
        logged["enforcement"] = json!("Enforce");
        logged["logging"] = json!({"drops": true});
        apply_spec(&c, &ns_a, "web", logged).await;
        eventually_async("drop logs in the pod's kernel", || async {
            let got = web.table("inet", "linx");
            got.contains("log prefix").then_some(()).ok_or(got)
        })
        .await;
    });
    let lines_before = std::fs::read_to_string(&agent_out)
        .unwrap_or_default()
        .lines()
        .count();
    const N: u64 = 40;
    peer.netns()
        .run_in(|| {
            let s = std::net::UdpSocket::bind((PEER, 0)).unwrap();
            for i in 0..N {
                s.send_to(format!("{i}").as_bytes(), (POD, 9999)).unwrap();
            }
        })
        .unwrap();
    let drop_metric = format!(
        "linx_dropped_packets_total{{namespace=\"{ns_a}\",ruleset=\"web\",rule=\"inet linx input #3\"}}"
    );
    let mut parsed: Vec<Value> = Vec::new();
    eventually("every drop logged or counted", WAIT, || {
        let text = std::fs::read_to_string(&agent_out).unwrap_or_default();
        parsed = text
            .lines()
            .skip(lines_before)
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let lines = parsed
            .iter()
            .filter(|v| v.get("suppressed").is_none())
            .count() as u64;
        let suppressed: u64 = parsed.iter().filter_map(|v| v["suppressed"].as_u64()).sum();
        lines + suppressed == N
    });
    let packets: Vec<&Value> = parsed
        .iter()
        .filter(|v| v.get("suppressed").is_none())
        .collect();
    // One second's worth at once, and what refills while the 40 are read
    // (well under a second here).
    assert!(
        packets.len() >= LOG_RATE as usize && packets.len() <= 2 * LOG_RATE as usize,
        "{} lines: {parsed:#?}",
        packets.len()
    );
    for p in &packets {
        assert_eq!(
            (
                &p["pod"]["namespace"],
                &p["pod"]["name"],
                &p["ruleset"],
                &p["verdict"]
            ),
            (&json!(ns_a), &json!("web-0"), &json!("web"), &json!("drop")),
            "{p}"
        );
        assert_eq!(p["node"], json!(node_name));
        assert_eq!(
            p["rule"],
            json!({"table": "inet linx", "chain": "input", "index": 3, "source": "7:3"})
        );
        assert_eq!(
            (&p["saddr"], &p["dport"]),
            (&json!(PEER.to_string()), &json!(9999))
        );
    }
    assert_eq!(sample(&scrape(&metrics), &drop_metric), N as f64);

    rt.block_on(async {
        // Another namespace's pod, and a hostNetwork pod: refused.
        let other_ref = format!("{ns_a}/web-0");
        create_trace(&c, &ns_b, "cross", &other_ref, "", 5).await;
        create_trace(&c, &ns_a, "host", "host-0", "", 5).await;
        f.delete_at_end::<FirewallTrace>(&ns_b, "cross");
        f.delete_at_end::<FirewallTrace>(&ns_a, "host");
        for (ns, name, reason) in [
            (&ns_b, "cross", trace_reasons::OTHER_NAMESPACE),
            (&ns_a, "host", trace_reasons::HOST_NETWORK),
        ] {
            let st = trace_phase(&c, ns, name, TracePhase::Failed).await;
            let cond = st.current().expect("a condition");
            assert_eq!(cond.reason, reason, "{st:?}");
        }
        assert_eq!(
            other.netns.ruleset(),
            "",
            "nothing loaded for the other pod"
        );

        // A trace running when the agent is SIGKILLed leaves no rule: the
        // session's table goes with its socket (owner flag).
        create_trace(&c, &ns_a, "long", "web-0", "tcp dport 443", 120).await;
        f.delete_at_end::<FirewallTrace>(&ns_a, "long");
        trace_phase(&c, &ns_a, "long", TracePhase::Running).await;
        eventually_async("the trace table in the pod", || async {
            let t = web.netns.nft(&["list", "tables"]).unwrap_or_default();
            t.contains("linx-trace-").then_some(()).ok_or(t)
        })
        .await;
    });
    drop(agent); // SIGKILL
    let tables = web.netns.nft(&["list", "tables"]).unwrap();
    assert_eq!(
        tables, "table inet linx\n",
        "no trace table left after SIGKILL"
    );
    agent = start_agent(kubeconfig, &node_name, &metrics, &agent_out);
    rt.block_on(async {
        let st = trace_phase(&c, &ns_a, "long", TracePhase::Failed).await;
        assert_eq!(st.current().unwrap().reason, trace_reasons::AGENT_RESTARTED);
    });
    drop(agent);
    drop(_operator);
    f.finish();
}
