//! Per-pod outcomes: what the agent last did in each pod, for status
//! reports and tests. One writer per pod (its worker); readers take
//! snapshots or wait for a condition.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

/// Where a pod stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", content = "reason")]
pub enum PodState {
    /// Known, not reconciled yet.
    Pending,
    /// The pod's firewall equals its desired value (no tables when nothing
    /// selects it).
    Applied,
    /// Never touched, and why (`hostNetwork`).
    Skipped(String),
    /// No process of the pod runs (not started yet, or gone): nothing held.
    NotRunning,
    /// The last reconcile failed; retried with backoff.
    Failed,
}

impl PodState {
    /// The state's name, as reports and node reports write it.
    pub fn name(&self) -> &'static str {
        match self {
            PodState::Pending => "Pending",
            PodState::Applied => "Applied",
            PodState::Skipped(_) => "Skipped",
            PodState::NotRunning => "NotRunning",
            PodState::Failed => "Failed",
        }
    }
}

/// What the agent last did in one pod.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReport {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    #[serde(flatten)]
    pub state: PodState,
    /// The desired revision this report is about (see `NodeController::apply`).
    pub revision: u64,
    /// The kernel's ruleset generation after the last successful reconcile.
    pub generation: Option<u32>,
    /// Operations in the last pushed patch (0: nothing to do).
    pub patch_ops: usize,
    /// Guarded attempts of the last reconcile (1 when no conflict).
    pub attempts: u32,
    /// Successful reconciles since the worker started (no-ops included).
    pub reconciles: u64,
    /// Reconciles caused by another writer changing a table we own.
    pub repairs: u64,
    /// From learning of the last change made to this pod's desired value
    /// to its commit in the pod (`linx_program_latency_seconds`).
    #[serde(with = "seconds")]
    pub program_latency: Option<Duration>,
    pub error: Option<String>,
    /// The sandbox (container ID) whose namespace, handed over by
    /// `linx-cni`, this report is about; `None` when the namespace was
    /// found through a process of the pod.
    pub sandbox: Option<String>,
    pub updated: SystemTime,
}

impl PodReport {
    pub fn new(pod: &crate::pod::Pod, revision: u64) -> Self {
        PodReport {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            state: PodState::Pending,
            revision,
            generation: None,
            patch_ops: 0,
            attempts: 0,
            reconciles: 0,
            repairs: 0,
            program_latency: None,
            error: None,
            sandbox: None,
            updated: SystemTime::now(),
        }
    }
}

/// The reports of every pod on the node, keyed by pod UID.
pub struct Reports {
    map: Mutex<BTreeMap<String, PodReport>>,
    version: watch::Sender<u64>,
}

impl Default for Reports {
    fn default() -> Self {
        Reports {
            map: Mutex::default(),
            version: watch::Sender::new(0),
        }
    }
}

impl Reports {
    /// A copy of every report.
    pub fn snapshot(&self) -> BTreeMap<String, PodReport> {
        self.lock().clone()
    }

    /// One pod's report.
    pub fn get(&self, uid: &str) -> Option<PodReport> {
        self.lock().get(uid).cloned()
    }

    /// Changes one pod's report (creating it from `init` if absent).
    pub(crate) fn update(
        &self,
        uid: &str,
        init: impl FnOnce() -> PodReport,
        f: impl FnOnce(&mut PodReport),
    ) {
        {
            let mut m = self.lock();
            let r = m.entry(uid.to_owned()).or_insert_with(init);
            f(r);
            r.updated = SystemTime::now();
        }
        self.version.send_modify(|v| *v += 1);
    }

    pub(crate) fn remove(&self, uid: &str) {
        self.lock().remove(uid);
        self.version.send_modify(|v| *v += 1);
    }

    /// Waits until `pred` holds for the reports, or `timeout` passes;
    /// returns whether it held.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&BTreeMap<String, PodReport>) -> bool,
    ) -> bool {
        let mut rx = self.version.subscribe();
        let until = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.lock()) {
                return true;
            }
            match tokio::time::timeout_at(until, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return pred(&self.lock()),
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PodReport>> {
        // A panicking reader cannot leave a report half-written: recover.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An optional duration as fractional seconds.
mod seconds {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}
