//! The certificate manager against a small in-memory API (tower-test
//! mock) holding the Secret and the ValidatingWebhookConfiguration: it
//! creates and stores the CA and serving certificate, publishes
//! `caBundle`, rotates the certificate and then the CA; the TLS server
//! keeps running and serves each new certificate from the next handshake
//! (no restart). A real TLS client verifying against the published bundle
//! succeeds before and after every rotation, and one trusting only a
//! retired CA fails: real handshakes on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::{Api, Client};
use linx_operator::certs::{CertConfig, CertManager, CertStore, Lifetimes, Material};
use linx_operator::http::{serve_tls, Routes};
use linx_operator::webhook::{Webhook, PATH};
use linx_operator::Metrics;
use prometheus_client::registry::Registry;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "linx-system";
const SECRET: &str = "linx-operator-webhook-tls";
const VWC: &str = "linx-operator";
const SECRET_PATH: &str = "/api/v1/namespaces/linx-system/secrets/linx-operator-webhook-tls";
const SECRETS_PATH: &str = "/api/v1/namespaces/linx-system/secrets";
const VWC_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/linx-operator";

/// The two objects the manager touches, and the requests it sent.
#[derive(Default)]
struct Objects {
    secret: Option<Value>,
    vwc: Value,
    rv: u64,
    log: Vec<String>,
}

fn not_found() -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "reason": "NotFound", "code": 404, "message": "not found"});
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn ok(v: &Value) -> Response<Body> {
    Response::builder()
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

/// Serves GET/POST/PUT of the Secret and GET/PUT of the configuration,
/// with resourceVersion checks, until the client is dropped.
fn api(objects: Arc<Mutex<Objects>>) -> Client {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (method, path) = (req.method().clone(), req.uri().path().to_string());
            let body = req.into_body().collect_bytes().await.unwrap();
            let mut o = objects.lock().unwrap();
            o.log.push(format!("{method} {path}"));
            let stored = |o: &mut Objects, mut v: Value| {
                o.rv += 1;
                v["metadata"]["resourceVersion"] = json!(o.rv.to_string());
                v
            };
            let resp = match (method, path.as_str()) {
                (Method::GET, SECRET_PATH) => match &o.secret {
                    Some(s) => ok(s),
                    None => not_found(),
                },
                (Method::POST, SECRETS_PATH) => {
                    let v = stored(&mut o, serde_json::from_slice(&body).unwrap());
                    o.secret = Some(v.clone());
                    ok(&v)
                }
                (Method::PUT, SECRET_PATH) => {
                    let v: Value = serde_json::from_slice(&body).unwrap();
                    let current = o.secret.as_ref().unwrap()["metadata"]["resourceVersion"].clone();
                    assert_eq!(
                        v["metadata"]["resourceVersion"], current,
                        "compare-and-swap"
                    );
                    let v = stored(&mut o, v);
                    o.secret = Some(v.clone());
                    ok(&v)
                }
                (Method::GET, VWC_PATH) => ok(&o.vwc),
                (Method::PUT, VWC_PATH) => {
                    let v = stored(&mut o, serde_json::from_slice(&body).unwrap());
                    o.vwc = v.clone();
                    ok(&v)
                }
                (m, p) => panic!("unexpected request {m} {p}"),
            };
            send.send_response(resp);
        }
    });
    Client::new(svc, NS)
}

fn manager(client: &Client, life: Lifetimes) -> CertManager {
    CertManager {
        secrets: Api::namespaced(client.clone(), NS),
        configurations: Api::all(client.clone()),
        config: CertConfig {
            secret: SECRET.into(),
            webhook_configuration: VWC.into(),
            names: vec!["localhost".into(), "127.0.0.1".into()],
        },
        namespace: NS.into(),
        lifetimes: life,
    }
}

/// What every replica does when the Secret changes: load it.
fn reload(store: &CertStore, objects: &Mutex<Objects>) -> Material {
    let v = objects.lock().unwrap().secret.clone().unwrap();
    let s: Secret = serde_json::from_value(v).unwrap();
    let data = s.data.as_ref().unwrap();
    store.load(&data["tls.crt"].0, &data["tls.key"].0).unwrap();
    Material::from_secret(&s).unwrap()
}

/// The caBundle the configuration publishes (PEM).
fn published(objects: &Mutex<Objects>) -> Vec<u8> {
    let v = objects.lock().unwrap().vwc.clone();
    let b64 = v["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .unwrap()
        .to_string();
    let vwc: k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration =
        serde_json::from_value(json!({"metadata": {"name": "x"},
            "webhooks": [{"name": "w", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                          "clientConfig": {"caBundle": b64}}]}))
        .unwrap();
    vwc.webhooks.unwrap()[0]
        .client_config
        .ca_bundle
        .clone()
        .unwrap()
        .0
}

fn take_log(objects: &Mutex<Objects>) -> Vec<String> {
    std::mem::take(&mut objects.lock().unwrap().log)
}

/// Posts a valid AdmissionReview over TLS, trusting only `bundle`;
/// returns the certificate the server presented.
async fn admit_over_tls(
    addr: std::net::SocketAddr,
    bundle: &[u8],
) -> Result<CertificateDer<'static>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(bundle) {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let peer = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u1", "kind": {"group": "netfilter.linx.dev", "version": "v1alpha1", "kind": "FirewallRuleset"},
            "resource": {"group": "netfilter.linx.dev", "version": "v1alpha1", "resource": "firewallrulesets"},
            "name": "web", "namespace": "shop", "operation": "CREATE", "userInfo": {},
            "object": {"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"podSelector": {}, "nft": "table inet fw { chain c { } }"}},
            "dryRun": false}});
    let body = serde_json::to_vec(&review).unwrap();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body).await.unwrap();
    let mut out = String::new();
    let _ = tls.read_to_string(&mut out).await;
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(out.contains("\"allowed\":true"), "{out}");
    Ok(peer.into_owned())
}

#[tokio::test]
async fn certificates_are_created_stored_reloaded_and_rotated() {
    let objects = Arc::new(Mutex::new(Objects {
        vwc: json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": VWC, "resourceVersion": "0"},
            "webhooks": [{"name": "validate.netfilter.linx.dev", "admissionReviewVersions": ["v1"],
                          "sideEffects": "None", "clientConfig": {"url": "https://localhost/validate-firewallruleset"}}]}),
        ..Default::default()
    }));
    let client = api(objects.clone());
    // Short lives, backdated a day: every certificate made below is valid
    // now, as real handshakes check.
    let life = Lifetimes {
        ca: 7200,
        ca_renew_before: 2400,
        cert: 1200,
        cert_renew_before: 400,
        backdate: 86_400,
    };
    let m = manager(&client, life);
    let t = jiff::Timestamp::now().as_second();

    // The server runs throughout; only the store's content changes.
    let store = Arc::new(CertStore::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = Arc::new(Routes {
        registry: Arc::new(Registry::default()),
        webhook: Some(Arc::new(Webhook {
            client: None,
            cluster_budget: Duration::from_millis(100),
            metrics: Metrics::default(),
        })),
        certs: Some(store.clone()),
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(store.server_config().unwrap());
    let server = tokio::spawn(serve_tls(listener, acceptor, routes));

    // 1. Created: stored, then published.
    let first = m.step(t).await.unwrap();
    assert_eq!(
        take_log(&objects),
        [
            format!("GET {SECRET_PATH}"),
            format!("GET {VWC_PATH}"),
            format!("POST {SECRETS_PATH}"),
            format!("PUT {VWC_PATH}"),
        ]
    );
    assert!(!store.ready());
    assert_eq!(reload(&store, &objects), first);
    assert!(store.ready());
    let bundle1 = published(&objects);
    assert_eq!(bundle1, first.bundle().into_bytes());
    let cert1 = admit_over_tls(addr, &bundle1).await.unwrap();

    // Nothing due: reads only.
    assert_eq!(m.step(t + 60).await.unwrap(), first);
    assert_eq!(
        take_log(&objects),
        [format!("GET {SECRET_PATH}"), format!("GET {VWC_PATH}")]
    );

    // 2. The certificate nears its end: a new one from the same CA; the
    // bundle stays; the running server serves it from the next handshake.
    let second = m.step(t + 900).await.unwrap();
    assert_eq!(
        take_log(&objects),
        [
            format!("GET {SECRET_PATH}"),
            format!("GET {VWC_PATH}"),
            format!("PUT {SECRET_PATH}")
        ]
    );
    assert_eq!(second.ca_pem, first.ca_pem);
    assert_ne!(second.cert_pem, first.cert_pem);
    reload(&store, &objects);
    assert_eq!(published(&objects), bundle1);
    let cert2 = admit_over_tls(addr, &bundle1).await.unwrap();
    assert_ne!(
        cert2, cert1,
        "the new certificate is served without restart"
    );

    // 3. The CA nears its end: a new CA joins the bundle first, the
    // certificate in use stays (issued by the old CA, still trusted).
    let third = m.step(t + 5000).await.unwrap();
    assert_eq!(
        take_log(&objects),
        [
            format!("GET {SECRET_PATH}"),
            format!("GET {VWC_PATH}"),
            format!("PUT {SECRET_PATH}"),
            format!("PUT {VWC_PATH}"),
        ]
    );
    assert_eq!(third.cert_pem, second.cert_pem);
    assert_eq!(third.previous_ca.as_ref().unwrap().0, first.ca_pem);
    let bundle2 = published(&objects);
    assert_eq!(bundle2, third.bundle().into_bytes());
    reload(&store, &objects);
    assert_eq!(admit_over_tls(addr, &bundle2).await.unwrap(), cert2);

    // 4. The bundle is published: a certificate from the new CA.
    let fourth = m.step(t + 5000).await.unwrap();
    assert_eq!(fourth.cert_issuer, third.ca_name);
    reload(&store, &objects);
    let cert4 = admit_over_tls(addr, &bundle2).await.unwrap();
    assert_ne!(cert4, cert2);
    // A client trusting only the retired CA is refused: verification is real.
    let refused = admit_over_tls(addr, first.ca_pem.as_bytes()).await;
    assert!(refused.unwrap_err().contains("invalid peer certificate"));
    take_log(&objects);

    // 5. Later: the certificate is renewed, then the expired CA leaves the bundle.
    let fifth = m.step(t + 7300).await.unwrap();
    assert_eq!(fifth.cert_issuer, fourth.cert_issuer);
    assert_ne!(fifth.cert_pem, fourth.cert_pem);
    let sixth = m.step(t + 7300).await.unwrap();
    assert_eq!(sixth.previous_ca, None);
    assert_eq!(published(&objects), sixth.ca_pem.clone().into_bytes());
    reload(&store, &objects);
    admit_over_tls(addr, sixth.ca_pem.as_bytes()).await.unwrap();
    server.abort();
}

/// The planner's order: trust first, then use; anything unreadable is made anew.
#[test]
fn plan_never_issues_from_a_ca_clients_do_not_trust_yet() {
    use linx_operator::certs::{plan, Step};
    let life = Lifetimes::DEFAULT;
    let names = vec!["a.b.svc".to_string()];
    let m = Material::apply(None, Step::Create, &names, 1_000_000, &life).unwrap();
    assert_eq!(plan(Some(&m), &names, 1_000_000, false, &life), None);
    // Names changed: a new certificate (the CA is already trusted).
    let more = vec!["a.b.svc".to_string(), "10.0.0.1".to_string()];
    assert_eq!(
        plan(Some(&m), &more, 1_000_000, false, &life),
        Some(Step::Reissue)
    );
    // A rotated CA: no certificate from it until the bundle is published.
    let later = m.ca_not_after - 100 * 86_400;
    assert_eq!(
        plan(Some(&m), &names, later, true, &life),
        Some(Step::RotateCa)
    );
    let rotated = Material::apply(Some(&m), Step::RotateCa, &names, later, &life).unwrap();
    assert_eq!(plan(Some(&rotated), &names, later, false, &life), None);
    assert_eq!(
        plan(Some(&rotated), &names, later, true, &life),
        Some(Step::Reissue)
    );
    // A Secret not ours: made anew.
    assert_eq!(plan(None, &names, later, true, &life), Some(Step::Create));
    let s = rotated.to_secret("s", "ns");
    assert_eq!(Material::from_secret(&s), Some(rotated));
    let mut foreign = s;
    foreign.metadata.annotations = None;
    assert_eq!(Material::from_secret(&foreign), None);
}
