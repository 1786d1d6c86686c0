//! The node controller: one worker per pod on this node, each keeping that
//! pod's firewall equal to its desired value, with bounded concurrency of
//! engine calls across pods.
//!
//! It is fed whole snapshots ([`NodeController::apply`]): every pod on the
//! node with its desired value. Only pods whose value changed are woken.
//! When the source of snapshots goes quiet (API server unreachable) every
//! worker keeps enforcing the last value it was given.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use linx_netfilter::reconcile;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::desired::{same, Target};
use crate::metrics::Metrics;
use crate::pod::Pod;
use crate::report::Reports;
use crate::resolve::NetnsResolver;
use crate::worker::{self, Desired, Shared};

/// Options of the node controller.
#[derive(Clone, Debug)]
pub struct Options {
    /// Engine calls (resolve, open, reconcile) running at once across pods.
    pub concurrency: usize,
    /// The slow periodic reconcile, a backstop for missed events.
    pub resync: Duration,
    /// Wait before resolving a pod again that is not running, and the base
    /// of the backoff after a failed reconcile.
    pub retry: Duration,
    /// How each pod's namespace is reconciled.
    pub reconcile: reconcile::Options,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 8,
            resync: Duration::from_secs(300),
            retry: Duration::from_secs(2),
            reconcile: reconcile::Options::default(),
        }
    }
}

struct WorkerHandle {
    tx: watch::Sender<Desired>,
    task: JoinHandle<()>,
}

/// Keeps every pod of the node reconciled.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use linx_agent::{controller::{NodeController, Options}, desired::targets, metrics::Metrics,
///     pod::Pod, resolve::CgroupResolver};
/// let mut node = NodeController::new(Arc::new(CgroupResolver::new()?), Options::default(), Metrics::default());
/// let pods = vec![Pod { uid: "6f1c…".into(), namespace: "web".into(), name: "web-0".into(), ..Default::default() }];
/// node.apply(targets(&pods, &|_: &Pod| None));
/// # Ok(()) }
/// ```
pub struct NodeController {
    shared: Arc<Shared>,
    workers: HashMap<String, WorkerHandle>,
    stopping: Vec<JoinHandle<()>>,
    revision: u64,
}

impl NodeController {
    pub fn new(resolver: Arc<dyn NetnsResolver>, opts: Options, metrics: Metrics) -> Self {
        NodeController {
            shared: Arc::new(Shared {
                resolver,
                permits: Arc::new(Semaphore::new(opts.concurrency.max(1))),
                reports: Arc::new(Reports::default()),
                metrics,
                opts,
                drops: None,
            }),
            workers: HashMap::new(),
            stopping: Vec::new(),
            revision: 0,
        }
    }

    /// Reads each pod's NFLOG group into `drops` while its rules log to
    /// the agent. Call before the first [`NodeController::apply`].
    pub fn read_drops(&mut self, drops: Arc<crate::drops::Drops>) {
        Arc::get_mut(&mut self.shared)
            .expect("read_drops before any worker starts")
            .drops = Some(drops);
    }

    /// Where the pods' NFLOG groups are read to, if anywhere.
    pub fn drops(&self) -> Option<Arc<crate::drops::Drops>> {
        self.shared.drops.clone()
    }

    /// The resolver of pods' namespaces.
    pub fn resolver(&self) -> Arc<dyn NetnsResolver> {
        self.shared.resolver.clone()
    }

    /// Per-pod outcomes.
    pub fn reports(&self) -> Arc<Reports> {
        self.shared.reports.clone()
    }

    /// Sets every pod on the node and its desired value. Workers start for
    /// new pods, wake for pods whose value changed, and stop for pods not
    /// listed (they left the node: their namespace is let go, not cleaned).
    /// Must be called inside a Tokio runtime. Returns the revision stamped
    /// on the values that changed (reports name the revision they reached).
    pub fn apply(&mut self, targets: impl IntoIterator<Item = Target>) -> u64 {
        self.revision += 1;
        let revision = self.revision;
        let mut seen = std::collections::HashSet::new();
        for Target { pod, desired, hold } in targets {
            seen.insert(pod.uid.clone());
            if let Some(w) = self.workers.get(&pod.uid) {
                w.tx.send_if_modified(|d| {
                    if same(&d.value, &desired) && d.hold == hold {
                        return false;
                    }
                    *d = Desired {
                        revision,
                        value: desired.clone(),
                        hold,
                    };
                    true
                });
                continue;
            }
            self.spawn(
                pod,
                Desired {
                    revision,
                    value: desired,
                    hold,
                },
            );
        }
        let gone: Vec<String> = self
            .workers
            .keys()
            .filter(|uid| !seen.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(w) = self.workers.remove(&uid) {
                drop(w.tx); // the worker finishes what it is doing, then ends
                self.stopping.push(w.task);
            }
        }
        self.stopping.retain(|t| !t.is_finished());
        revision
    }

    /// The revision of a pod's current desired value.
    pub fn revision_of(&self, uid: &str) -> Option<u64> {
        self.workers.get(uid).map(|w| w.tx.borrow().revision)
    }

    /// Stops every worker and waits for them (tables are left as they are).
    pub async fn shutdown(mut self) {
        let mut tasks = std::mem::take(&mut self.stopping);
        for (_, w) in self.workers.drain() {
            drop(w.tx);
            tasks.push(w.task);
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    fn spawn(&mut self, pod: Pod, desired: Desired) {
        let uid = pod.uid.clone();
        let (tx, rx) = watch::channel(desired);
        let task = tokio::spawn(worker::run(pod, rx, self.shared.clone()));
        self.workers.insert(uid, WorkerHandle { tx, task });
    }
}
