//! The node controller: one worker per pod on this node, each keeping that
//! pod's firewall equal to its desired value, with bounded concurrency of
//! engine calls across pods.
//!
//! It is fed whole snapshots ([`NodeController::apply`]): every pod on the
//! node with its desired value. Only pods whose value changed are woken.
//! When the source of snapshots goes quiet (API server unreachable) every
//! worker keeps enforcing the last value it was given.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::desired::{same, Target};
use crate::metrics::Metrics;
use crate::pod::Pod;
use crate::report::Reports;
use crate::resolve::{NetnsResolver, Sandbox};
/// The node controller's options live with the workers that read them.
pub use crate::worker::Options;
use crate::worker::{self, Desired, Shared};

struct WorkerHandle {
    tx: watch::Sender<Desired>,
    task: JoinHandle<()>,
}

/// The workers, shared by the controller and its [`NodeHandle`]s.
#[derive(Default)]
struct Inner {
    workers: HashMap<String, WorkerHandle>,
    stopping: Vec<JoinHandle<()>>,
    revision: u64,
    /// Pods started by [`NodeHandle::attach`] that no snapshot has listed
    /// yet (the API server's watch is behind the runtime): kept until a
    /// snapshot lists them or their sandbox is released.
    pinned: HashSet<String>,
}

impl Inner {
    fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    fn spawn(&mut self, shared: &Arc<Shared>, pod: Pod, desired: Desired) {
        let uid = pod.uid.clone();
        let (tx, rx) = watch::channel(desired);
        let task = tokio::spawn(worker::run(pod, rx, shared.clone()));
        self.workers.insert(uid, WorkerHandle { tx, task });
    }

    fn stop(&mut self, uid: &str) {
        self.pinned.remove(uid);
        if let Some(w) = self.workers.remove(uid) {
            drop(w.tx); // the worker finishes what it is doing, then ends
            self.stopping.push(w.task);
        }
    }
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
    handle: NodeHandle,
}

/// What the local endpoint for `linx-cni` uses to hand sandboxes to the
/// controller's workers; cheap to clone.
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<Shared>,
    inner: Arc<Mutex<Inner>>,
}

impl NodeController {
    pub fn new(resolver: Arc<dyn NetnsResolver>, opts: Options, metrics: Metrics) -> Self {
        NodeController {
            handle: NodeHandle {
                shared: Arc::new(Shared {
                    resolver,
                    permits: Arc::new(Semaphore::new(opts.concurrency.max(1))),
                    reports: Arc::new(Reports::default()),
                    metrics,
                    opts,
                    drops: None,
                }),
                inner: Arc::default(),
            },
        }
    }

    /// Reads each pod's NFLOG group into `drops` while its rules log to
    /// the agent. Call before the first [`NodeController::apply`].
    pub fn read_drops(&mut self, drops: Arc<crate::drops::Drops>) {
        Arc::get_mut(&mut self.handle.shared)
            .expect("read_drops before any worker starts or handle is taken")
            .drops = Some(drops);
    }

    /// Where the pods' NFLOG groups are read to, if anywhere.
    pub fn drops(&self) -> Option<Arc<crate::drops::Drops>> {
        self.handle.shared.drops.clone()
    }

    /// The resolver of pods' namespaces.
    pub fn resolver(&self) -> Arc<dyn NetnsResolver> {
        self.handle.shared.resolver.clone()
    }

    /// Per-pod outcomes.
    pub fn reports(&self) -> Arc<Reports> {
        self.handle.reports()
    }

    /// A handle for handing sandboxes over (see [`NodeHandle::attach`]).
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Sets every pod on the node and its desired value. Workers start for
    /// new pods, wake for pods whose value changed, and stop for pods not
    /// listed (they left the node: their namespace is let go, not cleaned),
    /// except pods attached by `linx-cni` that no snapshot has listed yet.
    /// Must be called inside a Tokio runtime. Returns the revision stamped
    /// on the values that changed (reports name the revision they reached).
    pub fn apply(&mut self, targets: impl IntoIterator<Item = Target>) -> u64 {
        self.apply_learned(targets, tokio::time::Instant::now())
    }

    /// [`apply`](Self::apply), the changes having been learned at `learned`
    /// (e.g. when the watch event arrived): pods programmed because of
    /// them count their program latency from then.
    pub fn apply_learned(
        &mut self,
        targets: impl IntoIterator<Item = Target>,
        learned: tokio::time::Instant,
    ) -> u64 {
        let shared = &self.handle.shared;
        let mut inner = self.handle.lock();
        let revision = inner.next_revision();
        let mut seen = HashSet::new();
        for Target { pod, desired, hold } in targets {
            seen.insert(pod.uid.clone());
            inner.pinned.remove(&pod.uid);
            if let Some(w) = inner.workers.get(&pod.uid) {
                w.tx.send_if_modified(|d| {
                    if same(&d.value, &desired) && d.hold == hold {
                        return false;
                    }
                    d.revision = revision;
                    d.value = desired.clone();
                    d.hold = hold;
                    d.learned = learned;
                    true
                });
                continue;
            }
            let desired = Desired {
                revision,
                value: desired,
                hold,
                learned,
                sandbox: None,
            };
            inner.spawn(shared, pod, desired);
        }
        let gone: Vec<String> = inner
            .workers
            .keys()
            .filter(|uid| !seen.contains(*uid) && !inner.pinned.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            inner.stop(&uid);
        }
        inner.stopping.retain(|t| !t.is_finished());
        revision
    }

    /// The revision of a pod's current desired value.
    pub fn revision_of(&self, uid: &str) -> Option<u64> {
        self.handle
            .lock()
            .workers
            .get(uid)
            .map(|w| w.tx.borrow().revision)
    }

    /// Stops every worker and waits for them (tables are left as they are).
    pub async fn shutdown(self) {
        let tasks = {
            let mut inner = self.handle.lock();
            let mut tasks = std::mem::take(&mut inner.stopping);
            for (_, w) in inner.workers.drain() {
                drop(w.tx);
                tasks.push(w.task);
            }
            tasks
        };
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl NodeHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing panics while holding it; recover rather than cascade.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Per-pod outcomes.
    pub fn reports(&self) -> Arc<Reports> {
        self.shared.reports.clone()
    }

    /// Hands a pod's sandbox namespace to its worker (starting one if the
    /// pod is not known yet): the worker reconciles there at once and
    /// keeps it from then on, in place of a namespace found by process.
    /// Returns the revision whose report, about this sandbox, says the
    /// firewall is in (see [`PodReport::sandbox`]). Must be called inside
    /// a Tokio runtime.
    ///
    /// [`PodReport::sandbox`]: crate::report::PodReport::sandbox
    pub fn attach(&self, target: Target, sandbox: Arc<Sandbox>) -> u64 {
        let mut inner = self.lock();
        let Target { pod, desired, hold } = target;
        if let Some(w) = inner.workers.get(&pod.uid) {
            let next = inner.revision + 1;
            let mut bumped = false;
            let mut revision = 0;
            w.tx.send_modify(|d| {
                if !(same(&d.value, &desired) && d.hold == hold) {
                    (d.revision, d.value, d.hold, bumped) = (next, desired, hold, true);
                }
                // The new sandbox is programmed because of this call.
                d.learned = tokio::time::Instant::now();
                d.sandbox = Some(sandbox);
                revision = d.revision;
            });
            if bumped {
                inner.revision = next;
            }
            return revision;
        }
        let revision = inner.next_revision();
        inner.pinned.insert(pod.uid.clone());
        let desired = Desired {
            revision,
            value: desired,
            hold,
            learned: tokio::time::Instant::now(),
            sandbox: Some(sandbox),
        };
        inner.spawn(&self.shared, pod, desired);
        revision
    }

    /// The sandbox is gone (`DEL`): its worker lets go of the namespace
    /// (and goes back to finding the pod by process), or stops if the pod
    /// was only known through it. Returns whether any worker held it.
    pub fn release(&self, container_id: &str) -> bool {
        self.release_where(|id| id == container_id) > 0
    }

    /// Releases every sandbox not in `valid` (CNI `GC`); returns how many.
    pub fn retain(&self, valid: &HashSet<String>) -> usize {
        self.release_where(|id| !valid.contains(id))
    }

    fn release_where(&self, gone: impl Fn(&str) -> bool) -> usize {
        let mut inner = self.lock();
        let mut released = Vec::new();
        for (uid, w) in &inner.workers {
            w.tx.send_if_modified(|d| {
                let hit = d.sandbox.as_ref().is_some_and(|s| gone(&s.container_id));
                if hit {
                    d.sandbox = None;
                    released.push(uid.clone());
                }
                hit
            });
        }
        for uid in &released {
            if inner.pinned.contains(uid) {
                inner.stop(uid);
            }
        }
        released.len()
    }
}
