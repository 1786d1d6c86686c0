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

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use linx_netfilter::events::{Event, EventStream, Events};
use linx_netfilter::reconcile::{Outcome, Reconciler};
use linx_netfilter::{Family, Ruleset, Socket};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn};

use crate::controller::Options;
use crate::metrics::{self, Metrics, ReconcileLabels, Trigger};
use crate::pod::Pod;
use crate::report::{PodReport, PodState, Reports};
use crate::resolve::{NetnsResolver, PodNetns, Resolution};

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
}

/// How a worker's hold on a namespace ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The pod left the node (or the controller stopped).
    Stopped,
    /// The namespace is no longer the pod's, or unusable: resolve again.
    Lost,
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
    };
    w.report(desired.borrow().revision, |r| r.state = PodState::Pending);
    if w.pod.host_network {
        info!(pod = %w.pod, "hostNetwork pod: skipped, never touched");
        w.shared.metrics.pods_skipped.inc();
        w.report(desired.borrow().revision, |r| {
            r.state = PodState::Skipped("hostNetwork".into())
        });
        while desired.changed().await.is_ok() {}
        w.shared.metrics.pods_skipped.dec();
        return;
    }
    loop {
        let resolved = {
            let _permit = w.shared.permits.acquire().await;
            let (resolver, pod) = (w.shared.resolver.clone(), w.pod.clone());
            tokio::task::spawn_blocking(move || resolver.resolve(&pod)).await
        };
        let revision = desired.borrow().revision;
        match resolved {
            Ok(Ok(Resolution::Found(held))) => {
                w.shared.metrics.pods_managed.inc();
                let end = w.attached(held, &mut desired).await;
                w.shared.metrics.pods_managed.dec();
                if end == End::Stopped {
                    return;
                }
            }
            Ok(Ok(Resolution::NotRunning)) => w.report(revision, |r| {
                r.state = PodState::NotRunning;
                r.error = None;
            }),
            Ok(Ok(Resolution::HostNetwork)) => w.report(revision, |r| {
                r.state = PodState::Skipped("hostNetwork".into())
            }),
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
    /// namespace stops being the pod's. Every descriptor of it (the held
    /// file, the reconciler's and the event socket) is closed on return.
    async fn attached(&self, held: PodNetns, desired: &mut watch::Receiver<Desired>) -> End {
        let opts = &self.shared.opts;
        let revision = desired.borrow().revision;
        let opened = {
            let _permit = self.shared.permits.acquire().await;
            let (netns, ropts) = (held.netns.clone(), opts.reconcile.clone());
            tokio::task::spawn_blocking(move || {
                let mut rec = Reconciler::new(Socket::open(&netns)?, ropts);
                // After a restart: converge from our marked tables, never flush.
                let adopted = rec.adopt_marked()?;
                let events = Events::subscribe(&netns)?;
                Ok::<_, linx_netfilter::Error>((rec, adopted, events))
            })
            .await
        };
        let (rec, adopted, events) = match opened {
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
        let mut events = match events.into_stream() {
            Ok(s) => s,
            Err(e) => {
                self.failed(revision, format!("event stream: {e}"));
                return End::Lost;
            }
        };
        info!(pod = %self.pod, pid = held.pid, adopted, "holding the pod's network namespace");
        let mut st = State {
            rec: Some(rec),
            owned: BTreeSet::new(),
            ours: VecDeque::new(),
            touched: false,
            failures: 0,
            retry_at: None,
            reconciles: 0,
        };
        st.owned = st.rec.as_ref().map(owned_tables).unwrap_or_default();
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
                if !self.shared.resolver.still_valid(&held) {
                    return self.let_go(&held, desired);
                }
                if let Err(e) = self.reconcile(&mut st, t, desired).await {
                    self.failed(desired.borrow().revision, e);
                    return End::Lost;
                }
                if let Some(drops) = &self.shared.drops {
                    let value = desired.borrow().value.clone();
                    drop_log
                        .ensure(drops, &held.netns, &self.pod, value.as_ref())
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
                ev = events.next() => match ev {
                    Some(Ok(ev)) => trigger = st.on_event(ev),
                    Some(Err(e)) => {
                        warn!(pod = %self.pod, error = %e, "event stream failed: subscribing again");
                        match resubscribe(&held).await {
                            Some(s) => events = s,
                            None => return End::Lost,
                        }
                        trigger = Some(Trigger::Resync);
                    }
                    None => return End::Lost,
                },
                _ = resync.tick() => trigger = Some(Trigger::Periodic),
                _ = liveness.tick() => {
                    if !self.shared.resolver.still_valid(&held) {
                        return self.let_go(&held, desired);
                    }
                }
                _ = sleep_until(st.retry_at), if st.retry_at.is_some() => {
                    st.retry_at = None;
                    trigger = Some(Trigger::Retry);
                }
            }
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
                let res = if hold {
                    rec.reconcile_keeping(value)
                } else {
                    rec.reconcile(value)
                };
                (rec, res, start.elapsed())
            })
            .await
        };
        let (rec, res, took) = joined.map_err(|e| format!("reconcile task failed: {e}"))?;
        st.owned = owned_tables(&rec);
        st.rec = Some(rec);
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
                self.applied(&out, trigger, want.revision, st.reconciles, took);
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

    fn applied(&self, out: &Outcome, trigger: Trigger, revision: u64, n: u64, took: Duration) {
        let m = &self.shared.metrics;
        m.conflicts.inc_by(out.conflicts as u64);
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
            r.error = None;
        });
    }
}

/// The worker's view of its namespace between reconciles.
struct State {
    rec: Option<Reconciler>,
    /// Tables we manage there: changes to them by others are repaired.
    owned: BTreeSet<(Family, String)>,
    /// Generations our own commits produced.
    ours: VecDeque<u32>,
    /// An owned table changed in the commit whose generation comes next.
    touched: bool,
    failures: u32,
    retry_at: Option<Instant>,
    reconciles: u64,
}

impl State {
    fn applied(&mut self, out: &Outcome) {
        self.failures = 0;
        self.retry_at = None;
        self.reconciles += 1;
        if self.ours.len() == OWN_GENERATIONS {
            self.ours.pop_front();
        }
        self.ours.push_back(out.generation);
    }

    /// Whether an event calls for a reconcile.
    fn on_event(&mut self, ev: Event) -> Option<Trigger> {
        match ev {
            Event::Object { family, table, .. } => {
                if self.owned.contains(&(family, table)) {
                    self.touched = true;
                }
                None
            }
            Event::Generation { id, .. } => {
                let foreign = std::mem::take(&mut self.touched) && !self.ours.contains(&id);
                foreign.then_some(Trigger::Foreign)
            }
            Event::Resync => Some(Trigger::Resync),
        }
    }
}

fn owned_tables(rec: &Reconciler) -> BTreeSet<(Family, String)> {
    rec.managed().cloned().collect()
}

async fn resubscribe(held: &PodNetns) -> Option<EventStream> {
    let netns = held.netns.clone();
    let ev = tokio::task::spawn_blocking(move || Events::subscribe(&netns))
        .await
        .ok()?
        .ok()?;
    ev.into_stream().ok()
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
