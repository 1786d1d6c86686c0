//! Prometheus metrics of the agent, with low-cardinality labels (never a
//! pod name: per-pod detail is in the reports).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// What started a reconcile.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Trigger {
    /// The worker attached to the pod's namespace.
    Start,
    /// The desired value changed.
    Desired,
    /// Another writer changed a table we own.
    Foreign,
    /// The event stream lost events.
    Resync,
    /// The slow periodic backstop.
    Periodic,
    /// After a failure.
    Retry,
}

/// How a reconcile ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Result {
    /// A patch was pushed.
    Changed,
    /// Already equal: nothing sent.
    Unchanged,
    Error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub trigger: Trigger,
    pub result: Result,
}

/// The agent's metrics; cheap to clone (shared counters).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Pods whose namespace is held and reconciled.
    pub pods_managed: Gauge,
    /// Pods never touched (hostNetwork).
    pub pods_skipped: Gauge,
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Operations per pushed patch.
    pub patch_ops: Histogram,
    /// Guarded pushes refused because another writer committed first.
    pub conflicts: Counter,
    pub duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            pods_managed: Gauge::default(),
            pods_skipped: Gauge::default(),
            reconciles: Family::default(),
            patch_ops: Histogram::new(exponential_buckets(1.0, 4.0, 8)),
            conflicts: Counter::default(),
            duration: Histogram::new(exponential_buckets(0.0005, 4.0, 10)),
        }
    }
}

impl Metrics {
    /// New metrics, registered under `linx_agent_`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("linx_agent");
        r.register(
            "pods_managed",
            "Pods whose network namespace is held and reconciled",
            m.pods_managed.clone(),
        );
        r.register(
            "pods_skipped",
            "Pods never touched (hostNetwork)",
            m.pods_skipped.clone(),
        );
        r.register(
            "reconciles",
            "Reconciles by trigger and result",
            m.reconciles.clone(),
        );
        r.register(
            "patch_operations",
            "Operations per pushed patch",
            m.patch_ops.clone(),
        );
        r.register(
            "conflicts",
            "Guarded pushes refused because another writer committed first (retried)",
            m.conflicts.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time of one reconcile (pull/diff/push)",
            m.duration.clone(),
        );
        m
    }
}

/// The registry in Prometheus' text format.
pub fn encode(registry: &Registry) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut s, registry);
    s
}
