//! The cluster flow: the built `linx-operator` and `linx-agent` binaries
//! against a Kubernetes API server, with "pods" that are processes this
//! test starts in fresh network namespaces and pod cgroups (the setup every
//! cluster flow shares is `linx_e2e::cluster`; the flows of set sources and
//! of observation are `selectors.rs` and `observe.rs`).
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
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::Kubeconfig;
use linx_agent::testing::{cni_args, CniChain};
use linx_cni::conflist::Settings;
use linx_crds::{FirewallNodeReport, FirewallRuleset};
use linx_e2e::cluster::{
    apply_ruleset, assert_pod_requests, condition, eventually_async, listing, on_fake_apiserver,
    real_cluster, refused, register_webhook, try_apply, wait_ready, Flow, Proc, Scratch,
};
use linx_e2e::free_addr;
use linx_netfilter::testing::{masked_listing, TestNetns};
use serde_json::{json, Value};

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
    if let Some(kubeconfig) = real_cluster() {
        flow(&kubeconfig, std::env::var("LINX_E2E_NODE").ok(), true);
    }
}

#[test]
fn cluster_flow_on_fake_apiserver() {
    let server = on_fake_apiserver("fake", |kubeconfig| flow(kubeconfig, None, false));
    let reqs = assert_pod_requests(&server);
    // The readiness gate: one status patch, of the plugin-path pod only.
    let gate: Vec<&String> = reqs
        .iter()
        .filter(|r| r.starts_with("PATCH ") && r.contains("/pods/") && r.contains("/status"))
        .collect();
    assert_eq!(gate.len(), 1, "{gate:#?}");
    assert!(gate[0].contains("/pods/web-1/status"), "{gate:#?}");
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

/// The flow against the API server of `kubeconfig`; `real_cluster`: a real
/// one (kubectl is used, the webhook listens where the API server reaches).
fn flow(kubeconfig: &Path, node: Option<String>, real_cluster: bool) {
    let f = Flow::start(kubeconfig, node, &["a", "b", "c"]);
    let (rt, c, id, node_name) = (&f.rt, f.client.clone(), f.id.clone(), f.node.clone());
    let [ns_a, ns_b, ns_c] = [0, 1, 2].map(|i| f.namespaces[i].clone());

    let pods = rt.block_on(async {
        vec![
            f.pod(&ns_a, "web-0", "web").await,
            f.pod(&ns_a, "db-0", "db").await,
            f.pod(&ns_b, "web-0", "web").await,
            f.pod(&ns_c, "rw-0", "rw").await,
        ]
    });
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
    let identity = format!("linx-e2e-{id}");
    let secret = format!("linx-e2e-{id}-tls");
    let start_operator = || {
        Proc::operator(
            kubeconfig,
            &ns_a,
            &identity,
            &[
                "--webhook-addr",
                &listen,
                "--webhook-host",
                &host,
                "--webhook-configuration",
                &webhook_name,
                "--webhook-secret",
                &secret,
            ],
        )
    };
    let mut _operator = start_operator();
    let _agent = Proc::spawn(
        Proc::agent_command(kubeconfig, &node_name, &free_addr())
            .args(["--report", agent_report.to_str().unwrap()])
            .args(["--cni-socket", cni_socket.to_str().unwrap()])
            .args(["--cni-state-dir", cni_state.to_str().unwrap()])
            .arg("--readiness-gate"),
    );

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
            f.delete_at_end::<FirewallRuleset>(&ns_a, n);
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
        f.delete_at_end::<FirewallRuleset>(&ns_b, "own");
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
        f.delete_at_end::<FirewallRuleset>(&ns_a, "broken");
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
        f.delete_at_end::<Pod>(&ns_a, "web-1");
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
        let late = f.pod(&ns_a, "web-2", "web").await;
        let late_uid = pods_a.get("web-2").await.unwrap().metadata.uid.unwrap();
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
        f.delete_webhook_at_end(&webhook_name);
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
            f.delete_at_end::<FirewallRuleset>(&ns_a, n);
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
        f.delete_at_end::<FirewallRuleset>(&ns_c, "rw");
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
    f.finish();
}
