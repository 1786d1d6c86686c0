//! One pod's worker: holds the pod's network namespace, keeps its managed
//! tables equal to the desired value, and reconciles again when the value
//! changes, when another writer touches a table it owns, and periodically.
//!
//! Engine calls block, so each runs on Tokio's blocking pool while the
//! worker holds a permit of the node's semaphore (bounded concurrency
//! across pods). The `Reconciler` moves into that call and back.
//!
//! Own commits are told from others' by generation: a reconcile returns the
//! generation its commit produced, and the kernel announces each commit's
//! generation after the objects it changed. (The committing pid would not
//! do: the kernel reports the thread, and blocking-pool threads vary.)
//!
//! Descriptors: two per pod, both sockets inside the pod's namespace —
//! the reconciler's, and its event subscription (the reconciler reads
//! events during a reconcile to rebase over a busy neighbour's commits;
//! the worker reads them in between, waking on the socket's readiness).
//! The namespace file the resolver opened is closed once they are made:
//! the sockets pin the namespace. The two are not merged into one socket:
//! a flood of events (a neighbour loading 10,000 rules) would then crowd
//! out the kernel's answers to our own requests.

use std::collections::{BTreeSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use linx_netfilter::events::Event;
use linx_netfilter::reconcile::{self, Outcome, Reconciler};
use linx_netfilter::{Family, Netns, Ruleset, Socket};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn};

use crate::metrics::{self, Metrics, ReconcileLabels, Trigger};
use crate::pod::Pod;
use crate::report::{PodReport, PodState, Reports};
use crate::resolve::{NetnsResolver, PodNetns, Resolution, Sandbox};

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

/// What the controller shares with every worker.
pub(crate) struct Shared {
    pub resolver: Arc<dyn NetnsResolver>,
    pub permits: Arc<Semaphore>,
    pub reports: Arc<Reports>,
    pub metrics: Metrics,
    pub opts: Options,
    /// Reads the pods' NFLOG groups when their rules log to the agent.
    pub drops: Option<Arc<crate::drops::Drops>>,
}

/// A desired value and the revision it was set at.
#[derive(Clone, Debug)]
pub(crate) struct Desired {
    pub revision: u64,
    pub value: Option<Arc<Ruleset>>,
    /// Keep managed tables the value does not name (see `Policy::holds`).
    pub hold: bool,
    /// When the agent learned of the change that made this value (the
    /// start of the program-latency clock).
    pub learned: Instant,
    /// The pod's sandbox namespace from `linx-cni`, when it handed one
    /// over: used instead of finding a process of the pod.
    pub sandbox: Option<Arc<Sandbox>>,
}

/// The namespace a worker holds, and how it was found.
enum Held {
    Process(PodNetns),
    Sandbox(Arc<Sandbox>),
}

impl Held {
    /// The namespace to open further sockets in (the drop-log reader): a
    /// sandbox's held descriptor, or a process's pid (its namespace file
    /// is closed once the reconciler's sockets are open; callers check the
    /// pid is still the pod's first, see `check_held`).
    fn netns(&self) -> &Netns {
        match self {
            Held::Process(p) => &p.netns,
            Held::Sandbox(s) => &s.netns,
        }
    }

    fn sandbox_id(&self) -> Option<String> {
        match self {
            Held::Process(_) => None,
            Held::Sandbox(s) => Some(s.container_id.clone()),
        }
    }
}

/// How a worker's hold on a namespace ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The pod left the node (or the controller stopped).
    Stopped,
    /// The namespace is no longer the pod's, or unusable: resolve again.
    Lost,
    /// Another namespace was handed over (or the sandbox released): take
    /// it at once.
    Replaced,
}

/// How many of our own commit generations to remember (events for a
/// commit arrive after the reconcile that made it returns).
const OWN_GENERATIONS: usize = 32;

/// Runs until the controller drops the desired value's sender.
pub(crate) async fn run(pod: Pod, mut desired: watch::Receiver<Desired>, shared: Arc<Shared>) {
    let w = Worker {
        report: ReportGuard {
            reports: shared.reports.clone(),
            pod: pod.clone(),
        },
        pod,
        shared,
        programmed: AtomicU64::new(0),
    };
    w.report(desired.borrow().revision, |r| r.state = PodState::Pending);
    if let Some(why) = w.pod.never_touched() {
        info!(pod = %w.pod, "{why} pod: skipped, never touched");
        w.shared.metrics.pods_skipped.inc();
        w.report(desired.borrow().revision, |r| {
            r.state = PodState::Skipped(why.into())
        });
        while desired.changed().await.is_ok() {}
        w.shared.metrics.pods_skipped.dec();
        return;
    }
    // A pod whose namespace does not exist yet cannot be programmed: its
    // clock starts when the namespace is found (see `Worker::attached`).
    let mut not_running_since: Option<Instant> = None;
    loop {
        let sandbox = desired.borrow().sandbox.clone();
        let resolved = match sandbox {
            Some(s) => Ok(Ok(Some(Held::Sandbox(s)))),
            None => {
                let _permit = w.shared.permits.acquire().await;
                let (resolver, pod) = (w.shared.resolver.clone(), w.pod.clone());
                tokio::task::spawn_blocking(move || resolver.resolve(&pod))
                    .await
                    .map(|r| {
                        r.map(|r| match r {
                            Resolution::Found(p) => Some(Held::Process(p)),
                            Resolution::NotRunning => None,
                            Resolution::HostNetwork => {
                                w.report(desired.borrow().revision, |r| {
                                    r.state = PodState::Skipped(
                                        w.pod.never_touched().unwrap_or("hostNetwork").into(),
                                    )
                                });
                                None
                            }
                        })
                    })
            }
        };
        let revision = desired.borrow().revision;
        match resolved {
            Ok(Ok(Some(held))) => {
                w.shared.metrics.pods_managed.inc();
                let found = not_running_since.take().map(|_| Instant::now());
                let end = w.attached(held, &mut desired, found).await;
                w.shared.metrics.pods_managed.dec();
                match end {
                    End::Stopped => return,
                    End::Replaced => continue,
                    End::Lost => {}
                }
            }
            Ok(Ok(None)) => {
                if w.pod.never_touched().is_none() {
                    not_running_since.get_or_insert_with(Instant::now);
                    w.report(revision, |r| {
                        r.state = PodState::NotRunning;
                        r.error = None;
                        r.sandbox = None;
                    })
                }
            }
            Ok(Err(e)) => w.failed(revision, e.to_string()),
            Err(e) => w.failed(revision, format!("resolver task failed: {e}")),
        }
        tokio::select! {
            _ = tokio::time::sleep(w.shared.opts.retry) => {}
            changed = desired.changed() => if changed.is_err() { return },
        }
    }
}

struct Worker {
    pod: Pod,
    shared: Arc<Shared>,
    report: ReportGuard,
    /// The desired revision last made the kernel's (kept across
    /// attachments, so re-attaching does not count a latency again).
    programmed: AtomicU64,
}

/// Removes the pod's report when its worker ends, however it ends.
struct ReportGuard {
    reports: Arc<Reports>,
    pod: Pod,
}

impl Drop for ReportGuard {
    fn drop(&mut self) {
        self.reports.remove(&self.pod.uid);
    }
}

impl Worker {
    fn report(&self, revision: u64, f: impl FnOnce(&mut PodReport)) {
        let pod = &self.report.pod;
        self.shared.reports.update(
            &pod.uid,
            || PodReport::new(pod, revision),
            |r| {
                r.revision = revision;
                f(r)
            },
        );
    }

    fn failed(&self, revision: u64, error: String) {
        warn!(pod = %self.pod, %error, "reconcile failed");
        self.report(revision, |r| {
            r.state = PodState::Failed;
            r.error = Some(error);
        });
    }

    /// Keeps the held namespace reconciled until the pod goes or the
    /// namespace stops being the pod's. Every descriptor of it (the
    /// reconciler's and the event socket) is closed on return. `found`: when
    /// the namespace appeared, if the worker waited for it (the latency of
    /// programming a new pod is counted from then, not from before its
    /// sandbox existed).
    async fn attached(
        &self,
        mut held: Held,
        desired: &mut watch::Receiver<Desired>,
        found: Option<Instant>,
    ) -> End {
        let opts = &self.shared.opts;
        let revision = desired.borrow().revision;
        // Reports from now on are about this namespace; a sandbox's waits
        // for its first reconcile there.
        let sandbox = held.sandbox_id();
        self.report(revision, |r| {
            if sandbox.is_some() {
                r.state = PodState::Pending;
                r.error = None;
            }
            r.sandbox = sandbox;
        });
        // The sockets pin the namespace: a process's namespace file is
        // closed once they are open (one descriptor fewer per pod); its
        // validity checks use the pid, its start time and the namespace's
        // inode, never this file. A sandbox's descriptor (from linx-cni)
        // is kept with the sandbox.
        let netns = match &mut held {
            Held::Process(p) => std::mem::replace(&mut p.netns, Netns::Pid(p.pid)),
            Held::Sandbox(s) => s.netns.clone(),
        };
        let opened = {
            let _permit = self.shared.permits.acquire().await;
            let ropts = opts.reconcile.clone();
            tokio::task::spawn_blocking(move || {
                let mut rec = Reconciler::new(Socket::open(&netns)?, ropts);
                // After a restart: converge from our marked tables, never flush.
                let adopted = rec.adopt_marked()?;
                rec.follow_events()?;
                Ok::<_, linx_netfilter::Error>((rec, adopted))
            })
            .await
        };
        let (rec, adopted) = match opened {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                self.failed(revision, format!("opening the pod's namespace: {e}"));
                return End::Lost;
            }
            Err(e) => {
                self.failed(revision, format!("opening task failed: {e}"));
                return End::Lost;
            }
        };
        let mut st = State {
            rec: Some(rec),
            watch: Watch::default(),
            failures: 0,
            retry_at: None,
            reconciles: 0,
            pending: None,
            // Changes learned before the namespace existed count from its
            // appearance.
            floor: found,
        };
        st.watch.owned = st.rec.as_ref().map(owned_tables).unwrap_or_default();
        // SAFETY: the descriptor is the event socket of the reconciler in
        // `st`, which always comes back from a reconcile (panics are
        // caught) and outlives this registration: `ready` is declared after
        // `st`, so it is dropped first.
        let ready = match st
            .rec
            .as_ref()
            .and_then(Reconciler::events_fd)
            .map(|fd| unsafe { AsyncFd::register_with_interest(RawFd(fd), Interest::READABLE) })
        {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                self.failed(revision, format!("event socket: {}", e.into_parts().1));
                return End::Lost;
            }
            None => {
                self.failed(revision, "event socket missing".into());
                return End::Lost;
            }
        };
        match &held {
            Held::Process(p) => {
                info!(pod = %self.pod, pid = p.pid, adopted, "holding the pod's network namespace")
            }
            Held::Sandbox(s) => {
                info!(pod = %self.pod, sandbox = %s.container_id, adopted, "holding the sandbox's network namespace")
            }
        }
        let period = opts.resync;
        let mut resync =
            tokio::time::interval_at(Instant::now() + jitter(&self.pod, period), period);
        // Cheap check that the pod's process still owns the namespace, so a
        // pod whose sandbox died is let go without waiting for a reconcile.
        let mut liveness = tokio::time::interval_at(Instant::now() + opts.retry, opts.retry);
        let mut trigger = Some(Trigger::Start);
        // Ends with this hold on the namespace.
        let mut drop_log = crate::drops::Reader::default();
        loop {
            if let Some(t) = trigger.take() {
                if let Some(end) = self.check_held(&held, desired) {
                    return end;
                }
                if let Err(e) = self.reconcile(&mut st, t, desired).await {
                    self.failed(desired.borrow().revision, e);
                    return End::Lost;
                }
                if let Some(drops) = &self.shared.drops {
                    let value = desired.borrow().value.clone();
                    drop_log
                        .ensure(drops, held.netns(), &self.pod, value.as_ref())
                        .await;
                }
            }
            tokio::select! {
                changed = desired.changed() => {
                    if changed.is_err() {
                        return End::Stopped;
                    }
                    trigger = Some(Trigger::Desired);
                }
                guard = ready.readable() => {
                    let Ok(mut guard) = guard else {
                        return End::Lost;
                    };
                    let Some(rec) = st.rec.as_mut() else {
                        return End::Lost;
                    };
                    let watch = &mut st.watch;
                    let drained = rec.drain_events(|ev| {
                        if let Some(t) = watch.on_event(ev) {
                            trigger = Some(t);
                        }
                    });
                    if let Err(e) = drained {
                        // Let go and resolve again: a fresh reconciler and subscription.
                        warn!(pod = %self.pod, error = %e, "event socket failed");
                        return End::Lost;
                    }
                    guard.clear_ready();
                }
                _ = resync.tick() => trigger = Some(Trigger::Periodic),
                _ = liveness.tick() => {
                    if let Some(end) = self.check_held(&held, desired) {
                        return end;
                    }
                }
                _ = sleep_until(st.retry_at), if st.retry_at.is_some() => {
                    st.retry_at = None;
                    trigger = Some(Trigger::Retry);
                }
            }
        }
    }

    /// Whether the held namespace is still the one to use: a sandbox
    /// handed over replaces one found by process, and a sandbox stays
    /// until released or replaced; one found by process stays while its
    /// process lives.
    fn check_held(&self, held: &Held, desired: &watch::Receiver<Desired>) -> Option<End> {
        let current = desired.borrow().sandbox.clone();
        match (held, current) {
            (Held::Process(_), Some(_)) => Some(End::Replaced),
            (Held::Process(p), None) => {
                (!self.shared.resolver.still_valid(p)).then(|| self.let_go(p, desired))
            }
            (Held::Sandbox(s), Some(c)) if Arc::ptr_eq(s, &c) => None,
            (Held::Sandbox(_), _) => Some(End::Replaced),
        }
    }

    fn let_go(&self, held: &PodNetns, desired: &watch::Receiver<Desired>) -> End {
        info!(pod = %self.pod, pid = held.pid, "the pod's process is gone (or its pid reused): letting go of its namespace");
        self.report(desired.borrow().revision, |r| {
            r.state = PodState::NotRunning;
            r.error = None;
        });
        End::Lost
    }

    /// One reconcile on the blocking pool. `Err` only when the worker can
    /// no longer use the reconciler (its task died); kernel errors are
    /// reported and retried with backoff.
    async fn reconcile(
        &self,
        st: &mut State,
        trigger: Trigger,
        desired: &mut watch::Receiver<Desired>,
    ) -> Result<(), String> {
        let want = desired.borrow_and_update().clone();
        if want.revision != self.programmed.load(Ordering::Relaxed) {
            // The earliest change not yet in the kernel starts the clock.
            st.pending = Some(st.pending.map_or(want.learned, |p| p.min(want.learned)));
        }
        let Some(mut rec) = st.rec.take() else {
            return Err("reconciler lost".into());
        };
        let span = info_span!("reconcile", pod = %self.pod, ?trigger, revision = want.revision);
        let joined = {
            let _permit = self.shared.permits.acquire().await;
            let (value, hold) = (want.value.clone(), want.hold);
            tokio::task::spawn_blocking(move || {
                let _e = span.enter();
                let start = std::time::Instant::now();
                let empty = Ruleset::default();
                let value = value.as_deref().unwrap_or(&empty);
                // The reconciler always comes back (its sockets must outlive
                // the worker's readiness registration), even from a panic.
                let res = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    if hold {
                        rec.reconcile_keeping(value)
                    } else {
                        rec.reconcile(value)
                    }
                }));
                (rec, res, start.elapsed())
            })
            .await
        };
        let (rec, res, took) = joined.map_err(|e| format!("reconcile task failed: {e}"))?;
        let done = Instant::now();
        st.watch.owned = owned_tables(&rec);
        st.rec = Some(rec);
        let res = res.map_err(|_| "reconcile panicked".to_string())?;
        let m = &self.shared.metrics;
        m.duration.observe(took.as_secs_f64());
        let result = match &res {
            Ok(o) if o.patch.is_empty() => metrics::Result::Unchanged,
            Ok(_) => metrics::Result::Changed,
            Err(_) => metrics::Result::Error,
        };
        m.reconciles
            .get_or_create(&ReconcileLabels { trigger, result })
            .inc();
        match res {
            Ok(out) => {
                st.applied(&out);
                self.programmed.store(want.revision, Ordering::Relaxed);
                let latency = st
                    .pending
                    .take()
                    .map(|p| done.saturating_duration_since(st.floor.map_or(p, |f| p.max(f))));
                if let Some(l) = latency {
                    m.program_latency.observe(l.as_secs_f64());
                }
                self.applied(&out, trigger, want.revision, st.reconciles, took, latency);
            }
            Err(e) => {
                st.failures += 1;
                let backoff = self
                    .shared
                    .opts
                    .retry
                    .saturating_mul(1 << st.failures.min(6))
                    .min(self.shared.opts.resync);
                st.retry_at = Some(Instant::now() + backoff);
                self.failed(want.revision, e.to_string());
            }
        }
        Ok(())
    }

    fn applied(
        &self,
        out: &Outcome,
        trigger: Trigger,
        revision: u64,
        n: u64,
        took: Duration,
        latency: Option<Duration>,
    ) {
        let m = &self.shared.metrics;
        m.conflicts.inc_by(out.conflicts as u64);
        m.rebases.inc_by(out.rebases as u64);
        if !out.patch.is_empty() {
            m.patch_ops.observe(out.patch.len() as f64);
            info!(pod = %self.pod, ?trigger, ops = out.patch.len(), generation = out.generation, ?took, "applied");
        } else {
            debug!(pod = %self.pod, ?trigger, "already equal");
        }
        self.report(revision, |r| {
            r.state = PodState::Applied;
            r.generation = Some(out.generation);
            r.patch_ops = out.patch.len();
            r.attempts = out.attempts;
            r.reconciles = n;
            r.repairs += u64::from(trigger == Trigger::Foreign && !out.patch.is_empty());
            if latency.is_some() {
                r.program_latency = latency;
            }
            r.error = None;
        });
    }
}

/// The worker's view of its namespace between reconciles.
struct State {
    rec: Option<Reconciler>,
    watch: Watch,
    failures: u32,
    retry_at: Option<Instant>,
    reconciles: u64,
    /// When the earliest change not yet programmed was learned.
    pending: Option<Instant>,
    /// When the namespace appeared, if the worker waited for it.
    floor: Option<Instant>,
}

/// What the worker reads in events between reconciles.
#[derive(Default)]
struct Watch {
    /// Tables we manage there: changes to them by others are repaired.
    owned: BTreeSet<(Family, String)>,
    /// Generations our own commits produced.
    ours: VecDeque<u32>,
    /// An owned table changed in the commit whose generation comes next.
    touched: bool,
}

impl State {
    fn applied(&mut self, out: &Outcome) {
        self.failures = 0;
        self.retry_at = None;
        self.reconciles += 1;
        // The reconcile accounted for every event before its commit.
        self.watch.touched = false;
        if self.watch.ours.len() == OWN_GENERATIONS {
            self.watch.ours.pop_front();
        }
        self.watch.ours.push_back(out.generation);
    }
}

impl Watch {
    /// Whether an event calls for a reconcile.
    fn on_event(&mut self, ev: &Event) -> Option<Trigger> {
        match ev {
            Event::Object { family, table, .. } => {
                if self.owned.iter().any(|(f, t)| f == family && t == table) {
                    self.touched = true;
                }
                None
            }
            Event::Generation { id, .. } => {
                let foreign = std::mem::take(&mut self.touched) && !self.ours.contains(id);
                foreign.then_some(Trigger::Foreign)
            }
            Event::Resync => Some(Trigger::Resync),
        }
    }
}

fn owned_tables(rec: &Reconciler) -> BTreeSet<(Family, String)> {
    rec.managed().cloned().collect()
}

/// A descriptor owned elsewhere (the reconciler's event socket), for
/// readiness only.
struct RawFd(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for RawFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A stable per-pod offset (up to a quarter period), so periodic resyncs of
/// many pods do not all land at once.
fn jitter(pod: &Pod, period: Duration) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pod.uid.hash(&mut h);
    let quarter = period.as_millis() as u64 / 4;
    period + Duration::from_millis(h.finish() % quarter.max(1))
}
