//! Validating admission webhooks for the fake API server, as a real one
//! calls them: every ValidatingWebhookConfiguration stored in the fake is
//! consulted on CREATE and UPDATE of the resources its rules name (and
//! whose namespace its `namespaceSelector` admits, by the
//! `kubernetes.io/metadata.name` label), through `clientConfig.url` only,
//! over HTTPS verified against `clientConfig.caBundle`, within
//! `timeoutSeconds`. A refusal becomes the API's answer (`admission
//! webhook "NAME" denied the request: ...`, the webhook's code, reason and
//! details); an unreachable webhook is skipped under `failurePolicy:
//! Ignore` and refuses the request under `Fail`; warnings become `Warning`
//! headers. (`clientConfig.service` is not routed: a fake has no Services.)

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingWebhook, ValidatingWebhookConfiguration,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The request being admitted.
pub(crate) struct Attempt<'a> {
    /// `apis/GROUP/VERSION/PLURAL` or `api/v1/PLURAL`.
    pub collection: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    /// `CREATE` or `UPDATE`.
    pub operation: &'static str,
    pub object: &'a Value,
    pub old_object: Option<&'a Value>,
    pub dry_run: bool,
}

/// What the webhooks decided.
pub(crate) enum Verdict {
    Allowed {
        warnings: Vec<String>,
    },
    /// The API's answer: HTTP code and Status body.
    Refused {
        code: u16,
        status: Value,
    },
}

fn matches(w: &ValidatingWebhook, a: &Attempt<'_>) -> bool {
    let (group, version, resource) = match a.collection.split('/').collect::<Vec<_>>()[..] {
        ["api", v, r] => ("", v, r),
        ["apis", g, v, r] => (g, v, r),
        _ => return false,
    };
    let any = |list: &Option<Vec<String>>, want: &str| {
        list.iter().flatten().any(|x| x == "*" || x == want)
    };
    let by_rule = w.rules.iter().flatten().any(|r| {
        any(&r.api_groups, group)
            && any(&r.api_versions, version)
            && any(&r.operations, a.operation)
            && any(&r.resources, resource)
    });
    let labels = [("kubernetes.io/metadata.name", a.namespace)];
    let by_namespace = w.namespace_selector.as_ref().is_none_or(|sel| {
        let label = |k: &str| labels.iter().find(|(l, _)| *l == k).map(|(_, v)| *v);
        sel.match_labels
            .iter()
            .flatten()
            .all(|(k, v)| label(k) == Some(v.as_str()))
            && sel.match_expressions.iter().flatten().all(|e| {
                let have = label(&e.key);
                let values = e.values.as_deref().unwrap_or_default();
                match e.operator.as_str() {
                    "In" => have.is_some_and(|h| values.iter().any(|v| v == h)),
                    "NotIn" => have.is_none_or(|h| !values.iter().any(|v| v == h)),
                    "Exists" => have.is_some(),
                    _ => have.is_none(),
                }
            })
    });
    by_rule && (a.namespace.is_empty() || by_namespace)
}

/// Consults every matching webhook of `configurations`, in order.
pub(crate) async fn admit(configurations: Vec<Value>, a: &Attempt<'_>) -> Verdict {
    let mut warnings = Vec::new();
    for c in configurations {
        let Ok(vwc) = serde_json::from_value::<ValidatingWebhookConfiguration>(c) else {
            continue;
        };
        for w in vwc.webhooks.iter().flatten().filter(|w| matches(w, a)) {
            let timeout = Duration::from_secs(w.timeout_seconds.unwrap_or(10).clamp(1, 30) as u64);
            let answer = tokio::time::timeout(timeout, call(w, a)).await;
            let response = match answer {
                Ok(Ok(r)) => r,
                failure => {
                    let why = match failure {
                        Ok(Err(e)) => e,
                        _ => format!("timed out after {}s", timeout.as_secs()),
                    };
                    if w.failure_policy.as_deref() == Some("Ignore") {
                        continue;
                    }
                    let message = format!("failed calling webhook \"{}\": {why}", w.name);
                    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": message, "reason": "InternalError", "code": 500});
                    return Verdict::Refused { code: 500, status };
                }
            };
            if let Some(ws) = response["warnings"].as_array() {
                warnings.extend(ws.iter().filter_map(|w| w.as_str().map(String::from)));
            }
            if response["allowed"] != json!(true) {
                let result = &response["status"];
                let code = result["code"].as_u64().filter(|c| *c >= 400).unwrap_or(400) as u16;
                let mut status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure",
                    "message": format!("admission webhook \"{}\" denied the request: {}", w.name,
                        result["message"].as_str().unwrap_or("without explanation")),
                    "reason": result["reason"].clone(), "code": code});
                if !result["details"].is_null() {
                    status["details"] = result["details"].clone();
                }
                return Verdict::Refused { code, status };
            }
        }
    }
    Verdict::Allowed { warnings }
}

/// POSTs the AdmissionReview to the webhook's URL; its `response`.
async fn call(w: &ValidatingWebhook, a: &Attempt<'_>) -> Result<Value, String> {
    let url = w
        .client_config
        .url
        .as_deref()
        .ok_or("only clientConfig.url is routed by the fake")?;
    let rest = url
        .strip_prefix("https://")
        .ok_or("the URL must be https")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = match authority.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => authority,
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:443")
    };
    let mut roots = rustls::RootCertStore::empty();
    let bundle = w
        .client_config
        .ca_bundle
        .as_ref()
        .map(|b| b.0.clone())
        .unwrap_or_default();
    for c in CertificateDer::pem_slice_iter(&bundle) {
        roots
            .add(c.map_err(|e| format!("caBundle: {e}"))?)
            .map_err(|e| format!("caBundle: {e}"))?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("dial {addr}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (group, version, resource) = match a.collection.split('/').collect::<Vec<_>>()[..] {
        ["api", v, r] => ("", v, r),
        ["apis", g, v, r] => (g, v, r),
        _ => ("", "", ""),
    };
    let kind = a.object["kind"].clone();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": format!("fake-{}-{}", a.name, std::process::id()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": a.name, "namespace": a.namespace, "operation": a.operation,
            "userInfo": {"username": "fake-apiserver"},
            "object": a.object, "oldObject": a.old_object,
            "dryRun": a.dry_run,
        }
    });
    let body = serde_json::to_vec(&review).map_err(|e| e.to_string())?;
    let head = format!(
        "POST /{path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let (r, mut wr) = tokio::io::split(tls);
    wr.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    wr.write_all(&body).await.map_err(|e| e.to_string())?;
    wr.flush().await.map_err(|e| e.to_string())?;
    let mut r = BufReader::new(r);
    let mut status_line = String::new();
    r.read_line(&mut status_line)
        .await
        .map_err(|e| e.to_string())?;
    let mut length = None;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).await.map_err(|e| e.to_string())?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut out = vec![0; length.ok_or("no content-length")?];
    r.read_exact(&mut out).await.map_err(|e| e.to_string())?;
    if !status_line.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{}: {}",
            status_line.trim(),
            String::from_utf8_lossy(&out)
        ));
    }
    let v: Value = serde_json::from_slice(&out).map_err(|e| format!("answer: {e}"))?;
    Ok(v["response"].clone())
}
