//! Faults at the Kubernetes API edge, against the fake API server
//! (`src/apiserver.rs`): the built `linx-agent` in cluster mode while the
//! server goes away and comes back (watches resumed, or relisted after
//! `410 Gone`), each ending on the kernels' state in the pods' namespaces.
//! What each guarantees: docs/faults.md.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use linx_crds::FirewallRuleset;
use linx_e2e::apiserver::FakeApiServer;
use linx_e2e::eventually;
use linx_e2e::node::{generation, linx_listing, Agent, LocalNode, NodePod};
use linx_netfilter::testing::host_ruleset;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);
const NS: &str = "faults";

async fn client(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(cfg).expect("client")
}

/// A pod firewall of `rules` rules, each accepting its own port from `base`.
fn firewall(rules: usize, base: usize) -> String {
    let mut s = String::from("table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n");
    for i in 0..rules {
        s.push_str(&format!("\t\ttcp dport {} counter accept\n", base + i));
    }
    s.push_str("\t}\n}\n");
    s
}

fn ruleset(nft: &str) -> FirewallRuleset {
    serde_json::from_value(json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
        "metadata": {"name": "fw", "namespace": NS},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "nft": nft},
    }))
    .expect("a FirewallRuleset")
}

/// Pods the test made, their API objects bound to `node`.
async fn make_pods(c: &Client, node: &str, n: usize) -> Vec<NodePod> {
    let api: Api<Pod> = Api::namespaced(c.clone(), NS);
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("web-{i}");
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": node,
                     "containers": [{"name": "c", "image": "linx.invalid/not-pulled:0"}]},
        }))
        .unwrap();
        let made = api.create(&PostParams::default(), &pod).await.unwrap();
        out.push(NodePod::start_as(&name, &made.metadata.uid.unwrap()));
    }
    out
}

fn reports_applied(node: &LocalNode, pods: &[NodePod], after: u64) -> bool {
    let reports = node.reports();
    pods.iter().all(|p| {
        reports.iter().any(|r| {
            r["name"] == p.name.as_str()
                && r["state"] == "Applied"
                && r["revision"].as_u64().unwrap_or(0) > after
        })
    })
}

fn last_revision(node: &LocalNode) -> u64 {
    node.reports()
        .iter()
        .filter_map(|r| r["revision"].as_u64())
        .max()
        .unwrap_or(0)
}

/// The requests after the first `from`, as `METHOD PATH?QUERY`.
fn since(server: &FakeApiServer, from: usize) -> Vec<String> {
    server.requests().into_iter().skip(from).collect()
}

fn is_watch(r: &str, path: &str) -> bool {
    r.starts_with(&format!("GET {path}?")) && r.contains("watch=true")
}

fn is_list(r: &str, path: &str) -> bool {
    r.starts_with(&format!("GET {path}?")) && !r.contains("watch=true")
}

const PODS: &str = "/api/v1/pods";
const RULESETS: &str = "/apis/netfilter.linx.dev/v1alpha1/firewallrulesets";

/// The resourceVersion a watch request started from.
fn watched_from(r: &str) -> Option<u64> {
    r.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("resourceVersion="))
        .and_then(|v| v.parse().ok())
}

/// The API server goes away twice and comes back. After a short outage
/// the agent's watches resume from their resourceVersion (no list); after
/// a long one (`LINX_E2E_OUTAGE_SECS`, default 60) with the event history
/// compacted meanwhile, the resumed watches get `410 Gone` and the agent
/// lists again. Neither causes any commit in any pod's namespace (the
/// generations do not move), while a foreign change during the outage is
/// repaired from kernel events alone; an edit afterwards reaches every
/// pod in exactly one commit each.
#[test]
fn the_api_server_away_and_back_resumes_or_relists_and_commits_nothing() {
    let host_before = host_ruleset();
    let outage = Duration::from_secs(
        std::env::var("LINX_E2E_OUTAGE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    );
    let server = FakeApiServer::start().expect("start the fake API server");
    let node = LocalNode::new();
    let kubeconfig = node.dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let node_name = format!("linx-faults-{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(client(&kubeconfig));
    let (v0, v1) = (firewall(50, 10_000), firewall(50, 20_000));
    let pods = rt.block_on(async {
        let n: Node = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node_name}}))
        .unwrap();
        Api::<Node>::all(c.clone())
            .create(&PostParams::default(), &n)
            .await
            .unwrap();
        let rulesets: Api<FirewallRuleset> = Api::namespaced(c.clone(), NS);
        rulesets
            .create(&PostParams::default(), &ruleset(&v0))
            .await
            .unwrap();
        make_pods(&c, &node_name, 8).await
    });
    let oracle = [linx_listing(&v0), linx_listing(&v1)];
    let mut agent = Agent::spawn(node.cluster_agent_command(&node_name, &kubeconfig));
    eventually("every pod programmed", WAIT, || {
        reports_applied(&node, &pods, 0)
    });
    let tables_at = |v: usize| {
        for p in &pods {
            p.assert_table(&oracle[v]);
        }
    };
    tables_at(0);
    let gens = || -> Vec<u32> { pods.iter().map(|p| generation(&p.ns)).collect() };

    // A short outage: resumed, not relisted.
    let before = gens();
    let mark = server.requests().len();
    server.set_down(true);
    std::thread::sleep(Duration::from_secs(3));
    server.set_down(false);
    eventually("watches resumed", WAIT, || {
        let r = since(&server, mark);
        r.iter().any(|r| is_watch(r, PODS)) && r.iter().any(|r| is_watch(r, RULESETS))
    });
    std::thread::sleep(Duration::from_secs(2));
    let after = since(&server, mark);
    assert!(
        !after.iter().any(|r| is_list(r, PODS) || is_list(r, RULESETS)),
        "relisted after a short outage: {after:#?}"
    );
    assert_eq!(gens(), before, "a commit without a change");

    // A long outage, the history compacted meanwhile: 410 Gone, relist.
    let mark = server.requests().len();
    server.set_down(true);
    // The agent keeps enforcing without the API server: a foreign flush
    // of its chain is repaired from kernel events.
    pods[0]
        .ns
        .nft(&["flush", "chain", "inet", "linx", "input"])
        .unwrap();
    eventually("repaired while the API server is away", WAIT, || {
        pods[0].table().as_deref() == Some(oracle[0].as_str())
    });
    std::thread::sleep(outage);
    let compacted = server.compact();
    let before = gens();
    server.set_down(false);
    eventually("relisted after 410 Gone, then watching", WAIT, || {
        let r = since(&server, mark);
        [PODS, RULESETS].iter().all(|path| {
            let gone = r.iter().position(|r| {
                is_watch(r, path) && watched_from(r).is_some_and(|v| v < compacted)
            });
            let relist = gone.and_then(|g| r[g..].iter().position(|r| is_list(r, path)));
            let rewatch = relist.zip(gone).is_some_and(|(l, g)| {
                r[g + l..]
                    .iter()
                    .any(|r| is_watch(r, path) && watched_from(r).is_some_and(|v| v >= compacted))
            });
            rewatch
        })
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(gens(), before, "a commit without a change");
    tables_at(0);

    // An edit after: every pod, one commit each.
    let r = last_revision(&node);
    rt.block_on(async {
        let rulesets: Api<FirewallRuleset> = Api::namespaced(c.clone(), NS);
        let patch: Value = json!({"spec": {"nft": v1}});
        rulesets
            .patch("fw", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    });
    eventually("the edit reached every pod", WAIT, || {
        reports_applied(&node, &pods, r)
    });
    tables_at(1);
    let one_more: Vec<u32> = before.iter().map(|g| g + 1).collect();
    assert_eq!(gens(), one_more, "one commit per pod for one edit");
    agent.stop();
    drop(pods);
    assert_eq!(host_ruleset(), host_before, "host namespace untouched");
}

/// The Lease's holder and its acquire and renew times.
fn lease(c: &Client, rt: &tokio::runtime::Runtime) -> Option<(String, jiff::Timestamp, jiff::Timestamp)> {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(c.clone(), "linx-system");
    let spec = rt.block_on(api.get_opt("linx-operator")).ok()??.spec?;
    Some((
        spec.holder_identity?,
        spec.acquire_time?.0.to_string().parse().ok()?,
        spec.renew_time?.0.to_string().parse().ok()?,
    ))
}

/// A status write of the named FirewallRuleset, as the fake server logs it.
fn status_writes(server: &FakeApiServer, name: &str) -> usize {
    let path = format!("/namespaces/{NS}/firewallrulesets/{name}/status?");
    server
        .requests()
        .iter()
        .filter(|r| !r.starts_with("GET ") && r.contains(&path))
        .count()
}

fn operator(kubeconfig: &Path, identity: &str, metrics: &str) -> Agent {
    let bin = linx_agent::testing::binary("linx-operator", "linx-operator", "LINX_OPERATOR_BIN");
    let mut c = std::process::Command::new(bin);
    c.args(["--identity", identity, "--webhook-addr", "", "--metrics-addr", metrics])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null());
    Agent::spawn(c)
}

/// The status of a FirewallRuleset as stored (`Value::Null` without one).
fn stored_status(c: &Client, rt: &tokio::runtime::Runtime, name: &str) -> Value {
    rt.block_on(async {
        let api: Api<FirewallRuleset> = Api::namespaced(c.clone(), NS);
        let fwr = api.get(name).await.unwrap();
        serde_json::to_value(&fwr).unwrap()["status"].clone()
    })
}

fn observed(status: &Value) -> i64 {
    status["observedGeneration"].as_i64().unwrap_or(0)
}

/// Two operator replicas; the leader killed with SIGKILL. The other takes
/// the Lease once it expired: its acquire time is within the lease
/// duration (15 s) and one retry period (2 s) of the dead leader's last
/// renewal. Every FirewallRuleset's status is written exactly once per
/// generation across both replicas: the new leader rewrites none that
/// was current (no duplicate), and an edit made while nobody led is
/// written once the new leader runs (none lost).
#[test]
fn killing_the_leading_operator_hands_over_with_no_duplicate_or_lost_status_write() {
    let server = FakeApiServer::start().expect("start the fake API server");
    let scratch = LocalNode::new();
    let kubeconfig = scratch.dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(client(&kubeconfig));
    let names: Vec<String> = (0..4).map(|i| format!("fw-{i}")).collect();
    rt.block_on(async {
        let api: Api<FirewallRuleset> = Api::namespaced(c.clone(), NS);
        for n in &names {
            let mut r = ruleset(&firewall(3, 10_000));
            r.metadata.name = Some(n.clone());
            api.create(&PostParams::default(), &r).await.unwrap();
        }
    });
    let mut a = operator(&kubeconfig, "replica-a", &linx_e2e::free_addr());
    eventually("replica-a leads", WAIT, || {
        lease(&c, &rt).is_some_and(|(h, _, _)| h == "replica-a")
    });
    let _b = operator(&kubeconfig, "replica-b", &linx_e2e::free_addr());
    eventually("every status written by replica-a", WAIT, || {
        names.iter().all(|n| observed(&stored_status(&c, &rt, n)) == 1)
    });
    let written: Vec<usize> = names.iter().map(|n| status_writes(&server, n)).collect();
    assert!(written.iter().all(|w| *w >= 1), "{written:?}");

    a.kill();
    let (_, _, last_renewal) = lease(&c, &rt).unwrap();
    // Nobody leads: an edit now must not be lost.
    rt.block_on(async {
        let api: Api<FirewallRuleset> = Api::namespaced(c.clone(), NS);
        let patch = json!({"spec": {"nft": firewall(4, 10_000)}});
        api.patch("fw-0", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    });
    eventually("replica-b leads", WAIT, || {
        lease(&c, &rt).is_some_and(|(h, _, _)| h == "replica-b")
    });
    let (_, acquired, _) = lease(&c, &rt).unwrap();
    let gap = acquired.duration_since(last_renewal);
    assert!(
        gap <= jiff::SignedDuration::from_secs(15 + 2),
        "handed over {gap:?} after the last renewal (lease 15 s, retry 2 s)"
    );
    eventually("the edit's status written by replica-b", WAIT, || {
        observed(&stored_status(&c, &rt, "fw-0")) == 2
    });
    // Let replica-b reconcile everything it now leads (its resync included).
    std::thread::sleep(Duration::from_secs(5));
    let now: Vec<usize> = names.iter().map(|n| status_writes(&server, n)).collect();
    let mut want = written.clone();
    want[0] += 1;
    assert_eq!(now, want, "status writes per resource: before {written:?}");
}
