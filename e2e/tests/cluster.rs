//! The cluster flow: the built `linx-operator` and `linx-agent` binaries
//! against a Kubernetes API server, with "pods" that are processes this
//! test starts in fresh network namespaces and pod cgroups.
//!
//! * `cluster_flow` runs when `LINX_E2E_KUBECONFIG` names a cluster's
//!   kubeconfig (skipped with a printed reason otherwise). The pods are
//!   bound to `LINX_E2E_NODE` if given, else to a Node object the test
//!   creates (`linx-e2e-<suffix>`, no kubelet behind it): a real node's
//!   kubelet would start its own sandboxes for the test's pods, and the
//!   agent could pick the kubelet's sandbox rather than the test's process.
//!   The machine running the test plays the node: the agent runs here and
//!   finds the pods' processes in this machine's `/proc`.
//! * `cluster_flow_on_fake_apiserver` runs the same flow against
//!   `linx_e2e::apiserver::FakeApiServer` (always). That checks our flow
//!   (requests, watches, status and report writes), not a real API
//!   server's semantics (see that module's doc).
//!
//! The CRDs and RBAC of `deploy/` are installed by server-side apply and
//! left installed (deleting CRDs would delete every FirewallRuleset of the
//! cluster); the Deployment, Service and DaemonSet are not applied (the
//! test runs the binaries itself). Everything else the test makes (its two
//! Kubernetes namespaces, Node, report, processes, cgroups, network
//! namespaces) is removed at the end, also on failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::ResourceExt;
use kube::{Client, Config};
use linx_agent::testing::FakePod;
use linx_crds::trace::reasons as trace_reasons;
use linx_crds::{
    FirewallNodeReport, FirewallRuleset, FirewallTrace, FirewallTraceStatus, TracePhase,
};
use linx_e2e::apiserver::FakeApiServer;
use linx_e2e::{binary, eventually, free_addr};
use linx_netfilter::testing::TestNetns;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(45);

const WEB: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\ttcp dport 80 accept\n\t}\n}\n";
const WEB3: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\ttcp dport 80 accept\n\t\ttcp dport 8080 accept\n\t}\n}\n";
const BASE: &str = "table ip base {\n\tchain out {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tudp dport 53 accept\n\t}\n}\n";
const OWN: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 5432 accept\n\t}\n}\n";
/// Line 4 has the typo.
const TYPO: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 80 acept\n\t}\n}\n";

#[test]
fn cluster_flow() {
    let Some(kubeconfig) = std::env::var_os("LINX_E2E_KUBECONFIG") else {
        eprintln!("skipped: LINX_E2E_KUBECONFIG is not set (no cluster to test against)");
        return;
    };
    flow(Path::new(&kubeconfig), std::env::var("LINX_E2E_NODE").ok());
}

#[test]
fn cluster_flow_on_fake_apiserver() {
    let server = FakeApiServer::start().expect("start the fake API server");
    let dir = Scratch::new("fake");
    let kubeconfig = dir.0.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    flow(&kubeconfig, None);
    // What the components asked: the agent only its node's pods.
    let reqs = server.requests();
    let pod_lists: Vec<&String> = reqs
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods?"))
        .collect();
    assert!(!pod_lists.is_empty());
    assert!(
        pod_lists
            .iter()
            .all(|r| r.contains("fieldSelector=spec.nodeName=linx-e2e-")),
        "{pod_lists:#?}"
    );
}

/// A scratch directory, removed on drop (also when the test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("linx-e2e-cluster-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A random-enough suffix for names (pid and clock; no extra crate).
fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:05x}", std::process::id() & 0xfff, nanos & 0xfffff)
}

async fn client(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(cfg).expect("client")
}

/// A process of ours (operator or agent), killed on drop.
struct Proc(Child);

impl Proc {
    fn start(bin: &Path, args: &[&str], kubeconfig: &Path) -> Proc {
        let child = Command::new(bin)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn,linx_agent=debug")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        Proc(child)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Objects to delete at the end, also when the test fails: deleted from a
/// fresh runtime in `Drop` (the test's runtime may be gone by then).
struct Cleanup {
    kubeconfig: PathBuf,
    namespaces: Vec<String>,
    node: Option<String>,
    report: String,
    /// Namespaced objects, deleted one by one (a fake has no namespace
    /// controller; on a cluster they go with their namespace anyway).
    objects: Vec<(ApiResource, String, String)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        let namespaces = std::mem::take(&mut self.namespaces);
        let node = self.node.take();
        let report = self.report.clone();
        let objects = std::mem::take(&mut self.objects);
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("cleanup runtime");
            rt.block_on(async move {
                let c = client(&kubeconfig).await;
                let dp = DeleteParams::default();
                for (ar, ns, name) in objects {
                    let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), &ns, &ar);
                    let _ = api.delete(&name, &dp).await;
                }
                let reports: Api<FirewallNodeReport> = Api::all(c.clone());
                let _ = reports.delete(&report, &dp).await;
                if let Some(n) = node {
                    let _ = Api::<Node>::all(c.clone()).delete(&n, &dp).await;
                }
                for ns in namespaces {
                    let _ = Api::<Namespace>::all(c.clone()).delete(&ns, &dp).await;
                }
            })
        });
        let _ = done.join();
    }
}

/// Server-side applies every CRD and RBAC document of `deploy/`.
async fn install(c: &Client) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let pp = PatchParams::apply("linx-e2e").force();
    for file in ["deploy/crds/linx-crds.yaml", "deploy/linx.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).unwrap();
            if v.is_null() {
                continue;
            }
            let kind = v["kind"].as_str().unwrap_or_default();
            // The test runs the binaries itself.
            if matches!(kind, "Deployment" | "DaemonSet" | "Service") {
                continue;
            }
            let gvk = gvk_of(&v);
            let ar = ApiResource::from_gvk(&gvk);
            let name = v["metadata"]["name"].as_str().unwrap().to_string();
            let api: Api<DynamicObject> = match v["metadata"]["namespace"].as_str() {
                Some(ns) => Api::namespaced_with(c.clone(), ns, &ar),
                None => Api::all_with(c.clone(), &ar),
            };
            match api.patch(&name, &pp, &Patch::Apply(&v)).await {
                Ok(_) => {}
                // Clusters before 1.30 do not serve admissionregistration
                // v1 policies; the flow does not depend on them.
                Err(e) if gvk.group == "admissionregistration.k8s.io" => {
                    eprintln!("warning: {kind} {name} not installed: {e}")
                }
                Err(e) => panic!("applying {kind} {name} from {file}: {e}"),
            }
        }
    }
}

fn gvk_of(v: &Value) -> GroupVersionKind {
    let api_version = v["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    GroupVersionKind::gvk(group, version, v["kind"].as_str().unwrap_or_default())
}

fn ruleset_resource() -> ApiResource {
    ApiResource::erase::<FirewallRuleset>(&())
}

async fn eventually_async<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        match f().await {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() > until => {
                panic!("timed out waiting for {what}: last seen: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One "pod": the Pod object, its network namespace and its process.
struct TestPod {
    namespace: String,
    name: String,
    netns: TestNetns,
    _process: FakePod,
}

impl TestPod {
    fn table(&self, family: &str, name: &str) -> String {
        self.netns
            .nft(&["list", "table", family, name])
            .unwrap_or_default()
    }
}

async fn create_pod(c: &Client, ns: &str, name: &str, app: &str, node: &str) -> TestPod {
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": node,
                 "containers": [{"name": "c", "image": "linx.invalid/not-pulled:0"}]},
    }))
    .unwrap();
    let made = pods.create(&PostParams::default(), &pod).await.unwrap();
    let uid = made.metadata.uid.expect("the API server sets a UID");
    let netns = TestNetns::new();
    let process = FakePod::start(&uid, false, Some(&netns));
    TestPod {
        namespace: ns.into(),
        name: name.into(),
        netns,
        _process: process,
    }
}

async fn apply_ruleset(c: &Client, ns: &str, name: &str, selector: Value, nft: &str) {
    let api: Api<FirewallRuleset> = Api::namespaced(c.clone(), ns);
    let v = json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": selector, "nft": nft},
    });
    api.patch(
        name,
        &PatchParams::apply("linx-e2e").force(),
        &Patch::Apply(&v),
    )
    .await
    .unwrap_or_else(|e| panic!("applying FirewallRuleset {ns}/{name}: {e}"));
}

/// The condition `type_` of a ruleset's status, if reported for `generation`.
async fn condition(
    c: &Client,
    ns: &str,
    name: &str,
    type_: &str,
) -> Result<(i64, String, String, String), String> {
    let api: Api<FirewallRuleset> = Api::namespaced(c.clone(), ns);
    let r = api.get(name).await.map_err(|e| e.to_string())?;
    let cond = r
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .ok_or_else(|| format!("no {type_} condition yet: {:?}", r.status))?;
    Ok((
        cond.observed_generation.unwrap_or(0),
        cond.status.clone(),
        cond.reason.clone(),
        cond.message.clone(),
    ))
}

fn listing(script: &str, family: &str, name: &str) -> String {
    let scratch = TestNetns::new();
    scratch.load(script);
    scratch
        .nft(&["list", "table", family, name])
        .unwrap_or_default()
}

fn flow(kubeconfig: &Path, node: Option<String>) {
    let host_before = linx_netfilter::testing::host_ruleset();
    let operator_bin = binary("linx-operator", "linx-operator", "LINX_OPERATOR_BIN");
    let agent_bin = binary("linx-agent", "linx-agent", "LINX_AGENT_BIN");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = suffix();
    let (ns_a, ns_b) = (format!("linx-e2e-{id}-a"), format!("linx-e2e-{id}-b"));
    let node_name = node.clone().unwrap_or_else(|| format!("linx-e2e-{id}"));
    let mut cleanup = Cleanup {
        kubeconfig: kubeconfig.to_owned(),
        namespaces: vec![ns_a.clone(), ns_b.clone()],
        node: node.is_none().then(|| node_name.clone()),
        report: node_name.clone(),
        objects: Vec::new(),
    };
    let c = rt.block_on(client(kubeconfig));
    rt.block_on(async {
        install(&c).await;
        for ns in [&ns_a, &ns_b] {
            let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
            Api::<Namespace>::all(c.clone())
                .create(&PostParams::default(), &n)
                .await
                .unwrap();
        }
        if node.is_none() {
            let n: Node = serde_json::from_value(json!({"metadata": {"name": node_name,
                "labels": {"linx.dev/e2e": "true"}}}))
            .unwrap();
            Api::<Node>::all(c.clone())
                .create(&PostParams::default(), &n)
                .await
                .unwrap();
        }
        // The CRDs are served once established.
        eventually_async("the FirewallRuleset API", || async {
            Api::<FirewallRuleset>::namespaced(c.clone(), &ns_a)
                .list(&Default::default())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
    });

    let pods = rt.block_on(async {
        vec![
            create_pod(&c, &ns_a, "web-0", "web", &node_name).await,
            create_pod(&c, &ns_a, "db-0", "db", &node_name).await,
            create_pod(&c, &ns_b, "web-0", "web", &node_name).await,
        ]
    });
    let pr = ApiResource::erase::<Pod>(&());
    for p in &pods {
        cleanup
            .objects
            .push((pr.clone(), p.namespace.clone(), p.name.clone()));
    }
    let (a_web, a_db, b_web) = (&pods[0], &pods[1], &pods[2]);
    let dir = Scratch::new(&id);
    let agent_report = dir.0.join("pods.json");
    let _operator = Proc::start(
        &operator_bin,
        &[
            "--metrics-addr",
            &free_addr(),
            "--lease-namespace",
            &ns_a,
            "--identity",
            &format!("linx-e2e-{id}"),
        ],
        kubeconfig,
    );
    let _agent = Proc::start(
        &agent_bin,
        &[
            "run",
            "--node-name",
            &node_name,
            "--report-interval-secs",
            "1",
            "--metrics-addr",
            &free_addr(),
            "--report",
            agent_report.to_str().unwrap(),
            "--proc-root",
            "/proc",
            // The test's own namespace plays the node's.
            "--host-netns",
            "/proc/self/ns/net",
        ],
        kubeconfig,
    );

    let rs = ruleset_resource();
    let web_text = listing(WEB, "inet", "linx");
    let web3_text = listing(WEB3, "inet", "linx");
    let base_text = listing(BASE, "ip", "base");
    let own_text = listing(OWN, "inet", "linx");
    rt.block_on(async {
        apply_ruleset(
            &c,
            &ns_a,
            "web",
            json!({"matchLabels": {"app": "web"}}),
            WEB,
        )
        .await;
        apply_ruleset(&c, &ns_a, "base", json!({}), BASE).await;
        for n in ["web", "base"] {
            cleanup.objects.push((rs.clone(), ns_a.clone(), n.into()));
        }

        eventually_async("namespace a's pods converged", || async {
            let got = (
                a_web.table("inet", "linx"),
                a_web.table("ip", "base"),
                a_db.table("inet", "linx"),
                a_db.table("ip", "base"),
            );
            let want = (
                web_text.clone(),
                base_text.clone(),
                String::new(),
                base_text.clone(),
            );
            (got == want).then_some(()).ok_or(format!("{got:?}"))
        })
        .await;
        for (name, matched) in [("web", 1), ("base", 2)] {
            eventually_async(&format!("{name} Applied in its status"), || async {
                let (g, s, reason, msg) = condition(&c, &ns_a, name, "Applied").await?;
                ((g, s.as_str(), reason.as_str()) == (1, "True", "Applied")
                    && msg == format!("all {matched} selected pods run generation 1"))
                .then_some(())
                .ok_or(format!("{g} {s} {reason}: {msg}"))
            })
            .await;
        }
        // Namespace b's pod is known to the agent, and untouched.
        eventually_async("namespace b's pod reconciled with nothing", || async {
            let r = std::fs::read_to_string(&agent_report).unwrap_or_default();
            let v: Vec<Value> = serde_json::from_str(&r).unwrap_or_default();
            v.iter()
                .any(|p| p["namespace"] == ns_b.as_str() && p["state"] == "Applied")
                .then_some(())
                .ok_or(r)
        })
        .await;
        assert_eq!(
            b_web.netns.ruleset(),
            "",
            "a ruleset of namespace a touched namespace b"
        );

        // A ruleset of namespace b reaches b's pod only.
        apply_ruleset(&c, &ns_b, "own", json!({}), OWN).await;
        cleanup
            .objects
            .push((rs.clone(), ns_b.clone(), "own".into()));
        eventually_async("namespace b's pod converged", || async {
            let got = b_web.table("inet", "linx");
            (got == own_text).then_some(()).ok_or(got)
        })
        .await;
        assert_eq!(b_web.table("ip", "base"), "");
        assert_eq!(a_web.table("inet", "linx"), web_text);
        assert_eq!(a_db.table("inet", "linx"), "");

        // An invalid ruleset: refused with its line-precise message.
        apply_ruleset(
            &c,
            &ns_a,
            "broken",
            json!({"matchLabels": {"app": "db"}}),
            TYPO,
        )
        .await;
        cleanup
            .objects
            .push((rs.clone(), ns_a.clone(), "broken".into()));
        eventually_async("broken refused in its status", || async {
            let (g, s, reason, msg) = condition(&c, &ns_a, "broken", "Valid").await?;
            ((g, s.as_str(), reason.as_str()) == (1, "False", "Invalid") && msg.contains("4:16"))
                .then_some(())
                .ok_or(format!("{g} {s} {reason}: {msg}"))
        })
        .await;

        // An edit with a typo: generation 1 stays in the kernel, the node
        // report says so, the status says the spec is invalid.
        apply_ruleset(
            &c,
            &ns_a,
            "web",
            json!({"matchLabels": {"app": "web"}}),
            TYPO,
        )
        .await;
        let reports: Api<FirewallNodeReport> = Api::all(c.clone());
        eventually_async("the node report names the generation enforced", || async {
            let r = reports.get(&node_name).await.map_err(|e| e.to_string())?;
            let e = r
                .spec
                .rulesets
                .iter()
                .find(|e| e.namespace == ns_a && e.name == "web")
                .ok_or("no entry")?;
            (e.generation == 2
                && e.enforced_generation == Some(1)
                && e.message.as_deref().is_some_and(|m| {
                    m.starts_with("generation 2 does not compile (spec.nft, 4:16")
                        && m.ends_with("generation 1 stays enforced")
                }))
            .then_some(())
            .ok_or(format!("{e:?}"))
        })
        .await;
        eventually_async("web's edit refused in its status", || async {
            let (g, s, reason, msg) = condition(&c, &ns_a, "web", "Valid").await?;
            ((g, s.as_str(), reason.as_str()) == (2, "False", "Invalid") && msg.contains("4:16"))
                .then_some(())
                .ok_or(format!("{g} {s} {reason}: {msg}"))
        })
        .await;
        assert_eq!(a_web.table("inet", "linx"), web_text, "generation 1 kept");

        // Fixed in generation 3: applied.
        apply_ruleset(
            &c,
            &ns_a,
            "web",
            json!({"matchLabels": {"app": "web"}}),
            WEB3,
        )
        .await;
        eventually_async("web generation 3 in the kernel", || async {
            let got = a_web.table("inet", "linx");
            (got == web3_text).then_some(()).ok_or(got)
        })
        .await;
        eventually_async("web generation 3 Applied in its status", || async {
            let (g, s, reason, msg) = condition(&c, &ns_a, "web", "Applied").await?;
            ((g, s.as_str()) == (3, "True"))
                .then_some(())
                .ok_or(format!("{g} {s} {reason}: {msg}"))
        })
        .await;
        assert_eq!(b_web.table("inet", "linx"), own_text);
    });
    drop(_agent);
    drop(_operator);
    drop(cleanup);
    drop(pods);
    assert_eq!(
        linx_netfilter::testing::host_ruleset(),
        host_before,
        "host namespace untouched"
    );
}

// ---------------------------------------------------------------------
// Issue #18 in the cluster: a pod's packets traced through FirewallTrace
// and `kubectl linx trace`, Audit letting would-be drops through and
// counting them, Audit → Enforce as one minimal patch, drop logs within
// their rate, traces refused for another namespace's pod and a
// hostNetwork pod, no trace rules left after the agent is SIGKILLed.

/// Rule 2 (6:3) drops TCP 22, rule 1 (5:3) accepts TCP 80, rule 3 (7:3)
/// drops UDP 9999; the policy drops the rest.
const GUARDED: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\ttcp dport 80 accept\n\t\ttcp dport 22 drop\n\t\tudp dport 9999 drop\n\t}\n}\n";
const PEER: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 82, 0, 1);
const POD: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 82, 0, 2);
/// Drop-log lines per second per pod the agent is started with.
const LOG_RATE: u32 = 10;

#[test]
fn observe_flow() {
    let Some(kubeconfig) = std::env::var_os("LINX_E2E_KUBECONFIG") else {
        eprintln!("skipped: LINX_E2E_KUBECONFIG is not set (no cluster to test against)");
        return;
    };
    observe(Path::new(&kubeconfig), std::env::var("LINX_E2E_NODE").ok());
}

#[test]
fn observe_flow_on_fake_apiserver() {
    let server = FakeApiServer::start().expect("start the fake API server");
    let dir = Scratch::new("observe-fake");
    let kubeconfig = dir.0.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    observe(&kubeconfig, None);
}

fn trace_resource() -> ApiResource {
    ApiResource::erase::<FirewallTrace>(&())
}

fn start_agent(bin: &Path, node: &str, metrics: &str, stdout: &Path, kubeconfig: &Path) -> Proc {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stdout)
        .unwrap();
    let rate = LOG_RATE.to_string();
    let child = Command::new(bin)
        .args([
            "run",
            "--node-name",
            node,
            "--report-interval-secs",
            "1",
            "--metrics-addr",
            metrics,
            "--proc-root",
            "/proc",
            "--host-netns",
            "/proc/self/ns/net",
            "--drop-log-rate",
            &rate,
        ])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info,kube=warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    Proc(child)
}

/// The agent's metrics (Prometheus text).
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of the sample whose line starts with `series`.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn create_trace(c: &Client, ns: &str, name: &str, pod: &str, matching: &str, timeout: u32) {
    let api: Api<FirewallTrace> = Api::namespaced(c.clone(), ns);
    let t: FirewallTrace = serde_json::from_value(json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallTrace",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"pod": pod, "match": matching, "count": 1, "timeoutSeconds": timeout},
    }))
    .unwrap();
    api.create(&PostParams::default(), &t)
        .await
        .unwrap_or_else(|e| panic!("creating FirewallTrace {ns}/{name}: {e}"));
}

/// Waits for trace `name` to reach `phase`; its status then.
async fn trace_phase(c: &Client, ns: &str, name: &str, phase: TracePhase) -> FirewallTraceStatus {
    let api: Api<FirewallTrace> = Api::namespaced(c.clone(), ns);
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        let st = match api.get(name).await {
            Ok(t) => t.status.unwrap_or_default(),
            Err(e) => panic!("reading FirewallTrace {ns}/{name}: {e}"),
        };
        if st.phase == Some(phase) {
            return st;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for trace {name} {}: {st:?}",
            phase.as_str()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

async fn apply_spec(c: &Client, ns: &str, name: &str, spec: Value) {
    let api: Api<FirewallRuleset> = Api::namespaced(c.clone(), ns);
    let v = json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    });
    api.patch(
        name,
        &PatchParams::apply("linx-e2e").force(),
        &Patch::Apply(&v),
    )
    .await
    .unwrap_or_else(|e| panic!("applying FirewallRuleset {ns}/{name}: {e}"));
}

fn observe(kubeconfig: &Path, node: Option<String>) {
    let host_before = linx_netfilter::testing::host_ruleset();
    let operator_bin = binary("linx-operator", "linx-operator", "LINX_OPERATOR_BIN");
    let agent_bin = binary("linx-agent", "linx-agent", "LINX_AGENT_BIN");
    let kubectl_bin = binary("kubectl-linx", "kubectl-linx", "LINX_KUBECTL_BIN");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = suffix();
    let (ns_a, ns_b) = (format!("linx-e2e-{id}-oa"), format!("linx-e2e-{id}-ob"));
    let node_name = node.clone().unwrap_or_else(|| format!("linx-e2e-{id}-o"));
    let mut cleanup = Cleanup {
        kubeconfig: kubeconfig.to_owned(),
        namespaces: vec![ns_a.clone(), ns_b.clone()],
        node: node.is_none().then(|| node_name.clone()),
        report: node_name.clone(),
        objects: Vec::new(),
    };
    let c = rt.block_on(client(kubeconfig));
    rt.block_on(async {
        install(&c).await;
        for ns in [&ns_a, &ns_b] {
            let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
            Api::<Namespace>::all(c.clone())
                .create(&PostParams::default(), &n)
                .await
                .unwrap();
        }
        if node.is_none() {
            let n: Node = serde_json::from_value(json!({"metadata": {"name": node_name}})).unwrap();
            Api::<Node>::all(c.clone())
                .create(&PostParams::default(), &n)
                .await
                .unwrap();
        }
        eventually_async("the FirewallTrace API", || async {
            Api::<FirewallTrace>::namespaced(c.clone(), &ns_a)
                .list(&Default::default())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
    });
    let (web, other) = rt.block_on(async {
        (
            create_pod(&c, &ns_a, "web-0", "web", &node_name).await,
            create_pod(&c, &ns_b, "web-0", "web", &node_name).await,
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
    let pr = ApiResource::erase::<Pod>(&());
    for (ns, name) in [(&ns_a, "web-0"), (&ns_b, "web-0"), (&ns_a, "host-0")] {
        cleanup.objects.push((pr.clone(), ns.clone(), name.into()));
    }
    let peer = TestNetns::new();
    peer.link(&web.netns, PEER, POD);

    let dir = Scratch::new(&format!("observe-{id}"));
    let agent_out = dir.0.join("agent.out");
    let metrics = free_addr();
    let _operator = Proc::start(
        &operator_bin,
        &[
            "--metrics-addr",
            &free_addr(),
            "--lease-namespace",
            &ns_a,
            "--identity",
            &format!("linx-e2e-{id}-o"),
        ],
        kubeconfig,
    );
    let mut agent = start_agent(&agent_bin, &node_name, &metrics, &agent_out, kubeconfig);
    let (rs, tr) = (ruleset_resource(), trace_resource());
    let guarded = json!({"podSelector": {"matchLabels": {"app": "web"}}, "nft": GUARDED});
    let guarded_text = listing(GUARDED, "inet", "linx");

    rt.block_on(async {
        apply_spec(&c, &ns_a, "web", guarded.clone()).await;
        cleanup
            .objects
            .push((rs.clone(), ns_a.clone(), "web".into()));
        eventually_async("web in the pod's kernel", || async {
            let got = web.table("inet", "linx");
            (got == guarded_text).then_some(()).ok_or(got)
        })
        .await;

        // A dropped port: the path names the FirewallRuleset, the rule's
        // index and its line:column.
        create_trace(&c, &ns_a, "ssh", "web-0", "tcp dport 22", 30).await;
        cleanup
            .objects
            .push((tr.clone(), ns_a.clone(), "ssh".into()));
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
        cleanup
            .objects
            .push((tr.clone(), ns_b.clone(), "cross".into()));
        cleanup
            .objects
            .push((tr.clone(), ns_a.clone(), "host".into()));
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
        cleanup
            .objects
            .push((tr.clone(), ns_a.clone(), "long".into()));
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
    agent = start_agent(&agent_bin, &node_name, &metrics, &agent_out, kubeconfig);
    rt.block_on(async {
        let st = trace_phase(&c, &ns_a, "long", TracePhase::Failed).await;
        assert_eq!(st.current().unwrap().reason, trace_reasons::AGENT_RESTARTED);
    });
    drop(agent);
    drop(_operator);
    drop(cleanup);
    drop(peer);
    drop((web, other));
    assert_eq!(
        linx_netfilter::testing::host_ruleset(),
        host_before,
        "host namespace untouched"
    );
}
