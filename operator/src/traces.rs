//! FirewallTraces after the agents: a finished trace is deleted
//! `ttlSecondsAfterFinished` after it ended; a trace no agent took within
//! [`PICKUP`] (the pod is on no node with a running agent, or does not
//! exist) is failed `NotPickedUp`; a trace still `Running` [`GRACE`] past
//! its timeout (its agent died) is failed `AgentLost`. [`decide`] is pure;
//! [`run`] applies it to every trace, on each change and every few seconds.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use linx_crds::trace::{reasons, FirewallTrace, TracePhase};
use linx_crds::watch::backoff;
use serde_json::json;
use tracing::{info, warn};

/// How long a trace may wait for an agent to take it.
pub const PICKUP: Duration = Duration::from_secs(30);
/// How long past its timeout a running trace may go without ending.
pub const GRACE: Duration = Duration::from_secs(30);

/// What to do with a trace now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing, until then at the latest.
    Wait(Duration),
    Delete,
    Fail {
        reason: &'static str,
        message: String,
    },
}

/// What `t` needs at `now`.
pub fn decide(t: &FirewallTrace, now: Timestamp) -> Action {
    let status = t.status.as_ref();
    let created = t.metadata.creation_timestamp.as_ref().map_or(now, |c| c.0);
    let after = |from: Timestamp, d: Duration| {
        let until = from.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX));
        let until = until.unwrap_or(Timestamp::MAX);
        let left = until.duration_since(now);
        if left.is_positive() {
            Some(Duration::try_from(left).unwrap_or(Duration::MAX))
        } else {
            None
        }
    };
    match status.and_then(|s| s.phase) {
        Some(p) if p.is_finished() => {
            let ended = status
                .and_then(|s| s.completion_time.as_ref())
                .map_or(created, |t| t.0);
            let ttl = Duration::from_secs(t.spec.ttl_seconds().into());
            after(ended, ttl).map_or(Action::Delete, Action::Wait)
        }
        Some(_) => {
            let started = status
                .and_then(|s| s.start_time.as_ref())
                .map_or(created, |t| t.0);
            let limit = Duration::from_secs(t.spec.timeout_seconds().into()) + GRACE;
            after(started, limit).map_or_else(
                || Action::Fail {
                    reason: reasons::AGENT_LOST,
                    message: format!(
                        "still running {} s past its timeout: the agent on node {} stopped answering",
                        GRACE.as_secs(),
                        status.and_then(|s| s.node.as_deref()).unwrap_or("?")
                    ),
                },
                Action::Wait,
            )
        }
        None => after(created, PICKUP).map_or_else(
            || Action::Fail {
                reason: reasons::NOT_PICKED_UP,
                message: format!(
                    "no linx agent took this trace within {} s: does pod {} exist, and does its node run the linx-agent DaemonSet?",
                    PICKUP.as_secs(),
                    t.spec.pod
                ),
            },
            Action::Wait,
        ),
    }
}

/// Keeps the traces of the cluster until the future is dropped.
pub async fn run(client: Client) {
    let api: Api<FirewallTrace> = Api::all(client.clone());
    let (store, writer) = reflector::store();
    let events = backoff(watcher(api, watcher::Config::default()))
        .reflect(writer)
        .touched_objects();
    let mut events = std::pin::pin!(events);
    let mut next = Duration::from_secs(5);
    loop {
        tokio::select! {
            e = events.next() => match e {
                Some(Err(e)) => warn!(error = %e, "FirewallTrace watch failed; retrying"),
                Some(Ok(_)) => {}
                None => return,
            },
            _ = tokio::time::sleep(next) => {}
        }
        next = Duration::from_secs(5);
        let now = Timestamp::now();
        for t in store.state() {
            let ns = t.namespace().unwrap_or_default();
            let name = t.name_any();
            let api: Api<FirewallTrace> = Api::namespaced(client.clone(), &ns);
            match decide(&t, now) {
                Action::Wait(d) => next = next.min(d + Duration::from_millis(50)),
                Action::Delete => {
                    info!(trace = %format!("{ns}/{name}"), "finished trace deleted (ttlSecondsAfterFinished)");
                    if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
                        warn!(trace = %format!("{ns}/{name}"), error = %e, "deleting a trace failed");
                    }
                }
                Action::Fail { reason, message } => {
                    let mut status = t.status.clone().unwrap_or_default();
                    status.enter(TracePhase::Failed, reason, message, &Time(now));
                    let patch = Patch::Merge(json!({ "status": status }));
                    if let Err(e) = api
                        .patch_status(&name, &PatchParams::default(), &patch)
                        .await
                    {
                        warn!(trace = %format!("{ns}/{name}"), error = %e, "failing a trace failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linx_crds::{FirewallTraceSpec, FirewallTraceStatus};

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn trace(phase: Option<TracePhase>, created: i64, started: i64, ended: i64) -> FirewallTrace {
        let mut t = FirewallTrace::new(
            "t",
            FirewallTraceSpec {
                pod: "web-0".into(),
                timeout_seconds: Some(10),
                ttl_seconds_after_finished: Some(60),
                ..Default::default()
            },
        );
        t.metadata.creation_timestamp = Some(Time(at(created)));
        t.status = phase.map(|p| FirewallTraceStatus {
            phase: Some(p),
            node: Some("n1".into()),
            start_time: Some(Time(at(started))),
            completion_time: p.is_finished().then(|| Time(at(ended))),
            ..Default::default()
        });
        t
    }

    #[test]
    fn finished_traces_go_after_their_ttl() {
        let t = trace(Some(TracePhase::Completed), 0, 1, 5);
        assert_eq!(decide(&t, at(30)), Action::Wait(Duration::from_secs(35)));
        assert_eq!(decide(&t, at(65)), Action::Delete);
        let failed = trace(Some(TracePhase::Failed), 0, 1, 1);
        assert_eq!(decide(&failed, at(61)), Action::Delete);
    }

    #[test]
    fn traces_nobody_runs_fail_with_a_reason() {
        let waiting = trace(None, 0, 0, 0);
        assert_eq!(
            decide(&waiting, at(10)),
            Action::Wait(Duration::from_secs(20))
        );
        match decide(&waiting, at(31)) {
            Action::Fail { reason, message } => {
                assert_eq!(reason, reasons::NOT_PICKED_UP);
                assert!(message.contains("pod web-0"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let running = trace(Some(TracePhase::Running), 0, 2, 0);
        assert_eq!(
            decide(&running, at(40)),
            Action::Wait(Duration::from_secs(2))
        );
        assert!(matches!(
            decide(&running, at(43)),
            Action::Fail {
                reason: reasons::AGENT_LOST,
                ..
            }
        ));
    }
}
