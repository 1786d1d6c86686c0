//! The optional readiness gate (`--readiness-gate`, chart value
//! `cni.readinessGate`): a pod that lists the condition
//! `netfilter.linx.dev/firewall` among its `spec.readinessGates` is not
//! Ready — and so gets no Service traffic — until the agent sets that
//! condition True, which it does once the pod's firewall equals its
//! desired value (no tables for a pod nothing selects). The condition is
//! never set back to False: a failed later edit keeps the last firewall
//! in place, and flapping readiness would drop the pod from its Services
//! for nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod as KubePod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::Client;
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::report::{PodState, Reports};
use crate::snapshot::Snapshot;

/// The condition type of the gate.
pub const CONDITION: &str = "netfilter.linx.dev/firewall";

/// Whether the pod declares the gate.
pub fn gated(p: &KubePod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .is_some_and(|g| g.iter().any(|g| g.condition_type == CONDITION))
}

/// Whether the condition is already True on the pod.
fn set(p: &KubePod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == CONDITION && c.status == "True"))
}

/// The status patch that sets the condition (a strategic merge: conditions
/// merge by type, the kubelet's own are kept).
pub fn patch() -> serde_json::Value {
    json!({"status": {"conditions": [{
        "type": CONDITION,
        "status": "True",
        "reason": "FirewallApplied",
        "message": "the pod's FirewallRulesets are enforced in its network namespace",
        "lastTransitionTime": Time(k8s_openapi::jiff::Timestamp::now()),
    }]}})
}

/// Sets the condition on gated pods of the store as their firewalls
/// converge, until aborted.
pub async fn run(
    client: Client,
    store: Store<KubePod>,
    reports: Arc<Reports>,
    mut snap: watch::Receiver<Arc<Snapshot>>,
) {
    let mut done: HashSet<String> = HashSet::new();
    loop {
        let seen = reports.snapshot();
        let current = snap.borrow_and_update().clone();
        let mut live = HashSet::new();
        for p in store.state() {
            let (Some(uid), Some(ns), Some(name)) = (
                p.metadata.uid.as_deref(),
                p.metadata.namespace.as_deref(),
                p.metadata.name.as_deref(),
            ) else {
                continue;
            };
            live.insert(uid.to_owned());
            if done.contains(uid) || !gated(&p) {
                continue;
            }
            if set(&p) {
                done.insert(uid.to_owned());
                continue;
            }
            let applied = seen.get(uid).is_some_and(|r| {
                r.state == PodState::Applied && current.revisions.get(uid) == Some(&r.revision)
            });
            if !applied {
                continue;
            }
            let api: Api<KubePod> = Api::namespaced(client.clone(), ns);
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch()))
                .await
            {
                Ok(_) => {
                    info!(pod = %format!("{ns}/{name}"), "readiness gate {CONDITION} set");
                    done.insert(uid.to_owned());
                }
                Err(e) => {
                    warn!(pod = %format!("{ns}/{name}"), error = %e, "readiness gate not set; retrying")
                }
            }
        }
        done.retain(|u| live.contains(u));
        // New pods arrive with a new snapshot; converged ones with a new
        // report; a failed patch is retried within the timeout.
        let changed = reports.wait_for(Duration::from_secs(10), |r| *r != seen);
        tokio::select! {
            _ = changed => {}
            r = snap.changed() => if r.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pods_declaring_the_gate_are_gated() {
        let mut p: KubePod = serde_json::from_value(json!({
            "metadata": {"name": "a", "namespace": "n", "uid": "u"},
            "spec": {"containers": [], "readinessGates": [{"conditionType": CONDITION}]}
        }))
        .unwrap();
        assert!(gated(&p) && !set(&p));
        p.status =
            serde_json::from_value(json!({"conditions": [{"type": CONDITION, "status": "True"}]}))
                .unwrap();
        assert!(set(&p));
        let plain: KubePod =
            serde_json::from_value(json!({"metadata": {"name": "b"}, "spec": {"containers": []}}))
                .unwrap();
        assert!(!gated(&plain));
        assert_eq!(patch()["status"]["conditions"][0]["type"], CONDITION);
    }
}
