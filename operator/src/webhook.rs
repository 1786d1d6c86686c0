//! The validating admission webhook for FirewallRulesets: the API server
//! asks before it stores a CREATE or UPDATE (also for `--dry-run=server`
//! and server-side apply, which reach admission the same way), and gets
//! the operator's own verdict ([`linx_crds::validate`], the code the
//! operator's status and every agent use): every error with its field,
//! table, chain, rule and line:column, or an allowance with warnings.
//!
//! Warnings that need the cluster (a selector matching no pod; a table
//! another resource already owns) are asked of the API server within
//! [`Webhook::cluster_budget`]; when it does not answer in time they are
//! left out, never the verdict.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::{StatusCause, StatusDetails};
use kube::core::{DynamicObject, Status};
use kube::{Client, ResourceExt};
use linx_crds::{validate, Diagnostic, FirewallRuleset, Validation};
use tracing::{debug, warn};

use crate::status::conflicts_of;
use crate::Metrics;

/// Where the API server posts AdmissionReviews (the webhook
/// configuration's `clientConfig.service.path` or URL path).
pub const PATH: &str = "/validate-firewallruleset";
/// The webhook's name in the ValidatingWebhookConfiguration; kubectl
/// prints it in front of every refusal.
pub const NAME: &str = "validate.netfilter.linx.dev";
/// Errors listed in one refusal message (all are in `details.causes`).
pub const MAX_LISTED: usize = 50;

/// A request the webhook cannot read: answered 400 with this text.
#[derive(Debug, thiserror::Error)]
#[error("malformed AdmissionReview: {0}")]
pub struct BadReview(String);

/// The admission handler and what it needs.
pub struct Webhook {
    /// For the warnings that need the cluster; `None` leaves them out.
    pub client: Option<Client>,
    /// How long those may take in all.
    pub cluster_budget: Duration,
    pub metrics: Metrics,
}

impl Webhook {
    /// Answers one AdmissionReview (the HTTP body) with another.
    pub async fn review(&self, body: &[u8]) -> Result<Vec<u8>, BadReview> {
        let started = Instant::now();
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_slice(body).map_err(|e| BadReview(e.to_string()))?;
        let req: AdmissionRequest<DynamicObject> = review
            .try_into()
            .map_err(|_| BadReview("no request in the review".into()))?;
        let response = self.admit(&req).await;
        let verdict = if response.allowed {
            "allowed"
        } else {
            "denied"
        };
        self.metrics.admission(verdict, started.elapsed());
        debug!(
            uid = %req.uid,
            name = %req.name,
            namespace = req.namespace.as_deref().unwrap_or_default(),
            verdict,
            "admission review"
        );
        serde_json::to_vec(&response.into_review()).map_err(|e| BadReview(e.to_string()))
    }

    async fn admit(&self, req: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let response = AdmissionResponse::from(req);
        if !matches!(req.operation, Operation::Create | Operation::Update) {
            return response;
        }
        let Some(obj) = &req.object else {
            return response.deny("the request carries no object");
        };
        let fr: FirewallRuleset =
            match serde_json::to_value(obj).and_then(serde_json::from_value::<FirewallRuleset>) {
                Ok(fr) => fr,
                Err(e) => return response.deny(format!("not a FirewallRuleset: {e}")),
            };
        let v = validate(&fr.spec);
        if !v.is_valid() {
            return deny(response, &fr, &v);
        }
        let mut warnings: Vec<String> = v.warnings.iter().map(|w| w.to_string()).collect();
        if let Some(client) = &self.client {
            let ns = req.namespace.clone().unwrap_or_default();
            let cluster = cluster_warnings(client, &ns, &fr);
            match tokio::time::timeout(self.cluster_budget, cluster).await {
                Ok(w) => warnings.extend(w),
                Err(_) => warn!(
                    namespace = %ns,
                    name = %fr.name_any(),
                    "cluster warnings left out: the API server did not answer in time"
                ),
            }
        }
        let mut response = response;
        response.warnings = (!warnings.is_empty()).then_some(warnings);
        response
    }
}

/// The refusal: every error in the message (one per line, as kubectl
/// prints it after "denied the request:") and in `details.causes`.
fn deny(response: AdmissionResponse, fr: &FirewallRuleset, v: &Validation) -> AdmissionResponse {
    let n = v.diagnostics.len();
    let mut message = if n == 1 {
        String::from("1 error:")
    } else {
        format!("{n} errors:")
    };
    for d in v.diagnostics.iter().take(MAX_LISTED) {
        message.push('\n');
        message.push_str(&d.to_string());
    }
    if n > MAX_LISTED {
        message.push_str(&format!("\nand {} more", n - MAX_LISTED));
    }
    let causes = v.diagnostics.iter().map(cause).collect();
    let result = Status::failure(&message, "Invalid")
        .with_code(422)
        .with_details(StatusDetails {
            name: fr.name_any(),
            group: "netfilter.linx.dev".into(),
            kind: "firewallrulesets".into(),
            uid: String::new(),
            causes,
            retry_after_seconds: 0,
        });
    let mut response = response.deny(message);
    response.result = result;
    response
}

fn cause(d: &Diagnostic) -> StatusCause {
    StatusCause {
        reason: "FieldValueInvalid".into(),
        message: d.to_string(),
        field: d.field.clone(),
    }
}

/// Whether a pod that agents act on (not on the host's network, not
/// finished) matches `selector` in `namespace`. Looks at the first 100
/// matches, which settles every case but 100 host-network pods in a row.
pub async fn selects_any_pod(
    client: &Client,
    namespace: &str,
    selector: &LabelSelector,
) -> Result<bool, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default()
        .labels(&selector_query(selector))
        .limit(100);
    let list = pods.list(&lp).await?;
    Ok(list.items.iter().any(|p| {
        let host = p.spec.as_ref().and_then(|s| s.host_network) == Some(true);
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        !host && !matches!(phase, Some("Succeeded" | "Failed"))
    }))
}

/// A label selector as the API's `labelSelector` query.
pub fn selector_query(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// Warnings only the cluster can tell: no pod selected; tables another
/// resource already owns (the conflict the operator would report later).
async fn cluster_warnings(client: &Client, ns: &str, fr: &FirewallRuleset) -> Vec<String> {
    let mut out = Vec::new();
    match selects_any_pod(client, ns, &fr.spec.pod_selector).await {
        Ok(false) => out.push(format!(
            "spec.podSelector matches no pod in namespace {ns} yet: nothing is applied until one does"
        )),
        Ok(true) => {}
        Err(e) => warn!(error = %e, "listing pods for the admission warnings"),
    }
    let rulesets: Api<FirewallRuleset> = Api::namespaced(client.clone(), ns);
    match rulesets.list(&ListParams::default()).await {
        Ok(list) => {
            let all: Vec<std::sync::Arc<FirewallRuleset>> =
                list.items.into_iter().map(std::sync::Arc::new).collect();
            for c in conflicts_of(fr, &all).into_iter().filter(|c| !c.owned) {
                out.push(format!(
                    "table {} is already claimed by {ns}/{} (older): this resource's copy will not be applied",
                    c.table, c.other
                ));
            }
        }
        Err(e) => warn!(error = %e, "listing FirewallRulesets for the admission warnings"),
    }
    out
}
