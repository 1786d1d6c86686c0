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
//! * Part of the flow is a pod created through the plugin path: the
//!   runtime's CNI chain (`testing::CniChain`: Debian's `bridge` +
//!   `host-local`, then `linx-cni`) run for it against the agent, its
//!   firewall in its sandbox when `ADD` returns, its readiness gate set,
//!   then kept as every pod; and a pod that `linx-cni` admitted while the
//!   agent was unreachable (`failOpen`), reported unprotected with an Event
//!   and protected once the agent finds it.
//! * `cluster_flow_on_fake_apiserver` runs the same flow against
//!   `linx_e2e::apiserver::FakeApiServer` (always). That checks our flow
//!   (requests, watches, status and report writes), not a real API
//!   server's semantics (see that module's doc).
//! * `selectors_flow` (cluster) and `selectors_flow_on_fake_apiserver`:
//!   a set fed by a pod selector across namespaces, with real TCP
//!   connections over veth pairs between the pods' namespaces; the pods'
//!   `status.podIPs` are written through the status subresource, so these
//!   always bind pods to a Node object of their own (a kubelet would
//!   overwrite the status).
//!
//! After the basic flow, the admission webhook: the test registers a
//! ValidatingWebhookConfiguration of its own by `clientConfig.url` (the
//! operator runs here, outside the cluster; the configuration only covers
//! the test's namespaces), waits for the operator to fill its `caBundle`,
//! and shows: a typo refused with its line:column (by `kubectl apply` on
//! a real cluster), `--dry-run=server` refused the same way and creating
//! nothing, a valid edit passing, `Ready` (`kubectl wait
//! --for=condition=Ready` on a real cluster) once the pod runs the edit,
//! and with the operator stopped (`failurePolicy: Ignore`) an apply that
//! succeeds, whose status reports the error once the operator is back, and
//! which no agent applies. Then every real-world file (each `.nft` of
//! `netfilter/tests/rulesets/` and `examples/`), pasted into `spec.nft`,
//! passes the webhook, is `Valid` and `Ready`, and the pod lists exactly
//! what `nft -f` of the file lists. A real cluster's API server must reach
//! this machine: `LINX_E2E_WEBHOOK_HOST` (default: this machine's address
//! on the route to the API server).
//!
//! The CRDs and RBAC of `deploy/` are installed by server-side apply and
//! left installed (deleting CRDs would delete every FirewallRuleset of the
//! cluster); the Deployment, Service, DaemonSet and webhook configuration
//! are not applied (the test runs the binaries itself and registers its
//! own webhook). Everything else the test makes (its three Kubernetes
//! namespaces, Node, report, webhook configuration, processes, cgroups,
//! network namespaces) is removed at the end, also on failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::ResourceExt;
use kube::{Client, Config};
use linx_agent::testing::{binary, cni_args, connects, listen, veth, CniChain, FakePod};
use linx_cni::conflist::Settings;
use linx_crds::trace::reasons as trace_reasons;
use linx_crds::{
    FirewallNodeReport, FirewallRuleset, FirewallTrace, FirewallTraceStatus, TracePhase,
};
use linx_e2e::apiserver::FakeApiServer;
use linx_e2e::{eventually, free_addr, scrape};
use linx_netfilter::testing::{masked_listing, TestNetns};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(45);

const WEB: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\ttcp dport 80 accept\n\t}\n}\n";
const WEB3: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\ttcp dport 80 accept\n\t\ttcp dport 8080 accept\n\t}\n}\n";
const BASE: &str = "table ip base {\n\tchain out {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tudp dport 53 accept\n\t}\n}\n";
const OWN: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 5432 accept\n\t}\n}\n";
/// Line 4 has the typo.
const TYPO: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 80 acept\n\t}\n}\n";
/// nft compiles it; the kernel would refuse it (ELOOP): invalid.
const LOOP: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t\tjump a\n\t}\n\tchain a {\n\t\tjump b\n\t}\n\tchain b {\n\t\tjump a\n\t}\n}\n";

#[test]
fn cluster_flow() {
    let Some(kubeconfig) = std::env::var_os("LINX_E2E_KUBECONFIG") else {
        eprintln!("skipped: LINX_E2E_KUBECONFIG is not set (no cluster to test against)");
        return;
    };
    flow(
        Path::new(&kubeconfig),
        std::env::var("LINX_E2E_NODE").ok(),
        true,
    );
}

#[test]
fn cluster_flow_on_fake_apiserver() {
    let server = FakeApiServer::start().expect("start the fake API server");
    let dir = Scratch::new("fake");
    let kubeconfig = dir.0.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    flow(&kubeconfig, None, false);
    let reqs = assert_pod_requests(&server);
    // The readiness gate: one status patch, of the plugin-path pod only.
    let gate: Vec<&String> = reqs
        .iter()
        .filter(|r| r.starts_with("PATCH ") && r.contains("/pods/") && r.contains("/status"))
        .collect();
    assert_eq!(gate.len(), 1, "{gate:#?}");
    assert!(gate[0].contains("/pods/web-1/status"), "{gate:#?}");
}

/// What the components asked of pods: the agent only its node's, the
/// operator (which resolves set sources) all but host-network ones.
fn assert_pod_requests(server: &FakeApiServer) -> Vec<String> {
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
    /// The test's ValidatingWebhookConfiguration.
    webhook: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        let namespaces = std::mem::take(&mut self.namespaces);
        let node = self.node.take();
        let report = self.report.clone();
        let objects = std::mem::take(&mut self.objects);
        let webhook = self.webhook.take();
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
    try_apply(c, ns, name, selector, nft, false)
        .await
        .unwrap_or_else(|e| panic!("applying FirewallRuleset {ns}/{name}: {e}"));
}

/// Server-side apply of a ruleset (`dry_run`: `--dry-run=server`).
async fn try_apply(
    c: &Client,
    ns: &str,
    name: &str,
    selector: Value,
    nft: &str,
    dry_run: bool,
) -> Result<FirewallRuleset, kube::Error> {
    let api: Api<FirewallRuleset> = Api::namespaced(c.clone(), ns);
    let v = json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": selector, "nft": nft},
    });
    let mut pp = PatchParams::apply("linx-e2e").force();
    pp.dry_run = dry_run;
    api.patch(name, &pp, &Patch::Apply(&v)).await
}

/// The message of an API server's refusal (any other error fails the test).
fn refused(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message,
        other => panic!("not an API refusal: {other}"),
    }
}

/// `kubectl` against the cluster: (success, stdout + stderr).
fn kubectl(kubeconfig: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A FirewallRuleset as YAML for kubectl.
fn ruleset_yaml(ns: &str, name: &str, app: &str, nft: &str) -> String {
    serde_yaml::to_string(&json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": {"matchLabels": {"app": app}}, "nft": nft},
    }))
    .unwrap()
}

/// What the agent applies for `nft`: the file itself, except that a
/// rule's own `log` without a `group` logs to the agent's NFLOG group
/// under a tag naming the rule (`docs/audit.md`); then the instrumented
/// value, printed back to nft text.
fn agent_applies(nft: &str) -> String {
    use linx_crds::instrument::{instrument, Instrumentation};
    let spec: linx_crds::FirewallRulesetSpec =
        serde_json::from_value(json!({ "nft": nft })).unwrap();
    let mut v = linx_crds::compile(&spec).unwrap();
    let mut origins = linx_crds::origin::Origins::of(&spec, &v);
    let how = Instrumentation::of(&spec, linx_agent::rulesets::DEFAULT_NFLOG_GROUP);
    let tags = instrument(&mut v, &how, &mut origins).unwrap();
    if tags.is_empty() {
        return nft.to_owned();
    }
    linx_netfilter::print::ruleset(&v, &Default::default())
}

/// The address a real API server reaches this machine at: the source
/// address of the route to it (or `LINX_E2E_WEBHOOK_HOST`).
fn webhook_host(c_url: &str) -> String {
    if let Ok(h) = std::env::var("LINX_E2E_WEBHOOK_HOST") {
        return h;
    }
    let authority = c_url
        .split("://")
        .nth(1)
        .unwrap_or(c_url)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let with_port = if authority.contains(':') {
        authority
    } else {
        format!("{authority}:443")
    };
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    use std::net::ToSocketAddrs;
    let target = with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .expect("API server address");
    sock.connect(target).unwrap();
    sock.local_addr().unwrap().ip().to_string()
}

/// Registers the test's webhook by URL for the test's namespaces only.
async fn register_webhook(c: &Client, name: &str, url: &str, namespaces: &[&str]) {
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

/// Waits until `Ready` is True for the ruleset's current generation.
async fn wait_ready(c: &Client, ns: &str, name: &str) -> i64 {
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

/// Every `.nft` file users would paste: `netfilter/tests/rulesets/` (all
/// of it, listed, so files added later are covered), the generated
/// 5,000-rule ACL beside them, and `examples/`: `(name, text)`.
fn real_world_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    for dir in ["netfilter/tests/rulesets", "examples"] {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "nft"))
            .collect();
        v.sort();
        out.extend(v.into_iter().map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        }));
    }
    out.extend(
        linx_netfilter::testing::real_world_rulesets()
            .into_iter()
            .filter(|(name, _)| name.starts_with("generated-")),
    );
    out
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

/// The flow against the API server of `kubeconfig`; `real_cluster`: a real
/// one (kubectl is used, the webhook listens where the API server reaches).
fn flow(kubeconfig: &Path, node: Option<String>, real_cluster: bool) {
    let host_before = linx_netfilter::testing::host_ruleset();
    let operator_bin = binary("linx-operator", "linx-operator", "LINX_OPERATOR_BIN");
    let agent_bin = binary("linx-agent", "linx-agent", "LINX_AGENT_BIN");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = suffix();
    let (ns_a, ns_b, ns_c) = (
        format!("linx-e2e-{id}-a"),
        format!("linx-e2e-{id}-b"),
        format!("linx-e2e-{id}-c"),
    );
    let node_name = node.clone().unwrap_or_else(|| format!("linx-e2e-{id}"));
    let mut cleanup = Cleanup {
        kubeconfig: kubeconfig.to_owned(),
        namespaces: vec![ns_a.clone(), ns_b.clone(), ns_c.clone()],
        node: node.is_none().then(|| node_name.clone()),
        report: node_name.clone(),
        objects: Vec::new(),
        webhook: None,
    };
    let c = rt.block_on(client(kubeconfig));
    rt.block_on(async {
        install(&c).await;
        for ns in [&ns_a, &ns_b, &ns_c] {
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
            create_pod(&c, &ns_c, "rw-0", "rw", &node_name).await,
        ]
    });
    let pr = ApiResource::erase::<Pod>(&());
    for p in &pods {
        cleanup
            .objects
            .push((pr.clone(), p.namespace.clone(), p.name.clone()));
    }
    let (a_web, a_db, b_web, c_rw) = (&pods[0], &pods[1], &pods[2], &pods[3]);
    let dir = Scratch::new(&id);
    let agent_report = dir.0.join("pods.json");
    // The runtime's CNI chain on this "node": bridge + host-local, then
    // linx-cni talking to the agent below.
    let chain = CniChain::new(
        71,
        Some(Settings {
            timeout_seconds: 20,
            exclude_namespaces: vec![],
            ..Settings::default()
        }),
    );
    let (cni_socket, cni_state) = (chain.socket(), chain.state_dir());
    // The webhook: by URL, at an address the API server reaches.
    let host = if real_cluster {
        let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
        let server = kc
            .clusters
            .iter()
            .find_map(|c| c.cluster.as_ref()?.server.clone())
            .expect("a cluster with a server");
        webhook_host(&server)
    } else {
        "127.0.0.1".to_string()
    };
    let port = free_addr().rsplit_once(':').unwrap().1.to_string();
    let listen = format!(
        "{}:{port}",
        if real_cluster { "0.0.0.0" } else { "127.0.0.1" }
    );
    let webhook_name = format!("linx-e2e-{id}");
    let url = format!(
        "https://{}/validate-firewallruleset",
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    );
    let operator_args: Vec<String> = [
        "--metrics-addr",
        &free_addr(),
        "--lease-namespace",
        &ns_a,
        "--identity",
        &format!("linx-e2e-{id}"),
        "--webhook-addr",
        &listen,
        "--webhook-host",
        &host,
        "--webhook-configuration",
        &webhook_name,
        "--webhook-secret",
        &format!("linx-e2e-{id}-tls"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let start_operator = || {
        let args: Vec<&str> = operator_args.iter().map(String::as_str).collect();
        Proc::start(&operator_bin, &args, kubeconfig)
    };
    let mut _operator = start_operator();
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
            "--cni-socket",
            cni_socket.to_str().unwrap(),
            "--cni-state-dir",
            cni_state.to_str().unwrap(),
            "--readiness-gate",
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
        // The edit's time to program, as the node report gives it.
        eventually_async("web generation 3's program latency reported", || async {
            let r = reports.get(&node_name).await.map_err(|e| e.to_string())?;
            let e = r
                .spec
                .rulesets
                .iter()
                .find(|e| e.namespace == ns_a && e.name == "web")
                .ok_or("no entry")?;
            let l = e.program_latency.ok_or(format!("no latency: {e:?}"))?;
            (e.generation == 3
                && e.applied_pods == 1
                && l.p50_millis == l.p99_millis
                && (0..30_000).contains(&l.p99_millis))
            .then_some(())
            .ok_or(format!("{e:?}"))
        })
        .await;
        assert_eq!(b_web.table("inet", "linx"), own_text);

        // A pod created through the plugin path: the chain's ADD returns
        // only once its firewall is in its sandbox's namespace.
        let pods_a: Api<Pod> = Api::namespaced(c.clone(), &ns_a);
        let gated: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "labels": {"app": "web"}},
            "spec": {"nodeName": node_name,
                     "readinessGates": [{"conditionType": "netfilter.linx.dev/firewall"}],
                     "containers": [{"name": "c", "image": "linx.invalid/not-pulled:0"}]},
        }))
        .unwrap();
        let made = pods_a.create(&PostParams::default(), &gated).await.unwrap();
        cleanup
            .objects
            .push((pr.clone(), ns_a.clone(), "web-1".into()));
        let uid = made.metadata.uid.expect("a UID");
        let sandbox = TestNetns::new();
        let cid = format!("e2e{}", uid.replace('-', ""));
        let cni_pod = linx_agent::Pod {
            uid: uid.clone(),
            namespace: ns_a.clone(),
            name: "web-1".into(),
            ..Default::default()
        };
        let args = cni_args(&cni_pod, &cid);
        let outs = chain.add(&sandbox.path(), &cid, &args);
        let got = (
            sandbox
                .nft(&["list", "table", "inet", "linx"])
                .unwrap_or_default(),
            sandbox
                .nft(&["list", "table", "ip", "base"])
                .unwrap_or_default(),
        );
        assert!(
            outs.iter().all(|o| o.ok()),
            "{:?}",
            outs.iter().map(|o| &o.stderr).collect::<Vec<_>>()
        );
        assert_eq!(
            got,
            (web3_text.clone(), base_text.clone()),
            "firewall in when ADD returned"
        );
        assert_eq!(outs[1].json(), outs[0].json(), "prevResult passed through");
        eventually_async("web-1's readiness gate set", || async {
            let p = pods_a.get("web-1").await.map_err(|e| e.to_string())?;
            let conds = p.status.and_then(|s| s.conditions).unwrap_or_default();
            conds
                .iter()
                .any(|c| c.type_ == "netfilter.linx.dev/firewall" && c.status == "True")
                .then_some(())
                .ok_or(format!("{conds:?}"))
        })
        .await;

        // A pod that linx-cni admitted while the agent was unreachable
        // (failOpen): reported unprotected with an Event, then protected.
        let late = create_pod(&c, &ns_a, "web-2", "web", &node_name).await;
        let late_uid = pods_a.get("web-2").await.unwrap().metadata.uid.unwrap();
        cleanup
            .objects
            .push((pr.clone(), ns_a.clone(), "web-2".into()));
        let late_cid = format!("e2e{}", late_uid.replace('-', ""));
        let late_pod = linx_agent::Pod {
            uid: late_uid,
            namespace: ns_a.clone(),
            name: "web-2".into(),
            ..Default::default()
        };
        let away = json!({"cniVersion": "1.0.0", "name": "linx-e2e", "type": "linx-cni",
            "agentSocket": dir.0.join("nobody.sock"), "stateDir": cni_state,
            "failurePolicy": "failOpen", "timeoutSeconds": 2});
        let out = chain.exec(
            "linx-cni",
            "ADD",
            &late.netns.path(),
            &late_cid,
            &cni_args(&late_pod, &late_cid),
            &away.to_string(),
        );
        assert!(out.ok(), "{}", out.stderr);
        eventually_async("web-2 protected by the normal path", || async {
            let got = late.table("inet", "linx");
            (got == web3_text).then_some(()).ok_or(got)
        })
        .await;
        let reports: Api<FirewallNodeReport> = Api::all(c.clone());
        eventually_async("the node report says how pods started", || async {
            let r = reports.get(&node_name).await.map_err(|e| e.to_string())?;
            let s = r.spec.pod_starts.clone().ok_or("no podStarts")?;
            let late = s.unprotected.first().ok_or(format!("{s:?}"))?;
            // web-1 from its start; web-2 admitted unprotected, enforced
            // since; the three pods made before through the normal path.
            ((s.protected, s.unobserved, s.unprotected_count) == (1, 3, 1)
                && late.name == "web-2"
                && late.enforced
                && late.reason.contains("not reachable"))
            .then_some(())
            .ok_or(format!("{s:?}"))
        })
        .await;
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(c.clone(), &ns_a);
        eventually_async("a StartedUnprotected Event on web-2", || async {
            let l = events
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            l.items
                .iter()
                .any(|e| {
                    e.reason.as_deref() == Some("StartedUnprotected")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web-2")
                })
                .then_some(())
                .ok_or(format!("{} events", l.items.len()))
        })
        .await;

        // The plugin-path pod is then kept as every pod: an edit reaches
        // its sandbox; DEL lets it go.
        apply_ruleset(
            &c,
            &ns_a,
            "web",
            json!({"matchLabels": {"app": "web"}}),
            WEB,
        )
        .await;
        eventually_async("web generation 4 in web-1's sandbox", || async {
            let got = sandbox
                .nft(&["list", "table", "inet", "linx"])
                .unwrap_or_default();
            (got == web_text).then_some(()).ok_or(got)
        })
        .await;
        assert!(chain.del(&sandbox.path(), &cid, &args).ok());
        drop(late);
        // Their sandboxes are gone: so are the pods, as a kubelet would
        // have it (later steps wait for every pod `web` selects).
        let dp = DeleteParams::default().grace_period(0);
        for name in ["web-1", "web-2"] {
            pods_a.delete(name, &dp).await.unwrap();
        }
    });

    // --- The admission webhook ---
    rt.block_on(async {
        let namespaces = [ns_a.as_str(), ns_b.as_str(), ns_c.as_str()];
        cleanup.webhook = Some(webhook_name.clone());
        register_webhook(&c, &webhook_name, &url, &namespaces).await;
        let rulesets: Api<FirewallRuleset> = Api::namespaced(c.clone(), &ns_a);
        let web_sel = json!({"matchLabels": {"app": "web"}});

        // A typo is refused on the spot, with its line:column.
        let err = try_apply(&c, &ns_a, "typo", web_sel.clone(), TYPO, false)
            .await
            .map(|_| ())
            .map_err(refused)
            .unwrap_err();
        assert!(
            err.starts_with("admission webhook \"validate.netfilter.linx.dev\" denied the request: 1 error:\nspec.nft, 4:16: "),
            "{err}"
        );
        assert!(err.contains("did you mean 'accept'?"), "{err}");
        assert!(rulesets.get_opt("typo").await.unwrap().is_none());
        // --dry-run=server: refused the same way; a valid one passes; neither is stored.
        let dry = try_apply(&c, &ns_a, "typo", web_sel.clone(), TYPO, true)
            .await
            .map(|_| ())
            .map_err(refused)
            .unwrap_err();
        assert_eq!(dry, err);
        try_apply(&c, &ns_a, "dry", web_sel.clone(), WEB, true).await.unwrap();
        assert!(rulesets.get_opt("typo").await.unwrap().is_none());
        assert!(rulesets.get_opt("dry").await.unwrap().is_none());
        // A valid edit passes, and Ready follows the kernel.
        apply_ruleset(&c, &ns_a, "web", web_sel.clone(), WEB).await;
        let g = wait_ready(&c, &ns_a, "web").await;
        assert_eq!(g, 4);
        assert_eq!(a_web.table("inet", "linx"), web_text, "Ready once the pod runs it");
        if real_cluster {
            let (ok, out) = kubectl(kubeconfig, &["apply", "-f", "-"], &ruleset_yaml(&ns_a, "typo", "web", TYPO));
            assert!(
                !ok && out.contains("denied the request")
                    && out.contains("4:16")
                    && out.contains("did you mean 'accept'?"),
                "{out}"
            );
            let (ok, out) = kubectl(
                kubeconfig,
                &["apply", "--dry-run=server", "-f", "-"],
                &ruleset_yaml(&ns_a, "typo", "web", TYPO),
            );
            assert!(!ok && out.contains("4:16"), "{out}");
            let (ok, out) = kubectl(kubeconfig, &["apply", "-f", "-"], &ruleset_yaml(&ns_a, "web", "web", WEB3));
            assert!(ok, "{out}");
            let (ok, out) = kubectl(
                kubeconfig,
                &["wait", "--for=condition=Ready", "-n", &ns_a, "fwr/web", "--timeout=60s"],
                "",
            );
            assert!(ok, "{out}");
            assert_eq!(a_web.table("inet", "linx"), web3_text);
        }
    });

    // The operator stopped: with failurePolicy Ignore the apply succeeds;
    // back, the operator reports the error; no agent applies it.
    drop(_operator);
    rt.block_on(async {
        let db_sel = json!({"matchLabels": {"app": "db"}});
        apply_ruleset(&c, &ns_a, "late", db_sel.clone(), TYPO).await;
        apply_ruleset(&c, &ns_a, "looping", db_sel, LOOP).await;
        for n in ["late", "looping"] {
            cleanup.objects.push((rs.clone(), ns_a.clone(), n.into()));
        }
    });
    _operator = start_operator();
    rt.block_on(async {
        eventually_async("late refused in its status", || async {
            let (g, s, reason, msg) = condition(&c, &ns_a, "late", "Valid").await?;
            ((g, s.as_str(), reason.as_str()) == (1, "False", "Invalid") && msg.contains("4:16"))
                .then_some(())
                .ok_or(format!("{g} {s} {reason}: {msg}"))
        })
        .await;
        let loop_msg = "table inet linx, chain a, rule 0, 7:3: jump loop: a -> b -> a (spec.nft)";
        eventually_async("looping refused in its status", || async {
            let (_, s, _, msg) = condition(&c, &ns_a, "looping", "Stalled").await?;
            (s == "True" && msg == loop_msg).then_some(()).ok_or(msg)
        })
        .await;
        let reports: Api<FirewallNodeReport> = Api::all(c.clone());
        eventually_async("the agent refuses what the operator refuses", || async {
            let r = reports.get(&node_name).await.map_err(|e| e.to_string())?;
            let e = r
                .spec
                .rulesets
                .iter()
                .find(|e| e.namespace == ns_a && e.name == "looping")
                .ok_or("no entry")?;
            (e.applied_pods == 0
                && e.failed_pods == 0
                && e.message.as_deref().is_some_and(|m| m.contains(loop_msg)))
            .then_some(())
            .ok_or(format!("{e:?}"))
        })
        .await;
        assert_eq!(a_db.table("inet", "linx"), "", "no agent applied it");

        // Every real-world file, pasted into spec.nft: admitted, Valid,
        // Ready, and the pod lists exactly what nft -f of the file lists
        // (counter values and element expiry masked: time passes).
        // One the engine's compiler cannot read yet (a language gap) is
        // refused by the webhook with the compiler's message and created
        // nowhere.
        let files = real_world_files();
        assert!(files.len() >= 25, "only {} real-world files", files.len());
        cleanup.objects.push((rs.clone(), ns_c.clone(), "rw".into()));
        let rw: Api<FirewallRuleset> = Api::namespaced(c.clone(), &ns_c);
        let rw_sel = json!({"matchLabels": {"app": "rw"}});
        let mut pending = Vec::new();
        for (name, text) in &files {
            let spec = linx_crds::FirewallRulesetSpec {
                nft: Some(text.clone()),
                ..Default::default()
            };
            if let Err(errs) = linx_crds::compile(&spec) {
                let err = try_apply(&c, &ns_c, "pending", rw_sel.clone(), text, false)
                    .await
                    .map(|_| ())
                    .map_err(refused)
                    .unwrap_err();
                assert!(err.contains(&errs[0].to_string()), "{name}: {err}");
                assert!(rw.get_opt("pending").await.unwrap().is_none());
                pending.push(name.clone());
                continue;
            }
            let want = {
                let scratch = TestNetns::new();
                scratch.load(&agent_applies(text));
                masked_listing(&scratch.ruleset())
            };
            try_apply(&c, &ns_c, "rw", rw_sel.clone(), text, false)
                .await
                .unwrap_or_else(|e| panic!("{name}: refused: {e}"));
            let g = wait_ready(&c, &ns_c, "rw").await;
            let (vg, valid, _, msg) = condition(&c, &ns_c, "rw", "Valid").await.unwrap();
            assert_eq!((vg, valid.as_str()), (g, "True"), "{name}: {msg}");
            assert_eq!(masked_listing(&c_rw.netns.ruleset()), want, "{name}");
        }
        println!(
            "{} real-world files: {} admitted, valid and applied exactly; refused, waiting for the compiler: {pending:?}",
            files.len(),
            files.len() - pending.len()
        );
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

#[test]
fn selectors_flow() {
    let Some(kubeconfig) = std::env::var_os("LINX_E2E_KUBECONFIG") else {
        eprintln!("skipped: LINX_E2E_KUBECONFIG is not set (no cluster to test against)");
        return;
    };
    sources_flow(Path::new(&kubeconfig));
}

#[test]
fn selectors_flow_on_fake_apiserver() {
    let server = FakeApiServer::start().expect("start the fake API server");
    let dir = Scratch::new("fake-selectors");
    let kubeconfig = dir.0.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    sources_flow(&kubeconfig);
    assert_pod_requests(&server);
}

/// The database's firewall: port 5432 only from the addresses in `@api`.
const DB: &str = "table inet linx {\n\tset api {\n\t\ttype ipv4_addr\n\t}\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\tip saddr @api tcp dport 5432 counter accept\n\t}\n}\n";
/// A ruleset of the app namespace naming the database's pods as addresses.
const SNEAKY: &str = "table inet sneaky {\n\tset db {\n\t\ttype ipv4_addr\n\t}\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tip daddr @db counter\n\t}\n}\n";

async fn apply_sourced(
    c: &Client,
    ns: &str,
    name: &str,
    selector: Value,
    nft: &str,
    sources: Value,
) {
    let api: Api<FirewallRuleset> = Api::namespaced(c.clone(), ns);
    let v = json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": selector, "nft": nft, "sources": sources},
    });
    api.patch(
        name,
        &PatchParams::apply("linx-e2e").force(),
        &Patch::Apply(&v),
    )
    .await
    .unwrap_or_else(|e| panic!("applying FirewallRuleset {ns}/{name}: {e}"));
}

/// Sets the pod's address as a CNI plugin and the kubelet would.
async fn set_pod_ip(c: &Client, ns: &str, name: &str, ip: &str) {
    let pods: Api<Pod> = Api::namespaced(c.clone(), ns);
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("status of pod {ns}/{name}: {e}"));
}

fn sources_flow(kubeconfig: &Path) {
    let host_before = linx_netfilter::testing::host_ruleset();
    let operator_bin = binary("linx-operator", "linx-operator", "LINX_OPERATOR_BIN");
    let agent_bin = binary("linx-agent", "linx-agent", "LINX_AGENT_BIN");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = suffix();
    let (ns_db, ns_app) = (format!("linx-e2e-{id}-db"), format!("linx-e2e-{id}-app"));
    let team = format!("e2e-{id}");
    let node_name = format!("linx-e2e-{id}");
    let mut cleanup = Cleanup {
        kubeconfig: kubeconfig.to_owned(),
        namespaces: vec![ns_db.clone(), ns_app.clone()],
        node: Some(node_name.clone()),
        report: node_name.clone(),
        objects: Vec::new(),
        webhook: None,
    };
    let c = rt.block_on(client(kubeconfig));
    rt.block_on(async {
        install(&c).await;
        for ns in [&ns_db, &ns_app] {
            let n: Namespace = serde_json::from_value(
                json!({"metadata": {"name": ns, "labels": {"linx.dev/team": team}}}),
            )
            .unwrap();
            Api::<Namespace>::all(c.clone())
                .create(&PostParams::default(), &n)
                .await
                .unwrap();
        }
        let n: Node = serde_json::from_value(json!({"metadata": {"name": node_name,
            "labels": {"linx.dev/e2e": "true"}}}))
        .unwrap();
        Api::<Node>::all(c.clone())
            .create(&PostParams::default(), &n)
            .await
            .unwrap();
        eventually_async("the FirewallRuleset API", || async {
            Api::<FirewallRuleset>::namespaced(c.clone(), &ns_db)
                .list(&Default::default())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await;
    });
    let pods = rt.block_on(async {
        vec![
            create_pod(&c, &ns_db, "db-0", "db", &node_name).await,
            create_pod(&c, &ns_db, "web-0", "web", &node_name).await,
            create_pod(&c, &ns_app, "api-0", "api", &node_name).await,
            create_pod(&c, &ns_app, "other-0", "web", &node_name).await,
        ]
    });
    let pr = ApiResource::erase::<Pod>(&());
    for p in &pods {
        cleanup
            .objects
            .push((pr.clone(), p.namespace.clone(), p.name.clone()));
    }
    let (db, web, api, other) = (&pods[0], &pods[1], &pods[2], &pods[3]);
    // The database reaches each client over its own link.
    veth(
        &db.netns,
        "to-api",
        "10.77.1.1/24",
        &api.netns,
        "eth0",
        "10.77.1.2/24",
    );
    veth(
        &db.netns,
        "to-other",
        "10.77.2.1/24",
        &other.netns,
        "eth0",
        "10.77.2.2/24",
    );
    listen(&db.netns, "0.0.0.0:5432");
    let refused = Duration::from_millis(500);
    let (from_api, from_other) = ("10.77.1.1:5432", "10.77.2.1:5432");
    assert!(
        connects(&api.netns, from_api, WAIT),
        "no firewall yet: open"
    );

    let _operator = Proc::start(
        &operator_bin,
        &[
            "--metrics-addr",
            &free_addr(),
            "--lease-namespace",
            &ns_db,
            "--identity",
            &format!("linx-e2e-{id}"),
            // This flow is about set sources: no webhook (the cluster flow has one).
            "--webhook-addr",
            "",
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
            "--proc-root",
            "/proc",
            "--host-netns",
            "/proc/self/ns/net",
        ],
        kubeconfig,
    );
    let rs = ruleset_resource();
    let api_peer = json!([{"family": "inet", "table": "linx", "set": "api", "source": {"pods": [
        {"podSelector": {"matchLabels": {"app": "api"}},
         "namespaceSelector": {"matchLabels": {"linx.dev/team": team}}}]}}]);
    let set_has = |p: &TestPod, set: &str, table: &str, ip: &str| {
        p.netns
            .nft(&["list", "set", "inet", table, set])
            .is_ok_and(|l| {
                l.contains(&format!("elements = {{ {ip}")) || l.contains(&format!(", {ip}"))
            })
    };
    let rules = |p: &TestPod| {
        p.netns
            .nft(&["-a", "list", "chain", "inet", "linx", "input"])
            .unwrap_or_default()
    };
    rt.block_on(async {
        for (p, ip) in [
            (db, "10.77.1.1"),
            (web, "10.77.3.1"),
            (api, "10.77.1.2"),
            (other, "10.77.2.2"),
        ] {
            set_pod_ip(&c, &p.namespace, &p.name, ip).await;
        }
        apply_sourced(
            &c,
            &ns_db,
            "db",
            json!({"matchLabels": {"app": "db"}}),
            DB,
            api_peer.clone(),
        )
        .await;
        // A ruleset of the app namespace naming the database's pods: only
        // addresses in its own pods' sets, no hold on the database's pod.
        let db_peer = json!([{"family": "inet", "table": "sneaky", "set": "db", "source": {"pods": [
            {"podSelector": {"matchLabels": {"app": "db"}},
             "namespaceSelector": {"matchLabels": {"linx.dev/team": team}}}]}}]);
        apply_sourced(&c, &ns_app, "sneaky", json!({}), SNEAKY, db_peer).await;
        cleanup
            .objects
            .push((rs.clone(), ns_db.clone(), "db".into()));
        cleanup
            .objects
            .push((rs.clone(), ns_app.clone(), "sneaky".into()));

        eventually_async("the api pod's address in the database's set", || async {
            set_has(db, "api", "linx", "10.77.1.2")
                .then_some(())
                .ok_or(db.netns.ruleset())
        })
        .await;
        eventually_async("the database's address in the app pods' sets", || async {
            (set_has(api, "db", "sneaky", "10.77.1.1")
                && set_has(other, "db", "sneaky", "10.77.1.1"))
            .then_some(())
            .ok_or(api.netns.ruleset())
        })
        .await;
        let db_tables = db.netns.nft(&["list", "tables"]).unwrap();
        assert_eq!(
            db_tables, "table inet linx\n",
            "only its own namespace's ruleset"
        );
        assert_eq!(
            web.netns.ruleset(),
            "",
            "a pod nothing selects is not touched"
        );
        assert!(!set_has(db, "api", "linx", "10.77.2.2"));
        assert!(
            connects(&api.netns, from_api, WAIT),
            "from an app=api pod: allowed"
        );
        assert!(
            !connects(&other.netns, from_other, refused),
            "from another pod: refused"
        );
        eventually_async("the set's count in the status", || async {
            let r = Api::<FirewallRuleset>::namespaced(c.clone(), &ns_db)
                .get("db")
                .await
                .map_err(|e| e.to_string())?;
            let sets = r.status.map(|s| s.address_sets).unwrap_or_default();
            (sets.len() == 1
                && sets[0].table == "inet linx"
                && sets[0].set == "api"
                && sets[0].elements == 1)
                .then_some(())
                .ok_or(format!("{sets:?}"))
        })
        .await;

        // Relabelled: allowed, by an element added, no rule touched.
        let before = rules(db);
        assert!(before.contains("counter packets"), "{before}");
        let pods_api: Api<Pod> = Api::namespaced(c.clone(), &ns_app);
        let relabel = json!({"metadata": {"labels": {"app": "api"}}});
        let t = std::time::Instant::now();
        pods_api
            .patch("other-0", &PatchParams::default(), &Patch::Merge(&relabel))
            .await
            .unwrap();
        eventually_async("the relabelled pod's address in the set", || async {
            set_has(db, "api", "linx", "10.77.2.2")
                .then_some(())
                .ok_or(db.netns.ruleset())
        })
        .await;
        eprintln!("relabel to kernel: {:?}", t.elapsed());
        assert_eq!(
            rules(db),
            before,
            "handles and counters unchanged: an element delta only"
        );
        assert!(
            connects(&other.netns, from_other, WAIT),
            "relabelled: allowed"
        );
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
        webhook: None,
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
