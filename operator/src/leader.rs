//! Leader election with a `coordination.k8s.io/v1` Lease, so that of
//! several operator replicas exactly one writes statuses.
//!
//! The holder renews every `retry` period; a candidate takes the lease only
//! when its `renewTime + leaseDurationSeconds` has passed. Writes to the
//! Lease carry its resourceVersion, so two candidates racing for it cannot
//! both win. A leader that could not renew for `renew_deadline` (shorter
//! than the lease duration) stops working before anyone else may take over.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use tracing::{info, warn};

use crate::{Error, Result};

/// Lease timing, as client-go's defaults.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    pub duration: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
}

impl LeaseConfig {
    pub fn new(name: &str, namespace: &str, identity: &str) -> Self {
        LeaseConfig {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// What a candidate should do with the lease as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it.
    Take,
    /// Another replica holds it until the given time.
    Wait(Timestamp),
}

/// Decides from the lease spec alone (pure, so the protocol is tested).
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Take;
    };
    match spec.holder_identity.as_deref() {
        Some(h) if h == me => Decision::Renew,
        None | Some("") => Decision::Take,
        Some(_) => {
            let renewed = spec
                .renew_time
                .as_ref()
                .or(spec.acquire_time.as_ref())
                .map(|t| t.0);
            let secs = i64::from(spec.lease_duration_seconds.unwrap_or(15).max(1));
            match renewed {
                Some(t) if t + SignedDuration::from_secs(secs) > now => {
                    Decision::Wait(t + SignedDuration::from_secs(secs))
                }
                _ => Decision::Take,
            }
        }
    }
}

/// The lease spec after `decision` (which must not be `Wait`).
pub fn next_spec(
    old: Option<&LeaseSpec>,
    cfg: &LeaseConfig,
    decision: &Decision,
    now: Timestamp,
) -> LeaseSpec {
    let mut spec = old.cloned().unwrap_or_default();
    if *decision == Decision::Take {
        spec.acquire_time = Some(MicroTime(now));
        if old.is_some_and(|o| o.holder_identity.as_deref().is_some_and(|h| !h.is_empty())) {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
    }
    spec.holder_identity = Some(cfg.identity.clone());
    spec.lease_duration_seconds = Some(cfg.duration.as_secs() as i32);
    spec.renew_time = Some(MicroTime(now));
    spec
}

/// One attempt: true when we hold the lease afterwards.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool> {
    let err = |source| Error::Lease {
        lease: format!("{}/{}", cfg.namespace, cfg.name),
        source,
    };
    let now = Timestamp::now();
    let current = api.get_opt(&cfg.name).await.map_err(err)?;
    let decision = decide(
        current.as_ref().and_then(|l| l.spec.as_ref()),
        &cfg.identity,
        now,
    );
    if matches!(decision, Decision::Wait(_)) {
        return Ok(false);
    }
    let spec = next_spec(
        current.as_ref().and_then(|l| l.spec.as_ref()),
        cfg,
        &decision,
        now,
    );
    let result = match current {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await
        }
        Some(mut lease) => {
            // The resourceVersion kept from the read makes this a compare-and-swap.
            lease.spec = Some(spec);
            lease.metadata.managed_fields = None;
            api.replace(&cfg.name, &PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(err(e)),
    }
}

/// Waits for the lease, then runs `work` while renewing it. Returns when
/// `work` ends, or with an error as soon as the lease could not be renewed
/// within the deadline (`work` is dropped, so nothing more is written).
pub async fn run_as_leader<F>(
    api: Api<Lease>,
    cfg: LeaseConfig,
    metrics: &crate::Metrics,
    work: F,
) -> Result<()>
where
    F: Future<Output = ()>,
{
    loop {
        match try_acquire(&api, &cfg).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => warn!(error = %e, "acquiring lease"),
        }
        tokio::time::sleep(cfg.retry).await;
    }
    info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
    metrics.leader.set(1);
    let renew = async {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(cfg.retry).await;
            match try_acquire(&api, &cfg).await {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => return Error::LostLease(cfg.name.clone()),
                Err(e) => warn!(error = %e, "renewing lease"),
            }
            if last.elapsed() > cfg.renew_deadline {
                return Error::LostLease(cfg.name.clone());
            }
        }
    };
    let out = tokio::select! {
        _ = work => Ok(()),
        e = renew => Err(e),
    };
    metrics.leader.set(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }
    fn held(by: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(by.into()),
            renew_time: Some(MicroTime(ts(renewed))),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }
    }

    #[test]
    fn only_an_expired_or_free_lease_is_taken() {
        assert_eq!(decide(None, "a", ts(100)), Decision::Take);
        assert_eq!(decide(Some(&held("a", 90)), "a", ts(100)), Decision::Renew);
        assert_eq!(
            decide(Some(&held("b", 90)), "a", ts(100)),
            Decision::Wait(ts(105))
        );
        assert_eq!(decide(Some(&held("b", 80)), "a", ts(100)), Decision::Take);
        assert_eq!(decide(Some(&held("", 99)), "a", ts(100)), Decision::Take);
    }

    #[test]
    fn taking_over_counts_a_transition() {
        let cfg = LeaseConfig::new("linx-operator", "linx", "a");
        let old = held("b", 80);
        let s = next_spec(Some(&old), &cfg, &Decision::Take, ts(100));
        assert_eq!(s.holder_identity.as_deref(), Some("a"));
        assert_eq!(s.lease_transitions, Some(1));
        assert_eq!(s.acquire_time, Some(MicroTime(ts(100))));
        let r = next_spec(Some(&s), &cfg, &Decision::Renew, ts(102));
        assert_eq!(
            (r.lease_transitions, r.renew_time),
            (Some(1), Some(MicroTime(ts(102))))
        );
        assert_eq!(r.acquire_time, Some(MicroTime(ts(100))));
    }
}
