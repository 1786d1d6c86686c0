//! The controller against a mock API server: each scenario asserts the
//! exact requests `reconcile` sends (method, path, query, body) and
//! answers them, then checks nothing else was sent.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::client::Body;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Client, Resource};
use linx_crds::{
    FirewallAddressSet, FirewallNodeReport, FirewallRuleset, PodFailure, RulesetReport,
};
use linx_operator::{reconcile, Context, Metrics};
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const T0: &str = "2026-01-01T00:00:00Z";

fn fixed_clock() -> Time {
    Time(T0.parse().unwrap())
}

fn ruleset(name: &str, created: &str, spec: Value) -> FirewallRuleset {
    serde_json::from_value(json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1",
        "kind": "FirewallRuleset",
        "metadata": {"name": name, "namespace": "web", "uid": format!("uid-{name}"), "generation": 3,
                     "creationTimestamp": created},
        "spec": spec,
    }))
    .unwrap()
}

fn store<K>(objs: Vec<K>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store();
    for o in objs {
        writer.apply_watcher_event(&watcher::Event::Apply(o));
    }
    store
}

fn context(
    client: Client,
    reports: Vec<FirewallNodeReport>,
    rulesets: Vec<FirewallRuleset>,
) -> Arc<Context> {
    Arc::new(Context {
        recorder: Recorder::new(client.clone(), "linx-operator".into()),
        client,
        metrics: Metrics::default(),
        reports: store(reports),
        rulesets: store(rulesets),
        address_sets: store(Vec::new()),
        clock: fixed_clock,
    })
}

fn mock() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

/// Receives one request, checks method and path, returns its query and JSON body.
async fn expect(handle: &mut Handle, method: Method, path: &str, reply: Value) -> (String, Value) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("no request within 5s")
        .expect("service dropped");
    assert_eq!(req.method(), method);
    assert_eq!(req.uri().path(), path);
    let query = req.uri().query().unwrap_or_default().to_string();
    let body = req.into_body().collect_bytes().await.unwrap();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    (query, json)
}

/// Checks that no further request arrives.
async fn expect_no_more(handle: &mut Handle) {
    if let Ok(Some((req, _))) =
        tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
    {
        panic!("unexpected request {} {}", req.method(), req.uri());
    }
}

const STATUS_PATH: &str =
    "/apis/netfilter.linx.dev/v1alpha1/namespaces/web/firewallrulesets/fw/status";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/web/events";

fn cond(ty: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": ty, "status": status, "reason": reason, "message": message,
           "observedGeneration": 3, "lastTransitionTime": T0})
}

fn valid_spec() -> Value {
    json!({"podSelector": {"matchLabels": {"app": "web"}},
           "tables": [{"name": "fw", "family": "inet", "chains": [
               {"name": "input", "type": "filter", "hook": "input", "policy": "drop",
                "rules": ["tcp dport 22 jump ssh"]},
               {"name": "ssh", "rules": ["accept"]}]}]})
}

const VALID_MSG: &str = "structure, references and nft syntax are valid";
const NO_CONFLICT: &str = "no other FirewallRuleset claims these tables";
const PODS_PATH: &str = "/api/v1/namespaces/web/pods";
const NO_POD: &str = "no pod selected; generation 3 is valid";

/// Answers the one pod list a valid resource without reports asks for
/// (does its selector match any pod?) with `pods`.
async fn expect_pods(handle: &mut Handle, pods: Value) {
    let list = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods});
    let (query, _) = expect(handle, Method::GET, PODS_PATH, list).await;
    assert_eq!(query, "&labelSelector=app%3Dweb&limit=100");
}

/// kstatus' conditions of a resource that is Ready with `message`.
fn ready(message: &str) -> [Value; 3] {
    [
        cond("Ready", "True", "Ready", message),
        cond(
            "Reconciling",
            "False",
            "Ready",
            "every selected pod runs the current generation",
        ),
        cond(
            "Stalled",
            "False",
            "Ready",
            "nothing blocks the current generation",
        ),
    ]
}

#[tokio::test]
async fn valid_resource_gets_its_status_by_server_side_apply() {
    let (client, mut handle) = mock();
    let obj = ruleset("fw", "2025-01-01T00:00:00Z", valid_spec());
    let ctx = context(client, vec![], vec![obj.clone()]);
    let reply = serde_json::to_value(&obj).unwrap();
    let server = tokio::spawn(async move {
        expect_pods(&mut handle, json!([])).await;
        let (query, body) = expect(&mut handle, Method::PATCH, STATUS_PATH, reply).await;
        assert_eq!(query, "&force=true&fieldManager=linx-operator");
        let [r, rc, st] = ready(NO_POD);
        assert_eq!(
            body,
            json!({
                "apiVersion": "netfilter.linx.dev/v1alpha1",
                "kind": "FirewallRuleset",
                "status": {
                    "observedGeneration": 3,
                    "conditions": [
                        cond("Valid", "True", "Valid", VALID_MSG),
                        cond("Conflicted", "False", "NoConflict", NO_CONFLICT),
                        r, rc, st,
                    ],
                    "matchedPods": 0, "appliedPods": 0, "failedPods": 0,
                }
            })
        );
        expect_no_more(&mut handle).await;
    });
    reconcile(Arc::new(obj), ctx).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn the_status_counts_what_each_source_resolved_to() {
    let (client, mut handle) = mock();
    let mut spec = valid_spec();
    spec["tables"][0]["sets"] = json!([
        {"name": "api", "type": "ipv4_addr", "source": {"pods": [{"podSelector": {"matchLabels": {"app": "api"}}}]}},
        {"name": "dns", "type": "ipv4_addr . inet_service", "source": {"services": [{"name": "dns"}]}},
    ]);
    let obj = ruleset("fw", "2025-01-01T00:00:00Z", spec);
    let chunk = |set: &str, uid: &str, ns: &str, chunk: u32, chunks: u32, elements: &[&str]| {
        serde_json::from_value::<FirewallAddressSet>(json!({
            "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallAddressSet",
            "metadata": {"name": format!("fw-{set}-{chunk}"), "namespace": ns},
            "spec": {"ruleset": "fw", "rulesetUid": uid, "family": "inet", "table": "fw",
                     "set": set, "chunk": chunk, "chunks": chunks, "elements": elements}
        }))
        .unwrap()
    };
    let published = vec![
        chunk("api", "uid-fw", "web", 0, 2, &["10.0.0.1", "10.0.0.3"]),
        chunk("api", "uid-fw", "web", 1, 2, &["10.0.0.2"]),
        // Another ruleset's (a deleted one of the same name): not counted.
        chunk("dns", "uid-old", "web", 0, 1, &["10.96.0.10 . 53"]),
    ];
    let ctx = Arc::new(Context {
        address_sets: store(published),
        ..Arc::try_unwrap(context(client, vec![], vec![obj.clone()]))
            .ok()
            .unwrap()
    });
    let reply = serde_json::to_value(&obj).unwrap();
    let server = tokio::spawn(async move {
        expect_pods(&mut handle, json!([])).await;
        let (_, body) = expect(&mut handle, Method::PATCH, STATUS_PATH, reply).await;
        assert_eq!(
            body["status"]["addressSets"],
            json!([{"table": "inet fw", "set": "api", "elements": 3},
                   {"table": "inet fw", "set": "dns", "elements": 0}])
        );
        expect_no_more(&mut handle).await;
    });
    reconcile(Arc::new(obj), ctx).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn invalid_resource_names_the_bad_rule_and_warns() {
    let (client, mut handle) = mock();
    let mut spec = valid_spec();
    spec["tables"][0]["chains"][0]["rules"] =
        json!(["ct state established accept", "tcp dport 22 jump sshd"]);
    let obj = ruleset("fw", "2025-01-01T00:00:00Z", spec);
    let ctx = context(client, vec![], vec![obj.clone()]);
    let reply = serde_json::to_value(&obj).unwrap();
    let message = "table inet fw, chain input, rule 1: jump to unknown chain \"sshd\" (spec.tables[0].chains[0].rules[1])";
    let server = tokio::spawn(async move {
        // Invalid: no pod list, nothing to wait for.
        let (_, body) = expect(&mut handle, Method::PATCH, STATUS_PATH, reply).await;
        assert_eq!(
            body["status"]["conditions"],
            json!([
                cond("Valid", "False", "Invalid", message),
                cond("Conflicted", "False", "NoConflict", NO_CONFLICT),
                cond(
                    "Ready",
                    "False",
                    "Invalid",
                    &format!("generation 3 is not in force: {message}")
                ),
                cond(
                    "Reconciling",
                    "False",
                    "Stalled",
                    "not progressing: see the Stalled condition"
                ),
                cond("Stalled", "True", "Invalid", message),
            ])
        );
        let (_, event) = expect(&mut handle, Method::POST, EVENTS_PATH, json!({})).await;
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "Invalid");
        assert_eq!(event["note"], message);
        assert_eq!(event["action"], "Reconcile");
        assert_eq!(event["regarding"]["kind"], "FirewallRuleset");
        assert_eq!(event["regarding"]["name"], "fw");
        assert_eq!(event["reportingController"], "linx-operator");
        expect_no_more(&mut handle).await;
    });
    reconcile(Arc::new(obj), ctx).await.unwrap();
    server.await.unwrap();
}

fn report(
    node: &str,
    generation: i64,
    matched: i32,
    applied: i32,
    failed: i32,
    failures: Vec<PodFailure>,
) -> FirewallNodeReport {
    FirewallNodeReport::for_node(
        node,
        vec![
            RulesetReport {
                namespace: "web".into(),
                name: "fw".into(),
                uid: "uid-fw".into(),
                generation,
                matched_pods: matched,
                applied_pods: applied,
                failed_pods: failed,
                enforced_generation: None,
                message: None,
                failures,
                ..Default::default()
            },
            // Same name, earlier incarnation: never counted.
            RulesetReport {
                namespace: "web".into(),
                name: "fw".into(),
                uid: "uid-old".into(),
                generation: 9,
                matched_pods: 100,
                applied_pods: 100,
                failed_pods: 0,
                enforced_generation: None,
                message: None,
                failures: vec![],
                ..Default::default()
            },
        ],
    )
}

#[tokio::test]
async fn agent_reports_are_aggregated_into_counts_and_applied() {
    let (client, mut handle) = mock();
    let obj = ruleset("fw", "2025-01-01T00:00:00Z", valid_spec());
    let failure = PodFailure {
        node: String::new(),
        pod: "web-2".into(),
        message: "netlink: EPERM".into(),
    };
    let reports = vec![
        report("node-a", 3, 2, 2, 0, vec![]),
        report("node-b", 3, 2, 1, 1, vec![failure]),
        // node-c still runs generation 2: its pods count as matched, not applied.
        report("node-c", 2, 1, 1, 0, vec![]),
    ];
    let ctx = context(client, reports, vec![obj.clone()]);
    let reply = serde_json::to_value(&obj).unwrap();
    let server = tokio::spawn(async move {
        let (_, body) = expect(&mut handle, Method::PATCH, STATUS_PATH, reply).await;
        let status = &body["status"];
        assert_eq!(
            (
                &status["matchedPods"],
                &status["appliedPods"],
                &status["failedPods"]
            ),
            (&json!(5), &json!(3), &json!(1))
        );
        assert_eq!(
            status["conditions"][1],
            cond(
                "Applied",
                "False",
                "ApplyFailed",
                "1 of 5 pods failed to apply generation 3; first: node-b/web-2: netlink: EPERM"
            )
        );
        assert_eq!(
            status["failures"],
            json!([{"node": "node-b", "pod": "web-2", "message": "netlink: EPERM"}])
        );
        let (_, event) = expect(&mut handle, Method::POST, EVENTS_PATH, json!({})).await;
        assert_eq!(
            (&event["type"], &event["reason"]),
            (&json!("Warning"), &json!("ApplyFailed"))
        );
        expect_no_more(&mut handle).await;
    });
    reconcile(Arc::new(obj), ctx).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn all_pods_applied_sets_applied_true() {
    let (client, mut handle) = mock();
    let obj = ruleset("fw", "2025-01-01T00:00:00Z", valid_spec());
    let ctx = context(
        client,
        vec![
            report("node-a", 3, 2, 2, 0, vec![]),
            report("node-b", 3, 1, 1, 0, vec![]),
        ],
        vec![obj.clone()],
    );
    let reply = serde_json::to_value(&obj).unwrap();
    let server = tokio::spawn(async move {
        let (_, body) = expect(&mut handle, Method::PATCH, STATUS_PATH, reply).await;
        assert_eq!(
            body["status"]["conditions"][1],
            cond(
                "Applied",
                "True",
                "Applied",
                "all 3 selected pods run generation 3"
            )
        );
        assert_eq!(
            body["status"]["conditions"].as_array().unwrap()[3..],
            ready("all 3 selected pods run generation 3")
        );
        let (_, event) = expect(&mut handle, Method::POST, EVENTS_PATH, json!({})).await;
        assert_eq!(
            (&event["type"], &event["reason"]),
            (&json!("Normal"), &json!("Applied"))
        );
        expect_no_more(&mut handle).await;
    });
    reconcile(Arc::new(obj), ctx).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn unchanged_status_is_not_written() {
    let (client, mut handle) = mock();
    let mut obj = ruleset("fw", "2025-01-01T00:00:00Z", valid_spec());
    let conditions: Vec<Value> = [
        cond("Valid", "True", "Valid", VALID_MSG),
        cond("Conflicted", "False", "NoConflict", NO_CONFLICT),
    ]
    .into_iter()
    .chain(ready(NO_POD))
    .collect();
    obj.status = Some(
        serde_json::from_value(json!({
            "observedGeneration": 3,
            "conditions": conditions,
            "matchedPods": 0, "appliedPods": 0, "failedPods": 0,
        }))
        .unwrap(),
    );
    let ctx = context(client, vec![], vec![obj.clone()]);
    let server = tokio::spawn(async move {
        expect_pods(&mut handle, json!([])).await;
        expect_no_more(&mut handle).await
    });
    reconcile(Arc::new(obj), ctx).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn table_conflict_is_reported_on_the_younger_resource() {
    let (client, mut handle) = mock();
    let older = ruleset(
        "aaa-base",
        "2024-06-01T00:00:00Z",
        json!({"tables": [{"name": "fw", "family": "inet"}]}),
    );
    let obj = ruleset("fw", "2025-01-01T00:00:00Z", valid_spec());
    let ctx = context(client, vec![], vec![older, obj.clone()]);
    let reply = serde_json::to_value(&obj).unwrap();
    let server = tokio::spawn(async move {
        expect_pods(&mut handle, json!([])).await;
        let (_, body) = expect(&mut handle, Method::PATCH, STATUS_PATH, reply).await;
        assert_eq!(
            body["status"]["conditions"][4],
            cond(
                "Stalled",
                "True",
                "TableLost",
                "table inet fw is owned by aaa-base (older); not applied from this resource"
            )
        );
        assert_eq!(
            body["status"]["conditions"][1],
            cond(
                "Conflicted",
                "True",
                "TableLost",
                "table inet fw is owned by aaa-base (older); not applied from this resource"
            )
        );
        assert_eq!(
            body["status"]["conflicts"],
            json!([{"table": "inet fw", "other": "aaa-base", "owned": false}])
        );
        let (_, event) = expect(&mut handle, Method::POST, EVENTS_PATH, json!({})).await;
        assert_eq!(
            (&event["type"], &event["reason"]),
            (&json!("Warning"), &json!("TableLost"))
        );
        expect_no_more(&mut handle).await;
    });
    reconcile(Arc::new(obj), ctx).await.unwrap();
    server.await.unwrap();
}

/// Pods selected but no agent has reported: Reconciling, not Ready (what
/// `kubectl wait --for=condition=Ready` waits through). Host-network pods
/// and finished pods are never acted on, so they do not count.
#[tokio::test]
async fn selected_pods_without_reports_are_reconciling() {
    let (client, mut handle) = mock();
    let obj = ruleset("fw", "2025-01-01T00:00:00Z", valid_spec());
    let ctx = context(client.clone(), vec![], vec![obj.clone()]);
    let reply = serde_json::to_value(&obj).unwrap();
    let pod = |name: &str, host: bool, phase: &str| {
        json!({"metadata": {"name": name, "namespace": "web"},
               "spec": {"hostNetwork": host, "containers": []}, "status": {"phase": phase}})
    };
    let server = tokio::spawn(async move {
        expect_pods(
            &mut handle,
            json!([
                pod("a", true, "Running"),
                pod("b", false, "Succeeded"),
                pod("c", false, "Pending")
            ]),
        )
        .await;
        let (_, body) = expect(&mut handle, Method::PATCH, STATUS_PATH, reply).await;
        let waiting = "no agent has reported generation 3 yet";
        assert_eq!(
            body["status"]["conditions"].as_array().unwrap()[2..],
            [
                cond("Ready", "False", "WaitingForAgents", waiting),
                cond("Reconciling", "True", "WaitingForAgents", waiting),
                cond(
                    "Stalled",
                    "False",
                    "Progressing",
                    "agents are applying the current generation"
                ),
            ]
        );
        expect_no_more(&mut handle).await;
    });
    reconcile(Arc::new(obj), ctx).await.unwrap();
    server.await.unwrap();
    // Only host-network and finished pods: nothing to wait for.
    let (client, mut handle) = mock();
    let obj = ruleset("fw", "2025-01-01T00:00:00Z", valid_spec());
    let ctx = context(client, vec![], vec![obj.clone()]);
    let reply = serde_json::to_value(&obj).unwrap();
    let server = tokio::spawn(async move {
        expect_pods(
            &mut handle,
            json!([pod("a", true, "Running"), pod("b", false, "Failed")]),
        )
        .await;
        let (_, body) = expect(&mut handle, Method::PATCH, STATUS_PATH, reply).await;
        assert_eq!(body["status"]["conditions"][2], ready(NO_POD)[0]);
        expect_no_more(&mut handle).await;
    });
    reconcile(Arc::new(obj), ctx).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn nothing_is_written_before_the_reports_are_listed() {
    let (client, mut handle) = mock();
    let obj = ruleset("fw", "2025-01-01T00:00:00Z", valid_spec());
    // A writer still alive and never fed Init/InitDone: the list is pending.
    let (reports, _writer) = reflector::store::<FirewallNodeReport>();
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), "linx-operator".into()),
        client,
        metrics: Metrics::default(),
        reports,
        rulesets: store(vec![obj.clone()]),
        address_sets: store(Vec::new()),
        clock: fixed_clock,
    });
    let server = tokio::spawn(async move { expect_no_more(&mut handle).await });
    let action = reconcile(Arc::new(obj), ctx).await.unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(Duration::from_secs(2))
    );
    server.await.unwrap();
}
