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
    /// Patches guarded anew at a later generation, as they were, because
    /// only other writers' tables had changed (busy neighbours).
    pub rebases: Counter,
    pub duration: Histogram,
    /// From learning of a change (a FirewallRuleset generation, a pod's
    /// labels, a new pod) to its commit in a pod.
    pub program_latency: Histogram,
}

/// Buckets of `linx_program_latency_seconds`: 1 ms to 60 s.
const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            pods_managed: Gauge::default(),
            pods_skipped: Gauge::default(),
            reconciles: Family::default(),
            patch_ops: Histogram::new(exponential_buckets(1.0, 4.0, 8)),
            conflicts: Counter::default(),
            rebases: Counter::default(),
            duration: Histogram::new(exponential_buckets(0.0005, 4.0, 10)),
            program_latency: Histogram::new(LATENCY_BUCKETS),
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
            "rebases",
            "Patches guarded anew at a later generation, unchanged, because only other writers' tables had changed",
            m.rebases.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Time of one reconcile (pull/diff/push)",
            m.duration.clone(),
        );
        registry.register(
            "linx_program_latency_seconds",
            "From the agent learning of a change (a FirewallRuleset generation, a pod label, a new pod) to its kernel commit in a pod",
            m.program_latency.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector));
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

/// The agent process's own resources, read from `/proc/self` at each
/// scrape, under Prometheus' conventional `process_*` names.
#[derive(Debug)]
struct ProcessCollector;

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut enc: prometheus_client::encoding::DescriptorEncoder,
    ) -> std::result::Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let p = ProcessStats::read();
        for (name, help, value) in [
            ("process_open_fds", "Open file descriptors", p.open_fds),
            (
                "process_max_fds",
                "The soft limit on open file descriptors",
                p.max_fds,
            ),
            ("process_threads", "Threads", p.threads),
            (
                "process_resident_memory_bytes",
                "Resident memory in bytes",
                p.rss_bytes,
            ),
        ] {
            let g = ConstGauge::new(value as i64);
            g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let c = ConstCounter::new(p.cpu_seconds);
        c.encode(enc.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            None,
            c.metric_type(),
        )?)?;
        Ok(())
    }
}

/// A process's resources as `/proc` tells them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub open_fds: u64,
    pub max_fds: u64,
    pub threads: u64,
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

impl ProcessStats {
    /// This process.
    pub fn read() -> Self {
        Self::of("self")
    }

    /// Process `pid` (`"self"` for this one); fields it cannot read are 0.
    pub fn of(pid: &str) -> Self {
        let dir = std::path::Path::new("/proc").join(pid);
        let open_fds = std::fs::read_dir(dir.join("fd"))
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let limits = std::fs::read_to_string(dir.join("limits")).unwrap_or_default();
        let max_fds = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
            .unwrap_or(0);
        // utime and stime: fields 14 and 15 of stat, counted after the
        // command name (which may hold spaces), in clock ticks.
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let ticks: u64 = stat
            .rfind(')')
            .map(|i| &stat[i + 1..])
            .map(|rest| {
                rest.split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
            n if n > 0 => n as f64,
            _ => 100.0,
        };
        ProcessStats {
            open_fds,
            max_fds,
            threads: field("Threads:"),
            rss_bytes: field("VmRSS:") * 1024,
            cpu_seconds: ticks as f64 / hz,
        }
    }
}
