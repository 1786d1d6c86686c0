//! Prometheus metrics: reconciles, errors by kind, reconcile durations,
//! status writes, whether this replica leads, admission reviews and their
//! latency, and the serving certificate's expiry. Labels are few and fixed.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// `allowed`, `denied` or `malformed`.
    pub verdict: String,
}

/// The operator's metrics, registered under the `linx_operator` prefix.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Counter,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    pub status_writes: Counter,
    pub leader: Gauge,
    pub admissions: Family<VerdictLabels, Counter>,
    pub admission_duration: Histogram,
    /// Unix time the serving certificate in use expires (0: none loaded).
    pub cert_expiry: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Counter::default(),
            errors: Family::default(),
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            status_writes: Counter::default(),
            leader: Gauge::default(),
            admissions: Family::default(),
            admission_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            cert_expiry: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn register(self, registry: &mut Registry) -> Self {
        let r = registry.sub_registry_with_prefix("linx_operator");
        r.register(
            "reconciles",
            "FirewallRuleset reconciliations",
            self.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Failed reconciliations by error kind",
            self.errors.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time spent reconciling one FirewallRuleset",
            self.duration.clone(),
        );
        r.register(
            "status_writes",
            "Status patches sent (unchanged statuses are not written)",
            self.status_writes.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the leader lease",
            self.leader.clone(),
        );
        r.register(
            "admission_reviews",
            "Admission reviews answered, by verdict",
            self.admissions.clone(),
        );
        r.register(
            "admission_duration_seconds",
            "Time to answer one admission review",
            self.admission_duration.clone(),
        );
        r.register(
            "webhook_certificate_expiry_seconds",
            "Unix time the serving certificate in use expires",
            self.cert_expiry.clone(),
        );
        self
    }

    /// One admission review answered with `verdict` in `took`.
    pub fn admission(&self, verdict: &str, took: Duration) {
        self.admissions
            .get_or_create(&VerdictLabels {
                verdict: verdict.to_string(),
            })
            .inc();
        self.admission_duration.observe(took.as_secs_f64());
    }

    pub fn observe(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn error(&self, e: &crate::Error) {
        self.error_label(e.metric_label());
    }

    /// Counts an error of a kind outside [`crate::Error`] (`certificates`).
    pub fn error_label(&self, label: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                error: label.to_string(),
            })
            .inc();
    }
}

/// The registry in Prometheus' text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)
        .expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_with_prefix() {
        let mut reg = Registry::default();
        let m = Metrics::default().register(&mut reg);
        m.observe(Duration::from_millis(3));
        m.error(&crate::Error::MissingNamespace("x".into()));
        let text = encode(&reg);
        assert!(text.contains("linx_operator_reconciles_total 1"), "{text}");
        assert!(
            text.contains("linx_operator_reconcile_errors_total{error=\"missing_namespace\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("linx_operator_reconcile_duration_seconds_count 1"),
            "{text}"
        );
    }
}
