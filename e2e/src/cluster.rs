//! What every cluster flow shares (`tests/cluster.rs`, `tests/selectors.rs`,
//! `tests/observe.rs`): a client from a kubeconfig, the CRDs and RBAC of
//! `deploy/` installed, the flow's own Kubernetes namespaces and Node,
//! "pods" that are Pod objects whose containers are processes in fresh
//! network namespaces and kubelet-style pod cgroups, the operator and agent
//! binaries started and killed, rulesets applied, bounded waits on
//! conditions, and cleanup that runs also when the test fails.
//!
//! A flow runs against `LINX_E2E_KUBECONFIG` ([`real_cluster`]: skipped,
//! with a printed reason, when unset) and against the fake API server
//! ([`on_fake_apiserver`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config, Resource};
use linx_agent::testing::{binary, FakePod};
use linx_crds::{
    FirewallNodeReport, FirewallRuleset, FirewallTrace, FirewallTraceStatus, TracePhase,
};
use linx_netfilter::testing::TestNetns;
use serde_json::{json, Value};

use crate::apiserver::FakeApiServer;

/// How long any one wait of a flow may take.
pub const WAIT: Duration = Duration::from_secs(45);

/// The kubeconfig of `LINX_E2E_KUBECONFIG`, or `None` after printing why
/// the test is skipped.
pub fn real_cluster() -> Option<PathBuf> {
    let Some(kubeconfig) = std::env::var_os("LINX_E2E_KUBECONFIG") else {
        eprintln!("skipped: LINX_E2E_KUBECONFIG is not set (no cluster to test against)");
        return None;
    };
    Some(kubeconfig.into())
}

/// Runs `flow` against a fresh fake API server (its kubeconfig in a
/// scratch directory); returns the server for the requests it saw.
pub fn on_fake_apiserver(tag: &str, flow: impl FnOnce(&Path)) -> FakeApiServer {
    let server = FakeApiServer::start().expect("start the fake API server");
    let dir = Scratch::new(tag);
    let kubeconfig = dir.0.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    flow(&kubeconfig);
    server
}

/// What the components asked of pods: the agent only its node's, the
/// operator (which resolves set sources) all but host-network ones.
pub fn assert_pod_requests(server: &FakeApiServer) -> Vec<String> {
    let reqs = server.requests();
    let pod_lists: Vec<&String> = reqs
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/pods?"))
        .collect();
    assert!(pod_lists
        .iter()
        .any(|r| r.contains("fieldSelector=spec.nodeName=linx-e2e-")));
    assert!(
        pod_lists.iter().all(|r| {
            r.contains("fieldSelector=spec.nodeName=linx-e2e-")
                || r.contains("fieldSelector=spec.hostNetwork!=true")
        }),
        "{pod_lists:#?}"
    );
    reqs
}

/// A scratch directory, removed on drop (also when the test fails).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
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
pub fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:05x}", std::process::id() & 0xfff, nanos & 0xfffff)
}

pub async fn client(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(cfg).expect("client")
}

pub fn operator_bin() -> PathBuf {
    binary("linx-operator", "LINX_OPERATOR_BIN")
}

pub fn agent_bin() -> PathBuf {
    binary("linx-agent", "LINX_AGENT_BIN")
}

pub fn kubectl_bin() -> PathBuf {
    binary("kubectl-linx", "LINX_KUBECTL_BIN")
}

/// A process of ours (operator or agent), killed (SIGKILL) on drop.
pub struct Proc(pub Child);

impl Proc {
    /// `bin` against the API server of `kubeconfig`, logging to the test's
    /// stderr; add arguments, then [`Proc::spawn`].
    pub fn command(bin: &Path, kubeconfig: &Path) -> Command {
        let mut cmd = Command::new(bin);
        cmd.env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,kube=warn,linx_agent=debug")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        cmd
    }

    pub fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", cmd.get_program()));
        Proc(child)
    }

    pub fn start(bin: &Path, args: &[&str], kubeconfig: &Path) -> Proc {
        Proc::spawn(Proc::command(bin, kubeconfig).args(args))
    }

    /// `linx-operator`, its lease in `lease_ns`, with `extra` arguments.
    pub fn operator(kubeconfig: &Path, lease_ns: &str, identity: &str, extra: &[&str]) -> Proc {
        let metrics = crate::free_addr();
        let mut cmd = Proc::command(&operator_bin(), kubeconfig);
        cmd.args(["--metrics-addr", &metrics, "--lease-namespace", lease_ns])
            .args(["--identity", identity])
            .args(extra);
        Proc::spawn(&mut cmd)
    }

    /// `linx-agent run` as the agent of `node` with metrics at `metrics`:
    /// this machine's `/proc`, the test's own network namespace playing the
    /// node's; add arguments, then [`Proc::spawn`].
    pub fn agent_command(kubeconfig: &Path, node: &str, metrics: &str) -> Command {
        let mut cmd = Proc::command(&agent_bin(), kubeconfig);
        cmd.args(["run", "--node-name", node, "--report-interval-secs", "1"])
            .args(["--metrics-addr", metrics, "--proc-root", "/proc"])
            .args(["--host-netns", "/proc/self/ns/net"]);
        cmd
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One flow's world: its runtime and client, its Kubernetes namespaces
/// (`linx-e2e-<id>-<tag>`, labelled `linx.dev/team: e2e-<id>`), its node,
/// and what to delete at the end, also when the test fails.
pub struct Flow {
    pub rt: tokio::runtime::Runtime,
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub id: String,
    pub namespaces: Vec<String>,
    /// `LINX_E2E_NODE` on a real cluster, else a Node object of the flow's
    /// own (`linx-e2e-<id>`, no kubelet behind it).
    pub node: String,
    cleanup: Cleanup,
    host_before: String,
}

impl Flow {
    /// Installs the CRDs and RBAC, makes a namespace per tag and (unless
    /// `node` names one) a Node, and waits until the resources are served.
    pub fn start(kubeconfig: &Path, node: Option<String>, tags: &[&str]) -> Flow {
        let host_before = linx_netfilter::testing::host_ruleset();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let id = suffix();
        let namespaces: Vec<String> = tags.iter().map(|t| format!("linx-e2e-{id}-{t}")).collect();
        let node_name = node.clone().unwrap_or_else(|| format!("linx-e2e-{id}"));
        let cleanup = Cleanup {
            kubeconfig: kubeconfig.to_owned(),
            namespaces: namespaces.clone(),
            node: node.is_none().then(|| node_name.clone()),
            report: node_name.clone(),
            objects: Mutex::default(),
            webhook: Mutex::default(),
        };
        let c = rt.block_on(client(kubeconfig));
        rt.block_on(async {
            install(&c).await;
            for ns in &namespaces {
                let n: Namespace = serde_json::from_value(
                    json!({"metadata": {"name": ns, "labels": {"linx.dev/team": format!("e2e-{id}")}}}),
                )
                .unwrap();
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
            eventually_async("the FirewallRuleset and FirewallTrace APIs", || async {
                Api::<FirewallRuleset>::namespaced(c.clone(), &namespaces[0])
                    .list(&Default::default())
                    .await
                    .map_err(|e| e.to_string())?;
                Api::<FirewallTrace>::namespaced(c.clone(), &namespaces[0])
                    .list(&Default::default())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await;
        });
        Flow {
            rt,
            client: c,
            kubeconfig: kubeconfig.to_owned(),
            id,
            namespaces,
            node: node_name,
            cleanup,
            host_before,
        }
    }

    /// The label every namespace of the flow has, as a namespace selector.
    pub fn team_selector(&self) -> Value {
        json!({"matchLabels": {"linx.dev/team": format!("e2e-{}", self.id)}})
    }

    /// Deletes the namespaced object `K` `ns/name` at the end.
    pub fn delete_at_end<K: Resource<DynamicType = ()>>(&self, ns: &str, name: &str) {
        let ar = ApiResource::erase::<K>(&());
        self.cleanup
            .objects
            .lock()
            .unwrap()
            .push((ar, ns.into(), name.into()));
    }

    /// Deletes the ValidatingWebhookConfiguration `name` at the end.
    pub fn delete_webhook_at_end(&self, name: &str) {
        *self.cleanup.webhook.lock().unwrap() = Some(name.into());
    }

    /// A pod of this flow's node (deleted at the end): see [`TestPod`].
    pub async fn pod(&self, ns: &str, name: &str, app: &str) -> TestPod {
        self.delete_at_end::<Pod>(ns, name);
        create_pod(&self.client, ns, name, app, &self.node).await
    }

    /// Deletes what the flow made and checks that the host's own ruleset
    /// is what it was before (stop the flow's processes first).
    pub fn finish(self) {
        let Flow {
            cleanup,
            host_before,
            ..
        } = self;
        drop(cleanup);
        assert_eq!(
            linx_netfilter::testing::host_ruleset(),
            host_before,
            "host namespace untouched"
        );
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
    objects: Mutex<Vec<(ApiResource, String, String)>>,
    /// The test's ValidatingWebhookConfiguration.
    webhook: Mutex<Option<String>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        let namespaces = std::mem::take(&mut self.namespaces);
        let node = self.node.take();
        let report = self.report.clone();
        let objects = std::mem::take(&mut *self.objects.lock().unwrap_or_else(|e| e.into_inner()));
        let webhook = self
            .webhook
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("cleanup runtime");
            rt.block_on(async move {
                let c = client(&kubeconfig).await;
                let dp = DeleteParams::default();
                if let Some(w) = webhook {
                    let api: Api<ValidatingWebhookConfiguration> = Api::all(c.clone());
                    let _ = api.delete(&w, &dp).await;
                }
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
pub async fn install(c: &Client) {
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
            // The test runs the binaries itself and registers its own webhook.
            if matches!(
                kind,
                "Deployment" | "DaemonSet" | "Service" | "ValidatingWebhookConfiguration"
            ) {
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

/// Polls `f` every 100 ms until it is `Ok`; panics with the last error
/// after [`WAIT`].
pub async fn eventually_async<F, Fut>(what: &str, mut f: F)
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
pub struct TestPod {
    pub namespace: String,
    pub name: String,
    pub netns: TestNetns,
    _process: FakePod,
}

impl TestPod {
    /// `nft list table FAMILY NAME` in the pod (empty when absent).
    pub fn table(&self, family: &str, name: &str) -> String {
        self.netns
            .nft(&["list", "table", family, name])
            .unwrap_or_default()
    }
}

/// Creates Pod `ns/name` (`app=APP`) bound to `node`, and its container:
/// a process in a fresh network namespace, in the cgroup a kubelet would
/// give it, so the agent's real resolver finds it.
pub async fn create_pod(c: &Client, ns: &str, name: &str, app: &str, node: &str) -> TestPod {
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

/// Sets the pod's address as a CNI plugin and the kubelet would.
pub async fn set_pod_ip(c: &Client, ns: &str, name: &str, ip: &str) {
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("status of pod {ns}/{name}: {e}"));
}

/// Server-side apply of a FirewallRuleset with `spec` (`dry_run`:
/// `--dry-run=server`).
pub async fn try_apply_spec(
    c: &Client,
    ns: &str,
    name: &str,
    spec: Value,
    dry_run: bool,
) -> Result<FirewallRuleset, kube::Error> {
    let api: Api<FirewallRuleset> = Api::namespaced(c.clone(), ns);
    let v = json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    });
    let mut pp = PatchParams::apply("linx-e2e").force();
    pp.dry_run = dry_run;
    api.patch(name, &pp, &Patch::Apply(&v)).await
}

pub async fn apply_spec(c: &Client, ns: &str, name: &str, spec: Value) {
    try_apply_spec(c, ns, name, spec, false)
        .await
        .unwrap_or_else(|e| panic!("applying FirewallRuleset {ns}/{name}: {e}"));
}

/// Server-side apply of `nft` for the pods `selector` selects.
pub async fn try_apply(
    c: &Client,
    ns: &str,
    name: &str,
    selector: Value,
    nft: &str,
    dry_run: bool,
) -> Result<FirewallRuleset, kube::Error> {
    let spec = json!({"podSelector": selector, "nft": nft});
    try_apply_spec(c, ns, name, spec, dry_run).await
}

pub async fn apply_ruleset(c: &Client, ns: &str, name: &str, selector: Value, nft: &str) {
    apply_spec(c, ns, name, json!({"podSelector": selector, "nft": nft})).await
}

/// The message of an API server's refusal (any other error fails the test).
pub fn refused(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message,
        other => panic!("not an API refusal: {other}"),
    }
}

/// The condition `type_` of a ruleset's status: (observed generation,
/// status, reason, message).
pub async fn condition(
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

/// Waits until `Ready` is True for the ruleset's current generation.
pub async fn wait_ready(c: &Client, ns: &str, name: &str) -> i64 {
    let api: Api<FirewallRuleset> = Api::namespaced(c.clone(), ns);
    let generation = api
        .get(name)
        .await
        .unwrap()
        .metadata
        .generation
        .unwrap_or(0);
    eventually_async(&format!("{ns}/{name} Ready"), || async {
        let (g, s, reason, msg) = condition(c, ns, name, "Ready").await?;
        (g == generation && s == "True")
            .then_some(())
            .ok_or(format!("{g}/{generation} {s} {reason}: {msg}"))
    })
    .await;
    generation
}

/// Registers the test's webhook by URL for the test's namespaces only
/// (`failurePolicy: Ignore`), and waits for the operator to fill its
/// `caBundle`.
pub async fn register_webhook(c: &Client, name: &str, url: &str, namespaces: &[&str]) {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(c.clone());
    let v: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {"linx.dev/e2e": "true"}},
        "webhooks": [{
            "name": "validate.netfilter.linx.dev",
            "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Ignore", "timeoutSeconds": 5,
            "clientConfig": {"url": url},
            "rules": [{"apiGroups": ["netfilter.linx.dev"], "apiVersions": ["*"],
                       "operations": ["CREATE", "UPDATE"], "resources": ["firewallrulesets"],
                       "scope": "Namespaced"}],
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}]}
        }]
    }))
    .unwrap();
    api.create(&PostParams::default(), &v).await.unwrap();
    eventually_async("the operator fills caBundle", || async {
        let v = api.get(name).await.map_err(|e| e.to_string())?;
        let filled = v.webhooks.iter().flatten().all(|w| {
            w.client_config
                .ca_bundle
                .as_ref()
                .is_some_and(|b| b.0.starts_with(b"-----BEGIN CERTIFICATE-----"))
        });
        filled.then_some(()).ok_or("caBundle empty".into())
    })
    .await;
}

/// What nft lists for table `family name` after loading `script` in a
/// scratch namespace.
pub fn listing(script: &str, family: &str, name: &str) -> String {
    let scratch = TestNetns::new();
    scratch.load(script);
    scratch
        .nft(&["list", "table", family, name])
        .unwrap_or_default()
}

/// Creates FirewallTrace `ns/name` of `pod`: `count` 1, `timeout` seconds.
pub async fn create_trace(
    c: &Client,
    ns: &str,
    name: &str,
    pod: &str,
    matching: &str,
    timeout: u32,
) {
    create_trace_of(c, ns, name, pod, matching, 1, timeout).await
}

/// Creates FirewallTrace `ns/name` of `pod`: `count` packets, `timeout`
/// seconds.
pub async fn create_trace_of(
    c: &Client,
    ns: &str,
    name: &str,
    pod: &str,
    matching: &str,
    count: u32,
    timeout: u32,
) {
    let api: Api<FirewallTrace> = Api::namespaced(c.clone(), ns);
    let t: FirewallTrace = serde_json::from_value(json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallTrace",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"pod": pod, "match": matching, "count": count, "timeoutSeconds": timeout},
    }))
    .unwrap();
    api.create(&PostParams::default(), &t)
        .await
        .unwrap_or_else(|e| panic!("creating FirewallTrace {ns}/{name}: {e}"));
}

/// Waits for trace `name` to reach `phase`; its status then.
pub async fn trace_phase(
    c: &Client,
    ns: &str,
    name: &str,
    phase: TracePhase,
) -> FirewallTraceStatus {
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
