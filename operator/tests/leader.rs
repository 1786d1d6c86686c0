//! Leader election against a mock API server: the exact Lease requests
//! for taking a free lease, waiting behind a live holder, losing a race,
//! and releasing on shutdown.

use std::time::Duration;

use http::{Method, Request, Response};
use k8s_openapi::api::coordination::v1::Lease;
use kube::client::Body;
use kube::{Api, Client};
use linx_operator::leader::{release, try_acquire, LeaseConfig};
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/linx-system/leases/linx-operator";
const COLLECTION: &str = "/apis/coordination.k8s.io/v1/namespaces/linx-system/leases";

fn mock() -> (Api<Lease>, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (
        Api::namespaced(Client::new(svc, "default"), "linx-system"),
        handle,
    )
}

fn cfg() -> LeaseConfig {
    LeaseConfig::new("linx-operator", "linx-system", "replica-a")
}

async fn expect(handle: &mut Handle, method: Method, path: &str, code: u16, reply: Value) -> Value {
    let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("no request within 5s")
        .expect("service dropped");
    assert_eq!((req.method(), req.uri().path()), (&method, path));
    let body = req.into_body().collect_bytes().await.unwrap();
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
}

fn conflict() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "changed"})
}

fn lease(holder: &str, renewed: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "linx-operator", "namespace": "linx-system", "resourceVersion": "7"},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed,
                    "acquireTime": renewed, "leaseTransitions": 2}})
}

#[tokio::test]
async fn a_missing_lease_is_created_for_us() {
    let (api, mut handle) = mock();
    let server = tokio::spawn(async move {
        expect(&mut handle, Method::GET, PATH, 404, not_found()).await;
        let body = expect(&mut handle, Method::POST, COLLECTION, 201, json!({})).await;
        assert_eq!(body["metadata"]["name"], "linx-operator");
        assert_eq!(body["spec"]["holderIdentity"], "replica-a");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
        assert!(body["spec"]["renewTime"].is_string());
    });
    assert!(try_acquire(&api, &cfg()).await.unwrap());
    server.await.unwrap();
}

#[tokio::test]
async fn a_live_holder_is_left_alone() {
    let (api, mut handle) = mock();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::GET,
            PATH,
            200,
            lease("replica-b", &now),
        )
        .await;
        // No write may follow.
        if let Ok(Some((req, _))) =
            tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
        {
            panic!("unexpected {} {}", req.method(), req.uri());
        }
    });
    assert!(!try_acquire(&api, &cfg()).await.unwrap());
    server.await.unwrap();
}

#[tokio::test]
async fn an_expired_lease_is_taken_with_compare_and_swap_and_a_lost_race_is_no_leadership() {
    let (api, mut handle) = mock();
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::GET,
            PATH,
            200,
            lease("replica-b", "2020-01-01T00:00:00Z"),
        )
        .await;
        let body = expect(&mut handle, Method::PUT, PATH, 409, conflict()).await;
        // The write carries the resourceVersion read, so a concurrent taker makes it fail.
        assert_eq!(body["metadata"]["resourceVersion"], "7");
        assert_eq!(body["spec"]["holderIdentity"], "replica-a");
        assert_eq!(body["spec"]["leaseTransitions"], 3);
    });
    assert!(!try_acquire(&api, &cfg()).await.unwrap());
    server.await.unwrap();
}

#[tokio::test]
async fn release_clears_only_our_own_hold() {
    let (api, mut handle) = mock();
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::GET,
            PATH,
            200,
            lease("replica-a", "2026-01-01T00:00:00Z"),
        )
        .await;
        let body = expect(&mut handle, Method::PUT, PATH, 200, json!({})).await;
        assert!(body["spec"].get("holderIdentity").is_none(), "{body}");
        expect(
            &mut handle,
            Method::GET,
            PATH,
            200,
            lease("replica-b", "2026-01-01T00:00:00Z"),
        )
        .await;
        if let Ok(Some((req, _))) =
            tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
        {
            panic!("unexpected {} {}", req.method(), req.uri());
        }
    });
    release(&api, &cfg()).await.unwrap();
    release(&api, &cfg()).await.unwrap();
    server.await.unwrap();
}
