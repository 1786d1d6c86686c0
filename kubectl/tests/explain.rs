//! `kubectl linx explain pod/NAME` against a mock API server (tower-test):
//! the exact requests it makes, in order, and the exact text it prints —
//! the rulesets selecting the pod, the tables each owns there, what the
//! node's agent reports, and the sets fed by selectors (published as
//! FirewallAddressSets, in any namespace) that hold the pod's address.

use http::{Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const LINX: &str = "/apis/netfilter.linx.dev/v1alpha1";

fn mock() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

/// Answers the next request, which must be `GET uri`.
async fn answer(handle: &mut Handle, uri: &str, status: StatusCode, body: Value) {
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!(
        (req.method().as_str(), req.uri().to_string()),
        ("GET", uri.to_owned())
    );
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": format!("{kind}List"),
           "metadata": {"resourceVersion": "1"}, "items": items})
}

fn forbidden() -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
           "message": "forbidden", "reason": "Forbidden", "code": 403})
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "api-0", "namespace": "app", "labels": {"app": "api"}},
           "spec": {"nodeName": "node-a", "containers": [{"name": "c"}]},
           "status": {"podIP": "10.77.1.2", "podIPs": [{"ip": "10.77.1.2"}]}})
}

fn ruleset(name: &str, selector: Value, nft: &str) -> Value {
    json!({"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
           "metadata": {"name": name, "namespace": "app", "uid": format!("u-{name}"), "generation": 1,
                        "creationTimestamp": "2026-12-01T00:00:00Z"},
           "spec": {"podSelector": selector, "nft": nft}})
}

fn report() -> Value {
    json!({"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallNodeReport",
           "metadata": {"name": "node-a"},
           "spec": {"nodeName": "node-a", "rulesets": [
               {"namespace": "app", "name": "mesh", "uid": "u-mesh", "generation": 1,
                "matchedPods": 1, "appliedPods": 1, "failedPods": 0,
                "pods": [{"pod": "api-0", "state": "Applied", "appliedGeneration": 1}]}]}})
}

/// Chunk `chunk` of `chunks` of set `set` of ruleset `ns/ruleset`.
fn chunk(ns: &str, ruleset: &str, set: &str, chunk: u32, chunks: u32, elements: &[&str]) -> Value {
    let uid = if ruleset == "web" {
        "u-forged".to_owned()
    } else {
        format!("u-{ruleset}")
    };
    json!({"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallAddressSet",
           "metadata": {"name": format!("{ruleset}-{set}-{chunk}"), "namespace": ns},
           "spec": {"ruleset": ruleset, "rulesetUid": uid, "family": "inet",
                    "table": "linx", "set": set, "chunk": chunk, "chunks": chunks,
                    "elements": elements}})
}

/// The address sets of the cluster: the pod's address is in `db/db`'s
/// `api` (one of two chunks), in `db/db`'s `svc` as a concatenation, in
/// `app/mesh`'s `peers`; not in `db/other`'s `api`. No agent uses (and
/// explain does not show) `db/half`'s `api`, whose list is not whole
/// (chunk 1 of 2 missing), `db/gone`'s (its FirewallRuleset is deleted),
/// or `app/web`'s (its UID is not the resource's).
fn address_sets() -> Vec<Value> {
    vec![
        chunk("db", "db", "api", 0, 2, &["10.77.1.2", "10.77.3.9"]),
        chunk("db", "db", "api", 1, 2, &["10.77.2.2"]),
        chunk("db", "db", "svc", 0, 1, &["10.77.1.2 . 5432"]),
        chunk("db", "other", "api", 0, 1, &["10.77.1.20", "10.77.2.2"]),
        chunk("db", "half", "api", 0, 2, &["10.77.1.2"]),
        chunk("db", "gone", "api", 0, 1, &["10.77.1.2"]),
        chunk("app", "mesh", "peers", 0, 1, &["10.77.1.2"]),
        chunk("app", "web", "peers", 0, 1, &["10.77.1.2"]),
    ]
}

/// `GET` of FirewallRuleset `ns/name` as it is now (`None`: deleted).
async fn answer_ruleset(handle: &mut Handle, ns: &str, name: &str, now: Option<Value>) {
    let uri = format!("{LINX}/namespaces/{ns}/firewallrulesets/{name}");
    match now {
        Some(r) => answer(handle, &uri, StatusCode::OK, r).await,
        None => answer(handle, &uri, StatusCode::NOT_FOUND, not_found()).await,
    }
}

fn not_found() -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
           "message": "not found", "reason": "NotFound", "code": 404})
}

/// The rulesets of `app` the published lists name, as they are now.
async fn answer_app_rulesets(handle: &mut Handle) {
    answer_ruleset(handle, "app", "mesh", Some(mesh())).await;
    answer_ruleset(handle, "app", "web", Some(web())).await;
}

fn mesh() -> Value {
    ruleset(
        "mesh",
        json!({}),
        "table inet mesh {\n\tset peers {\n\t\ttype ipv4_addr\n\t}\n}\n",
    )
}

fn web() -> Value {
    ruleset(
        "web",
        json!({"matchLabels": {"app": "web"}}),
        "table inet web {\n}\n",
    )
}

/// `explain pod/api-0` of namespace `app`, running against the mock.
fn explain_api_0() -> (
    tokio::task::JoinHandle<Result<String, kubectl_linx::Error>>,
    Handle,
) {
    let (client, handle) = mock();
    let explained =
        tokio::spawn(async move { kubectl_linx::explain_report(&client, "app", "api-0").await });
    (explained, handle)
}

/// Answers the cluster-wide list of address sets.
async fn answer_cluster_address_sets(handle: &mut Handle, status: StatusCode, body: Value) {
    answer(
        handle,
        &format!("{LINX}/firewalladdresssets?"),
        status,
        body,
    )
    .await;
}

/// The requests up to the address sets: the pod, its namespace's
/// rulesets (`mesh` selects every pod, `web` another app), its node's report.
async fn serve_pod_rulesets_report(handle: &mut Handle) {
    answer(
        handle,
        "/api/v1/namespaces/app/pods/api-0",
        StatusCode::OK,
        pod(),
    )
    .await;
    let rulesets = vec![mesh(), web()];
    answer(
        handle,
        &format!("{LINX}/namespaces/app/firewallrulesets?"),
        StatusCode::OK,
        list("FirewallRuleset", rulesets),
    )
    .await;
    answer(
        handle,
        &format!("{LINX}/firewallnodereports/node-a"),
        StatusCode::OK,
        report(),
    )
    .await;
}

const HEAD: &str = "pod app/api-0 on node node-a
FirewallRulesets selecting it:
  mesh (generation 1)
    table inet mesh: owned
the agent on node node-a reports:
  mesh: Applied generation 1
";

#[tokio::test]
async fn explain_names_the_sets_holding_the_pods_address() {
    let (explained, mut handle) = explain_api_0();
    serve_pod_rulesets_report(&mut handle).await;
    answer_cluster_address_sets(
        &mut handle,
        StatusCode::OK,
        list("FirewallAddressSet", address_sets()),
    )
    .await;
    answer_app_rulesets(&mut handle).await;
    let mut db = ruleset("db", json!({}), "table inet linx {\n}\n");
    db["metadata"]["namespace"] = json!("db");
    answer_ruleset(&mut handle, "db", "db", Some(db)).await;
    answer_ruleset(&mut handle, "db", "gone", None).await;
    let text = explained.await.unwrap().unwrap();
    assert_eq!(
        text,
        format!(
            "{HEAD}its address 10.77.1.2 is in:
  set inet linx peers of FirewallRuleset app/mesh
  set inet linx api of FirewallRuleset db/db
  set inet linx svc of FirewallRuleset db/db as 10.77.1.2 . 5432
"
        )
    );
}

/// Without the right to read address sets cluster-wide, those of the
/// pod's namespace are searched, and the text says so.
#[tokio::test]
async fn explain_without_cluster_wide_rights_searches_the_pods_namespace() {
    let (explained, mut handle) = explain_api_0();
    serve_pod_rulesets_report(&mut handle).await;
    answer_cluster_address_sets(&mut handle, StatusCode::FORBIDDEN, forbidden()).await;
    let in_app: Vec<Value> = address_sets()
        .into_iter()
        .filter(|s| s["metadata"]["namespace"] == "app")
        .collect();
    answer(
        &mut handle,
        &format!("{LINX}/namespaces/app/firewalladdresssets?"),
        StatusCode::OK,
        list("FirewallAddressSet", in_app),
    )
    .await;
    answer_app_rulesets(&mut handle).await;
    let text = explained.await.unwrap().unwrap();
    assert_eq!(
        text,
        format!(
            "{HEAD}address sets of other namespaces are not readable with your rights (ClusterRole linx-report-reader): only those of app were searched
its address 10.77.1.2 is in:
  set inet linx peers of FirewallRuleset app/mesh
"
        )
    );
}

/// A pod with no address yet: no set is looked up.
#[tokio::test]
async fn explain_of_a_pod_without_an_address() {
    let (explained, mut handle) = explain_api_0();
    let mut p = pod();
    p["status"] = json!({});
    answer(
        &mut handle,
        "/api/v1/namespaces/app/pods/api-0",
        StatusCode::OK,
        p,
    )
    .await;
    answer(
        &mut handle,
        &format!("{LINX}/namespaces/app/firewallrulesets?"),
        StatusCode::OK,
        list("FirewallRuleset", vec![]),
    )
    .await;
    answer(
        &mut handle,
        &format!("{LINX}/firewallnodereports/node-a"),
        StatusCode::OK,
        report(),
    )
    .await;
    let text = explained.await.unwrap().unwrap();
    assert_eq!(
        text,
        "pod app/api-0 on node node-a
no FirewallRuleset of its namespace selects it: Linx leaves its firewall empty
no address yet: in no set fed by a selector
"
    );
}
