//! The Kubernetes adapter against a mock API server: the exact requests it
//! sends (the node's pods only; the report by server-side apply), and the
//! report computed from pod reports.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::{Api, Client};
use linx_agent::cluster::{node_report, write_report, KubeOptions};
use linx_agent::controller::{NodeController, Options};
use linx_agent::metrics::Metrics;
use linx_agent::resolve::{NetnsResolver, PodNetns, Resolution, ResolveError};
use linx_agent::rulesets::RulesetPolicy;
use linx_agent::snapshot::Snapshot;
use linx_agent::{Pod, PodReport, PodState};
use linx_cni::protocol::PodRef;
use linx_cni::record::StartRecord;
use linx_crds::report::ProgramLatency;
use linx_crds::{
    FirewallNodeReport, FirewallRuleset, PodFailure, PodRuleset, PodStarts, RulesetReport,
    UnprotectedPod,
};
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const REPORT_PATH: &str = "/apis/netfilter.linx.dev/v1alpha1/firewallnodereports/node-a";

fn mock() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

fn ruleset(name: &str, generation: i64, selector: Value, nft: &str) -> FirewallRuleset {
    serde_json::from_value(json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1",
        "kind": "FirewallRuleset",
        "metadata": {"name": name, "namespace": "web", "uid": format!("uid-{name}"),
                     "generation": generation, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"podSelector": selector, "nft": nft},
    }))
    .unwrap()
}

fn pod(uid: &str, name: &str, app: &str) -> Pod {
    Pod {
        uid: uid.into(),
        namespace: "web".into(),
        name: name.into(),
        labels: [("app".to_string(), app.to_string())].into(),
        host_network: false,
    }
}

fn report(p: &Pod, revision: u64, state: PodState, error: Option<&str>) -> PodReport {
    let mut r = PodReport::new(p, revision);
    r.state = state;
    r.error = error.map(String::from);
    r
}

#[test]
fn report_counts_pods_at_their_current_revision() {
    let policy = RulesetPolicy::new(&[
        ruleset("base", 3, json!({}), "table inet fw { chain c { accept } }"),
        ruleset(
            "web-only",
            7,
            json!({"matchLabels": {"app": "web"}}),
            "table inet w { chain c { accept } }",
        ),
        ruleset(
            "unused",
            1,
            json!({"matchLabels": {"app": "none"}}),
            "table ip u { }",
        ),
    ]);
    let pods = vec![
        pod("u1", "web-0", "web"),
        pod("u2", "web-1", "web"),
        pod("u3", "web-2", "web"),
        pod("u4", "db-0", "db"),
        Pod {
            host_network: true,
            ..pod("u5", "host-0", "web")
        },
    ];
    let snap = Snapshot {
        revisions: HashMap::from([
            ("u1".into(), 2),
            ("u2".into(), 2),
            ("u3".into(), 2),
            ("u4".into(), 2),
        ]),
        pods: pods.clone(),
        policy: Arc::new(policy),
    };
    let programmed = |mut r: PodReport, ms: u64| {
        r.program_latency = Some(std::time::Duration::from_millis(ms));
        r
    };
    let reports: BTreeMap<String, PodReport> = [
        programmed(report(&pods[0], 2, PodState::Applied, None), 40),
        report(
            &pods[1],
            2,
            PodState::Failed,
            Some("netlink: EPERM adding rule"),
        ),
        // Applied, but an older desired value: pending, not applied (and
        // its latency, about that older value, not counted).
        programmed(report(&pods[2], 1, PodState::Applied, None), 900),
        programmed(report(&pods[3], 2, PodState::Applied, None), 10),
    ]
    .into_iter()
    .map(|r| (r.uid.clone(), r))
    .collect();
    let got = node_report("node-a", &snap, &reports, None);
    assert_eq!(
        got.spec.pod_starts, None,
        "without linx-cni nothing is said of starts"
    );
    let failure = PodFailure {
        node: "node-a".into(),
        pod: "web-1".into(),
        message: "netlink: EPERM adding rule".into(),
    };
    assert_eq!(
        got.spec.rulesets,
        vec![
            RulesetReport {
                namespace: "web".into(),
                name: "base".into(),
                uid: "uid-base".into(),
                generation: 3,
                matched_pods: 4,
                applied_pods: 2,
                failed_pods: 1,
                enforced_generation: None,
                message: None,
                failures: vec![failure.clone()],
                program_latency: Some(ProgramLatency {
                    p50_millis: 10,
                    p99_millis: 40
                }),
                pods: vec![
                    pod_entry("db-0", "Applied", Some(3)),
                    pod_entry("web-0", "Applied", Some(3)),
                    pod_entry("web-1", "Failed", None),
                    // Applied at an older revision: not yet this one.
                    pod_entry("web-2", "Pending", None),
                ],
                ..Default::default()
            },
            RulesetReport {
                namespace: "web".into(),
                name: "web-only".into(),
                uid: "uid-web-only".into(),
                generation: 7,
                matched_pods: 3,
                applied_pods: 1,
                failed_pods: 1,
                enforced_generation: None,
                message: None,
                failures: vec![failure],
                program_latency: Some(ProgramLatency {
                    p50_millis: 40,
                    p99_millis: 40
                }),
                pods: vec![
                    pod_entry("web-0", "Applied", Some(7)),
                    pod_entry("web-1", "Failed", None),
                    pod_entry("web-2", "Pending", None),
                ],
                ..Default::default()
            },
        ]
    );
    assert_eq!(got.metadata.name.as_deref(), Some("node-a"));

    // With linx-cni's start records: web-0 protected from its start;
    // web-1 (recorded by name: no UID from the runtime) and db-0 admitted
    // unprotected, db-0 caught up since; web-2 started before linx-cni.
    let rec = |p: &Pod, uid: bool, protected: bool, at: u64| StartRecord {
        pod: PodRef {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: uid.then(|| p.uid.clone()),
        },
        container_id: format!("c-{}-{at}", p.uid),
        protected,
        reason: (!protected).then(|| "the node agent is not reachable".into()),
        at,
    };
    let gone = pod("u9", "gone-0", "web");
    let records = vec![
        rec(&pods[0], true, true, 1),
        rec(&pods[1], false, false, 1),
        rec(&pods[3], true, true, 1),
        rec(&pods[3], true, false, 2), // the later sandbox wins
        rec(&pods[4], true, false, 1), // host network: not counted
        rec(&gone, true, false, 1),    // not on the node any more
    ];
    let got = node_report("node-a", &snap, &reports, Some(&records));
    let unprotected = |p: &Pod, enforced: bool| UnprotectedPod {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        enforced,
        reason: "the node agent is not reachable".into(),
    };
    assert_eq!(
        got.spec.pod_starts,
        Some(PodStarts {
            protected: 1,
            unobserved: 1,
            unprotected_count: 2,
            unprotected: vec![unprotected(&pods[3], true), unprotected(&pods[1], false)],
        })
    );
}

fn pod_entry(pod: &str, state: &str, applied_generation: Option<i64>) -> PodRuleset {
    PodRuleset {
        pod: pod.into(),
        state: state.into(),
        applied_generation,
        would_drop: 0,
    }
}

/// Receives one request within 5 s.
async fn next(
    handle: &mut Handle,
) -> (
    Request<Body>,
    tower_test::mock::SendResponse<Response<Body>>,
) {
    tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("no request within 5s")
        .expect("service dropped")
}

fn reply(send: tower_test::mock::SendResponse<Response<Body>>, v: &Value) {
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(v).unwrap()))
            .unwrap(),
    );
}

async fn json_body(req: Request<Body>) -> Value {
    let bytes = req.into_body().collect_bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn report_is_written_by_forced_server_side_apply() {
    let (client, mut handle) = mock();
    let report = FirewallNodeReport::for_node(
        "node-a",
        vec![RulesetReport {
            namespace: "web".into(),
            name: "base".into(),
            uid: "uid-base".into(),
            generation: 3,
            matched_pods: 2,
            applied_pods: 1,
            failed_pods: 1,
            enforced_generation: None,
            message: None,
            failures: vec![PodFailure {
                node: "node-a".into(),
                pod: "web-1".into(),
                message: "EPERM".into(),
            }],
            program_latency: Some(ProgramLatency {
                p50_millis: 12,
                p99_millis: 340,
            }),
            ..Default::default()
        }],
    )
    .owned_by_node("node-uid");
    let api: Api<FirewallNodeReport> = Api::all(client);
    let write = tokio::spawn(async move { write_report(&api, &report).await });
    let (req, send) = next(&mut handle).await;
    assert_eq!(req.method(), Method::PATCH);
    assert_eq!(req.uri().path(), REPORT_PATH);
    assert_eq!(
        req.uri().query(),
        Some("&force=true&fieldManager=linx-agent")
    );
    assert_eq!(
        req.headers()["content-type"],
        "application/apply-patch+yaml"
    );
    let body = json_body(req).await;
    assert_eq!(
        body,
        json!({
            "apiVersion": "netfilter.linx.dev/v1alpha1",
            "kind": "FirewallNodeReport",
            "metadata": {"name": "node-a", "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": "node-uid"}]},
            "spec": {"nodeName": "node-a", "rulesets": [
                {"namespace": "web", "name": "base", "uid": "uid-base", "generation": 3,
                 "matchedPods": 2, "appliedPods": 1, "failedPods": 1,
                 "failures": [{"node": "node-a", "pod": "web-1", "message": "EPERM"}],
                 "programLatency": {"p50Millis": 12, "p99Millis": 340}}]}
        })
    );
    reply(send, &body);
    write.await.unwrap().unwrap();
}

/// No pod process ever runs: every pod stays `NotRunning`.
struct NoProcess;

impl NetnsResolver for NoProcess {
    fn resolve(&self, _: &Pod) -> Result<Resolution, ResolveError> {
        Ok(Resolution::NotRunning)
    }
    fn still_valid(&self, _: &PodNetns) -> bool {
        false
    }
}

const ADDRESS_SETS_PATH: &str = "/apis/netfilter.linx.dev/v1alpha1/firewalladdresssets";

/// The agent also runs its node's FirewallTraces: none here.
const TRACES_PATH: &str = "/apis/netfilter.linx.dev/v1alpha1/firewalltraces";

fn traces_list() -> Value {
    list("FirewallTraceList", "netfilter.linx.dev/v1alpha1", vec![])
}

fn address_sets_list() -> Value {
    list(
        "FirewallAddressSetList",
        "netfilter.linx.dev/v1alpha1",
        vec![],
    )
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "10"},
           "items": items})
}

/// The adapter running against the mock, with one pod of node-a to list.
struct Adapter {
    handle: Handle,
    reports: Arc<linx_agent::Reports>,
    stop_tx: tokio::sync::oneshot::Sender<()>,
    agent: tokio::task::JoinHandle<()>,
    pod_json: Value,
}

fn start_adapter() -> Adapter {
    let (client, handle) = mock();
    let node = NodeController::new(Arc::new(NoProcess), Options::default(), Metrics::default());
    let reports = node.reports();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = KubeOptions {
        node: "node-a".into(),
        report_interval: Duration::from_millis(50),
        cni_state_dir: None,
        readiness_gate: false,
    };
    let agent = tokio::spawn(linx_agent::cluster::run(client, opts, node, None, async {
        let _ = stop_rx.await;
    }));
    let pod_json = json!({"metadata": {"name": "web-0", "namespace": "web", "uid": "u1",
                                       "labels": {"app": "web"}},
                          "spec": {"nodeName": "node-a", "containers": []}});
    Adapter {
        handle,
        reports,
        stop_tx,
        agent,
        pod_json,
    }
}

#[tokio::test]
async fn run_watches_this_nodes_pods_and_reports_what_selects_them() {
    let Adapter {
        mut handle,
        reports,
        stop_tx,
        agent,
        pod_json,
    } = start_adapter();
    let rs = serde_json::to_value(ruleset(
        "base",
        3,
        json!({"matchLabels": {"app": "web"}}),
        "table inet fw { chain c { accept } }",
    ))
    .unwrap();
    let mut pod_queries = Vec::new();
    // Watches stay open (their responses are held) until the test ends.
    let mut held = Vec::new();
    let patch = loop {
        let (req, send) = next(&mut handle).await;
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let watch = query.contains("watch=true");
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/api/v1/pods") => {
                pod_queries.push(query);
                if watch {
                    held.push(send);
                } else {
                    reply(send, &list("PodList", "v1", vec![pod_json.clone()]));
                }
            }
            (Method::GET, "/apis/netfilter.linx.dev/v1alpha1/firewallrulesets") => {
                if watch {
                    held.push(send);
                } else {
                    reply(
                        send,
                        &list(
                            "FirewallRulesetList",
                            "netfilter.linx.dev/v1alpha1",
                            vec![rs.clone()],
                        ),
                    );
                }
            }
            (Method::GET, ADDRESS_SETS_PATH) => {
                if watch {
                    held.push(send);
                } else {
                    reply(send, &address_sets_list());
                }
            }
            (Method::GET, TRACES_PATH) => {
                if watch {
                    held.push(send);
                } else {
                    reply(send, &traces_list());
                }
            }
            (Method::GET, "/api/v1/nodes/node-a") => reply(
                send,
                &json!({"apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": "node-a", "uid": "node-uid"}}),
            ),
            (Method::PATCH, REPORT_PATH) => {
                assert_eq!(query, "&force=true&fieldManager=linx-agent");
                let body = json_body(req).await;
                reply(send, &body);
                break body;
            }
            (m, p) => panic!("unexpected request {m} {p}?{query}"),
        }
    };
    assert!(!pod_queries.is_empty());
    for q in &pod_queries {
        assert!(
            q.contains("fieldSelector=spec.nodeName%3Dnode-a"),
            "pod request without the node's field selector: {q}"
        );
    }
    assert_eq!(
        patch["spec"],
        json!({"nodeName": "node-a", "rulesets": [
            {"namespace": "web", "name": "base", "uid": "uid-base", "generation": 3,
             "matchedPods": 1, "appliedPods": 0, "failedPods": 0,
             "pods": [{"pod": "web-0", "state": "Pending"}]}]})
    );
    assert_eq!(
        patch["metadata"]["ownerReferences"][0]["uid"],
        json!("node-uid")
    );
    // The pod was given to the controller (its worker reports it).
    assert!(
        reports
            .wait_for(Duration::from_secs(5), |r| r
                .get("u1")
                .is_some_and(|p| p.state == PodState::NotRunning))
            .await
    );
    // Its state changed (Pending → NotRunning): the report lists each
    // pod's state, so it is written once more with that, and nothing else
    // is asked (but the traces' watch, which may start late).
    let mut second = None;
    while let Ok(Some((req, send))) =
        tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await
    {
        let watch = req.uri().query().unwrap_or_default().contains("watch=true");
        match (req.method().clone(), req.uri().path()) {
            (Method::GET, TRACES_PATH) if watch => held.push(send),
            (Method::PATCH, REPORT_PATH) if second.is_none() => {
                let body = json_body(req).await;
                reply(send, &body);
                second = Some(body);
            }
            (m, _) => panic!("unexpected request {m} {}", req.uri()),
        }
    }
    assert_eq!(
        second.expect("the report with the pod's new state")["spec"]["rulesets"][0]["pods"],
        json!([{"pod": "web-0", "state": "NotRunning"}])
    );
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .expect("agent stops")
        .unwrap();
    drop(held);
}

#[test]
fn report_names_the_generation_enforced_when_the_current_one_is_invalid() {
    let good = "table inet fw { chain c { accept } }";
    let typo = "table inet fw {\n chain c { acept }\n}";
    let sel = json!({});
    let v1 = RulesetPolicy::new(&[ruleset("base", 1, sel.clone(), good)]);
    let v2 = RulesetPolicy::next(&v1, &[ruleset("base", 2, sel.clone(), typo)]);
    // Still invalid at generation 3: generation 1 is carried on.
    let v3 = RulesetPolicy::next(&v2, &[ruleset("base", 3, sel.clone(), typo)]);
    let restarted = RulesetPolicy::new(&[ruleset("base", 3, sel, typo)]);
    let pods = vec![pod("u1", "web-0", "web")];
    let entry = |policy: RulesetPolicy| {
        let snap = Snapshot {
            revisions: HashMap::from([("u1".into(), 1)]),
            pods: pods.clone(),
            policy: Arc::new(policy),
        };
        let reports = [(
            "u1".to_string(),
            report(&pods[0], 1, PodState::Applied, None),
        )]
        .into();
        node_report("node-a", &snap, &reports, None).spec.rulesets[0].clone()
    };
    let e = entry(v1);
    assert_eq!((e.generation, e.applied_pods), (1, 1));
    assert_eq!((e.enforced_generation, e.message), (None, None));
    let e = entry(v3);
    assert_eq!(
        (
            e.generation,
            e.enforced_generation,
            e.matched_pods,
            e.applied_pods
        ),
        (3, Some(1), 1, 0),
        "generation 3 is not applied anywhere; generation 1 is enforced"
    );
    let m = e.message.unwrap();
    assert!(
        m.starts_with("generation 3 does not compile (spec.nft, 2:"),
        "{m}"
    );
    assert!(m.ends_with("generation 1 stays enforced"), "{m}");
    let e = entry(restarted);
    assert_eq!((e.generation, e.enforced_generation), (3, None));
    assert!(e
        .message
        .unwrap()
        .ends_with("the tables of its pods are kept as they are"),);
}

/// Through the adapter: a watch event turning a ruleset invalid keeps its
/// last valid generation (the previous policy is carried across events).
#[tokio::test]
async fn run_keeps_the_last_valid_generation_across_watch_events() {
    let Adapter {
        mut handle,
        stop_tx,
        agent,
        pod_json,
        ..
    } = start_adapter();
    let sel = json!({"matchLabels": {"app": "web"}});
    let v1 = serde_json::to_value(ruleset(
        "base",
        1,
        sel.clone(),
        "table inet fw { chain c { accept } }",
    ))
    .unwrap();
    let v2 = serde_json::to_value(ruleset(
        "base",
        2,
        sel,
        "table inet fw {\n chain c { acept }\n}",
    ))
    .unwrap();
    let mut v2 = v2;
    v2["metadata"]["resourceVersion"] = json!("11");
    let mut held = Vec::new();
    let mut rs_watches = 0;
    // The list (generation 1) is always processed before the watch event
    // (generation 2): the entry for generation 2 must carry generation 1.
    let entry = loop {
        let (req, send) = next(&mut handle).await;
        let path = req.uri().path().to_string();
        let watch = req.uri().query().unwrap_or_default().contains("watch=true");
        match (req.method().clone(), path.as_str(), watch) {
            (Method::GET, "/api/v1/pods", false) => {
                reply(send, &list("PodList", "v1", vec![pod_json.clone()]))
            }
            (Method::GET, "/apis/netfilter.linx.dev/v1alpha1/firewallrulesets", false) => reply(
                send,
                &list(
                    "FirewallRulesetList",
                    "netfilter.linx.dev/v1alpha1",
                    vec![if rs_watches == 0 {
                        v1.clone()
                    } else {
                        v2.clone()
                    }],
                ),
            ),
            // The first ruleset watch delivers generation 2, then ends.
            (Method::GET, "/apis/netfilter.linx.dev/v1alpha1/firewallrulesets", true)
                if rs_watches == 0 =>
            {
                rs_watches += 1;
                let mut ev =
                    serde_json::to_vec(&json!({"type": "MODIFIED", "object": v2})).unwrap();
                ev.push(b'\n');
                send.send_response(Response::builder().body(Body::from(ev)).unwrap());
            }
            (Method::GET, _, true) => held.push(send),
            (Method::GET, ADDRESS_SETS_PATH, false) => reply(send, &address_sets_list()),
            (Method::GET, TRACES_PATH, false) => reply(send, &traces_list()),
            (Method::GET, "/api/v1/nodes/node-a", false) => reply(
                send,
                &json!({"apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": "node-a", "uid": "node-uid"}}),
            ),
            (Method::PATCH, REPORT_PATH, _) => {
                let body = json_body(req).await;
                reply(send, &body);
                let e = body["spec"]["rulesets"][0].clone();
                if e["generation"] == 2 {
                    break e;
                }
                assert_eq!(e.get("enforcedGeneration"), None, "{e}");
            }
            (m, p, w) => panic!("unexpected request {m} {p} watch={w}"),
        }
    };
    assert_eq!(entry["enforcedGeneration"], 1, "{entry}");
    assert_eq!(entry["appliedPods"], 0);
    assert!(entry["message"]
        .as_str()
        .unwrap()
        .ends_with("generation 1 stays enforced"));
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .expect("agent stops")
        .unwrap();
}
