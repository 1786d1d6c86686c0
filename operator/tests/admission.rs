//! The admission handler: AdmissionReviews in, the operator's verdict out.
//! Every bad resource of `crds/tests/bad` is refused with its exact
//! message; valid ones are allowed with warnings, including those asked of
//! the API server (a tower-test mock asserting the exact requests);
//! malformed reviews are a 400 over HTTP, never a panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::Client;
use linx_operator::http::{respond, Request as HttpRequest, Routes};
use linx_operator::webhook::{Webhook, PATH};
use linx_operator::Metrics;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn webhook(client: Option<Client>) -> Webhook {
    Webhook {
        client,
        cluster_budget: Duration::from_millis(500),
        metrics: Metrics::default(),
    }
}

fn review(operation: &str, object: Value, dry_run: bool) -> Vec<u8> {
    let name = object["metadata"]["name"].clone();
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4",
            "kind": {"group": "netfilter.linx.dev", "version": "v1alpha1", "kind": "FirewallRuleset"},
            "resource": {"group": "netfilter.linx.dev", "version": "v1alpha1", "resource": "firewallrulesets"},
            "name": name,
            "namespace": "web",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": if operation == "DELETE" { Value::Null } else { object.clone() },
            "oldObject": if operation == "CREATE" { Value::Null } else { object },
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
    }))
    .unwrap()
}

fn resource(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
           "metadata": {"name": name, "namespace": "web"}, "spec": spec})
}

/// The response part of the answer, checked to be a v1 AdmissionReview
/// answering the request's uid.
async fn answer(w: &Webhook, body: Vec<u8>) -> Value {
    let out: Value = serde_json::from_slice(&w.review(&body).await.unwrap()).unwrap();
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    let r = out["response"].clone();
    assert_eq!(r["uid"], "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4");
    r
}

fn bad_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/tests/bad");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn every_bad_resource_is_refused_with_its_exact_message() {
    let w = webhook(None);
    let files = bad_files();
    assert!(files.len() >= 50, "{}", files.len());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expect = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# expect: ")
            .unwrap();
        let obj: Value = serde_yaml::from_str(&text).unwrap();
        for dry_run in [false, true] {
            let r = answer(&w, review("CREATE", obj.clone(), dry_run)).await;
            assert_eq!(r["allowed"], false, "{}", f.display());
            let status = &r["status"];
            assert_eq!(
                (&status["code"], &status["reason"], &status["status"]),
                (&json!(422), &json!("Invalid"), &json!("Failure"))
            );
            let message = status["message"].as_str().unwrap();
            let mut lines = message.lines();
            let head = lines.next().unwrap();
            assert_eq!(lines.next(), Some(expect), "{}", f.display());
            let causes = status["details"]["causes"].as_array().unwrap();
            assert_eq!(
                head,
                if causes.len() == 1 {
                    "1 error:".to_string()
                } else {
                    format!("{} errors:", causes.len())
                }
            );
            assert_eq!(causes[0]["message"], expect);
            assert!(
                expect.contains(causes[0]["field"].as_str().unwrap()),
                "{expect} names its field"
            );
        }
    }
}

/// Every error, not only the first: each rule's own, with line:column.
#[tokio::test]
async fn every_error_is_listed() {
    let w = webhook(None);
    let spec = json!({"podSelector": {}, "tables": [{"name": "fw", "family": "inet", "chains": [
        {"name": "input", "type": "filter", "hook": "input", "policy": "drop", "rules": [
            "ct state established,related accept",
            "tcp dport 22 acept",
            "tcp dport 80 accept",
            "udp dport 99999 accept",
            "jump nowhere"]}]}]});
    let r = answer(&w, review("UPDATE", resource("fw", spec), false)).await;
    assert_eq!(r["allowed"], false);
    assert_eq!(
        r["status"]["message"],
        "3 errors:\n\
         table inet fw, chain input, rule 1, 1:14: unknown statement 'acept'; did you mean 'accept'? (spec.tables[0].chains[0].rules[1])\n\
         table inet fw, chain input, rule 3, 1:11: value '99999' out of range for inet_service (16 bits) (spec.tables[0].chains[0].rules[3])\n\
         table inet fw, chain input, rule 4: jump to unknown chain \"nowhere\" (spec.tables[0].chains[0].rules[4])"
    );
    let fields: Vec<&str> = r["status"]["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.tables[0].chains[0].rules[1]",
            "spec.tables[0].chains[0].rules[3]",
            "spec.tables[0].chains[0].rules[4]"
        ]
    );
}

const WEB: &str = "table inet fw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport 80 accept\n\t\tdrop\n\t\ttcp dport 443 accept\n\t}\n}\n";

fn mock() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "web"), handle)
}

async fn expect(handle: &mut Handle, path: &str, reply: Value) -> String {
    let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("no request within 5s")
        .expect("service dropped");
    assert_eq!(req.method(), Method::GET);
    assert_eq!(req.uri().path(), path);
    let query = req.uri().query().unwrap_or_default().to_string();
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    query
}

/// A valid resource is allowed; the warnings name what is almost surely
/// wrong, in the compiled value and in the cluster.
#[tokio::test]
async fn valid_resource_is_allowed_with_warnings() {
    let (client, mut handle) = mock();
    let w = webhook(Some(client));
    let obj = resource(
        "web",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "nft": WEB}),
    );
    let older = json!({"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
        "metadata": {"name": "base", "namespace": "web", "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"podSelector": {}, "nft": "table inet fw {\n}\n"}});
    let server = tokio::spawn(async move {
        let q = expect(
            &mut handle,
            "/api/v1/namespaces/web/pods",
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}),
        )
        .await;
        assert_eq!(q, "&labelSelector=app%3Dweb&limit=100");
        expect(
            &mut handle,
            "/apis/netfilter.linx.dev/v1alpha1/namespaces/web/firewallrulesets",
            json!({"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRulesetList",
                   "metadata": {}, "items": [older]}),
        )
        .await;
    });
    let r = answer(&w, review("CREATE", obj, false)).await;
    server.await.unwrap();
    assert_eq!(r["allowed"], true);
    assert_eq!(
        r["warnings"],
        json!([
            "table inet fw, chain input: policy drop, and no rule accepts by conntrack state: replies to connections the pod opens are dropped too (add `ct state established,related accept`) (spec.nft)",
            "table inet fw, chain input, rule 2, 6:3: unreachable: rule 1 above matches every packet and ends its path (spec.nft)",
            "spec.podSelector matches no pod in namespace web yet: nothing is applied until one does",
            "table inet fw is already claimed by web/base (older): this resource's copy will not be applied",
        ])
    );
}

/// The verdict never waits on the cluster: an API server that does not
/// answer costs the budget and the cluster's warnings, nothing else.
#[tokio::test]
async fn a_silent_api_server_leaves_out_cluster_warnings_only() {
    let (client, _handle) = mock();
    let w = webhook(Some(client));
    let obj = resource("web", json!({"podSelector": {}, "nft": WEB}));
    let started = std::time::Instant::now();
    let r = answer(&w, review("CREATE", obj, true)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(r["allowed"], true);
    assert_eq!(r["warnings"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn deletes_are_allowed_unread() {
    let r = answer(
        &webhook(None),
        review("DELETE", resource("x", json!({"nft": "garbage {"})), false),
    )
    .await;
    assert_eq!(r["allowed"], true);
}

/// Not an AdmissionReview, no request, not JSON, a huge or chunked body:
/// a clear 4xx over HTTP; an object that is no FirewallRuleset: denied.
#[tokio::test]
async fn malformed_reviews_are_a_clear_400() {
    let routes = Routes {
        registry: Arc::new(Registry::default()),
        webhook: Some(Arc::new(webhook(None))),
        certs: None,
    };
    let post = |body: &[u8]| HttpRequest {
        method: "POST".into(),
        path: PATH.into(),
        body: body.to_vec(),
        close: false,
    };
    for (body, want) in [
        (&b"not json"[..], "malformed AdmissionReview: expected ident at line 1 column 2\n"),
        (b"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\"}", "malformed AdmissionReview: no request in the review\n"),
        (b"{\"request\": 7}", "malformed AdmissionReview: invalid type: integer `7`, expected struct AdmissionRequest at line 1 column 13\n"),
    ] {
        let resp = respond(&post(body), &routes).await;
        assert_eq!(resp.code, 400);
        assert_eq!(String::from_utf8(resp.body).unwrap(), want);
    }
    let get = HttpRequest {
        method: "GET".into(),
        path: PATH.into(),
        ..Default::default()
    };
    assert_eq!(respond(&get, &routes).await.code, 405);
    let w = webhook(None);
    let r = answer(
        &w,
        review(
            "CREATE",
            resource("x", json!({"tables": "not a list"})),
            false,
        ),
    )
    .await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("not a FirewallRuleset: invalid type: string \"not a list\""),
        "{r}"
    );
}
