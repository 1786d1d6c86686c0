//! FirewallTraces, run by the agent on the traced pod's node.
//!
//! Every agent watches FirewallTraces; the one whose node runs the pod
//! takes a trace: it checks it ([`decide`]: a pod of the trace's own
//! namespace, not hostNetwork, a valid match), runs the engine's trace
//! session in the pod's network namespace on a blocking thread (the
//! session's marking table is owned by its socket, so even a SIGKILLed
//! agent leaves no tracing rule behind), maps each step back to the
//! FirewallRuleset, rule index and line:column it came from, and writes
//! the result to the trace's status (at most once a second while it runs,
//! and when it ends). A trace this agent did not start but finds
//! `Running` was cut short by a restart: it is marked failed, not rerun.
//! Deleting a trace stops it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use linx_crds::trace::{
    limits, reasons, FirewallTrace, StepKind, TracePhase, TraceStep, TracedPacket,
};
use linx_crds::watch::backoff;
use linx_crds::FirewallTraceStatus;
use linx_netfilter::trace::{Next, PacketPath, Session, SessionConfig, TraceError, TraceKind};
use serde_json::json;
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{info, warn};

use crate::pod::Pod;
use crate::resolve::{NetnsResolver, Resolution};
use crate::rulesets::RulesetPolicy;
use crate::snapshot::Snapshot;

/// Traces running at once on one node, unless told otherwise; more wait.
pub const CONCURRENCY: usize = 32;

/// Settings of the trace runner.
#[derive(Clone, Debug)]
pub struct TraceOptions {
    pub node: String,
    /// Traces running at once on this node; more wait their turn.
    pub concurrency: usize,
}

/// What to do with one trace.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Not this node's, already finished, or already running here.
    Ignore,
    Start(Pod),
    Fail {
        reason: &'static str,
        message: String,
    },
}

/// Whether this node's agent (running the traces in `running`, with
/// `pods`) takes `t`.
pub fn decide(t: &FirewallTrace, pods: &[Pod], running: bool) -> Decision {
    let phase = t.status.as_ref().and_then(|s| s.phase);
    if phase.is_some_and(TracePhase::is_finished) || running {
        return Decision::Ignore;
    }
    let ns = t.namespace().unwrap_or_default();
    let (pod_ns, name) = t.spec.pod_ref();
    let pod_ns = pod_ns.unwrap_or(&ns);
    let Some(pod) = pods
        .iter()
        .find(|p| p.namespace == pod_ns && p.name == name)
    else {
        return Decision::Ignore;
    };
    let fail = |reason, message| Decision::Fail { reason, message };
    if pod_ns != ns {
        return fail(
            reasons::OTHER_NAMESPACE,
            format!(
                "pod {pod_ns}/{name} is not in namespace {ns}: a FirewallTrace traces pods of its own namespace only"
            ),
        );
    }
    if phase == Some(TracePhase::Running) {
        return fail(
            reasons::AGENT_RESTARTED,
            "the agent restarted while tracing; create the trace again".into(),
        );
    }
    if pod.never_touched().is_some() {
        return fail(
            reasons::HOST_NETWORK,
            format!(
                "pod {ns}/{name} uses its node's network namespace (hostNetwork): Linx neither changes nor traces it"
            ),
        );
    }
    if let Err(e) = t.spec.check_match() {
        return fail(reasons::INVALID_MATCH, e);
    }
    Decision::Start(pod.clone())
}

/// A trace this agent took; setting the flag stops its session.
struct Running {
    cancel: Arc<AtomicBool>,
}

/// Runs until the task is dropped.
pub async fn run(
    client: Client,
    opts: TraceOptions,
    resolver: Arc<dyn NetnsResolver>,
    mut snap: watch::Receiver<Arc<Snapshot>>,
) {
    let api: Api<FirewallTrace> = Api::all(client.clone());
    let (store, writer) = reflector::store();
    let events = backoff(watcher(api, watcher::Config::default()))
        .reflect(writer)
        .touched_objects();
    let mut events = std::pin::pin!(events);
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    // Traces this agent took, running or finished, until they leave the
    // store: a finished one whose last write the store has not seen yet
    // still reads `Running` there, and must not be taken for one a
    // restart cut short (it was, under load: `Completed` overwritten by
    // `AgentRestarted`).
    let mut running: HashMap<String, Running> = HashMap::new();
    // Traces are taken once the agent knows its pods.
    if snap.changed().await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            e = events.next() => match e {
                Some(Err(e)) => warn!(error = %e, "FirewallTrace watch failed; retrying"),
                Some(Ok(_)) => {}
                None => return,
            },
            r = snap.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        let current = snap.borrow().clone();
        step(
            &client,
            &opts,
            &resolver,
            &snap,
            &store,
            &current,
            &permits,
            &mut running,
        )
        .await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn step(
    client: &Client,
    opts: &TraceOptions,
    resolver: &Arc<dyn NetnsResolver>,
    snap: &watch::Receiver<Arc<Snapshot>>,
    store: &Store<FirewallTrace>,
    current: &Snapshot,
    permits: &Arc<Semaphore>,
    running: &mut HashMap<String, Running>,
) {
    let traces = store.state();
    let live: HashSet<String> = traces.iter().filter_map(|t| t.uid()).collect();
    // Deleted traces stop.
    running.retain(|uid, r| {
        let keep = live.contains(uid);
        if !keep {
            r.cancel.store(true, Ordering::SeqCst);
        }
        keep
    });
    for t in traces {
        let Some(uid) = t.uid() else { continue };
        let api: Api<FirewallTrace> =
            Api::namespaced(client.clone(), &t.namespace().unwrap_or_default());
        match decide(&t, &current.pods, running.contains_key(&uid)) {
            Decision::Ignore => {}
            Decision::Fail { reason, message } => {
                info!(trace = %format!("{}/{}", t.namespace().unwrap_or_default(), t.name_any()), reason, %message, "trace refused");
                let status = finished(
                    t.status.clone().unwrap_or_default(),
                    &opts.node,
                    TracePhase::Failed,
                    reason,
                    message,
                );
                if let Err(e) = write(&api, &t.name_any(), &status).await {
                    warn!(error = %e, "writing a trace's status failed");
                }
            }
            Decision::Start(pod) => {
                let cancel = Arc::new(AtomicBool::new(false));
                let job = Job {
                    api,
                    name: t.name_any(),
                    trace: t.as_ref().clone(),
                    pod,
                    node: opts.node.clone(),
                    resolver: resolver.clone(),
                    snap: snap.clone(),
                    cancel: cancel.clone(),
                };
                let permits = permits.clone();
                tokio::spawn(async move {
                    let Ok(_permit) = permits.acquire_owned().await else {
                        return;
                    };
                    job.run().await;
                });
                running.insert(uid, Running { cancel });
            }
        }
    }
}

/// One trace being run.
struct Job {
    api: Api<FirewallTrace>,
    name: String,
    trace: FirewallTrace,
    pod: Pod,
    node: String,
    resolver: Arc<dyn NetnsResolver>,
    snap: watch::Receiver<Arc<Snapshot>>,
    cancel: Arc<AtomicBool>,
}

/// How a session ended.
enum End {
    Count,
    Timeout,
    Cancelled,
}

impl Job {
    async fn run(self) {
        let now = now();
        let mut status = FirewallTraceStatus {
            node: Some(self.node.clone()),
            start_time: Some(now.clone()),
            ..Default::default()
        };
        status.enter(
            TracePhase::Running,
            "Tracing",
            format!("tracing pod {} on node {}", self.pod, self.node),
            &now,
        );
        if let Err(e) = write(&self.api, &self.name, &status).await {
            warn!(trace = %self.name, error = %e, "writing a trace's status failed");
        }
        let (reason, message) = match self.session(&mut status).await {
            Ok(End::Count) => (
                reasons::COUNT_REACHED,
                format!("{} packet(s) traced", status.packet_count),
            ),
            Ok(End::Timeout) => (
                reasons::TIMED_OUT,
                format!(
                    "{} packet(s) traced in {} s",
                    status.packet_count,
                    self.trace.spec.timeout_seconds()
                ),
            ),
            Ok(End::Cancelled) => return,
            Err((reason, message)) => {
                let s = finished(status, &self.node, TracePhase::Failed, reason, message);
                if let Err(e) = write(&self.api, &self.name, &s).await {
                    warn!(trace = %self.name, error = %e, "writing a trace's status failed");
                }
                return;
            }
        };
        let s = finished(status, &self.node, TracePhase::Completed, reason, message);
        if let Err(e) = write(&self.api, &self.name, &s).await {
            warn!(trace = %self.name, error = %e, "writing a trace's status failed");
        }
    }

    /// Runs the session, writing packets to `status` as they come.
    async fn session(
        &self,
        status: &mut FirewallTraceStatus,
    ) -> Result<End, (&'static str, String)> {
        let (resolver, pod) = (self.resolver.clone(), self.pod.clone());
        let resolved = tokio::task::spawn_blocking(move || resolver.resolve(&pod))
            .await
            .map_err(|e| (reasons::TRACE_FAILED, e.to_string()))?
            .map_err(|e| (reasons::TRACE_FAILED, e.to_string()))?;
        let held = match resolved {
            Resolution::Found(h) => h,
            Resolution::NotRunning => {
                return Err((
                    reasons::POD_NOT_RUNNING,
                    format!("no process of pod {} runs on node {}", self.pod, self.node),
                ))
            }
            Resolution::HostNetwork => {
                return Err((
                    reasons::HOST_NETWORK,
                    format!("pod {} uses its node's network namespace", self.pod),
                ))
            }
        };
        let spec = &self.trace.spec;
        let count = spec.count() as usize;
        let cfg = SessionConfig {
            count: Some(count),
            timeout: Some(Duration::from_secs(spec.timeout_seconds().into())),
            ..SessionConfig::new(spec.matching.clone())
        };
        let (tx, mut rx) = mpsc::channel::<PacketPath>(limits::PACKETS as usize);
        let cancel = self.cancel.clone();
        let session = tokio::task::spawn_blocking(move || -> Result<bool, TraceError> {
            let mut s = Session::start(&held.netns, &cfg)?;
            let mut emitted = 0;
            let done = loop {
                if cancel.load(Ordering::SeqCst) {
                    break false;
                }
                match s.next(Duration::from_millis(200))? {
                    Next::Path(p) => {
                        emitted += 1;
                        if tx.blocking_send(*p).is_err() {
                            break false;
                        }
                    }
                    Next::Pending => {}
                    Next::Done => break true,
                }
            };
            s.stop()?;
            drop(held);
            Ok(done && emitted >= count)
        });
        let mut last_write = tokio::time::Instant::now();
        while let Some(p) = rx.recv().await {
            let packet = {
                let snap = self.snap.borrow();
                packet_status(&p, &snap.policy, &self.pod)
            };
            status.packet_count += 1;
            status.packets.push(packet);
            if last_write.elapsed() >= Duration::from_secs(1) {
                last_write = tokio::time::Instant::now();
                if let Err(e) = write(&self.api, &self.name, status).await {
                    warn!(trace = %self.name, error = %e, "writing a trace's status failed");
                }
            }
        }
        match session.await {
            Ok(Ok(_)) if self.cancel.load(Ordering::SeqCst) => Ok(End::Cancelled),
            Ok(Ok(true)) => Ok(End::Count),
            Ok(Ok(false)) => Ok(End::Timeout),
            Ok(Err(TraceError::Match(d))) => Err((reasons::INVALID_MATCH, d.to_string())),
            Ok(Err(e @ TraceError::NotAMatch { .. })) => {
                Err((reasons::INVALID_MATCH, e.to_string()))
            }
            Ok(Err(e)) => Err((reasons::TRACE_FAILED, e.to_string())),
            Err(e) => Err((reasons::TRACE_FAILED, format!("trace task failed: {e}"))),
        }
    }
}

/// A path as the status holds it: each step named by the FirewallRuleset
/// owning its table in the pod, with the rule's source position.
pub fn packet_status(p: &PacketPath, policy: &RulesetPolicy, pod: &Pod) -> TracedPacket {
    let owners = policy.owners(pod);
    let mut packet = String::new();
    for (key, dev) in [("iif", &p.iif), ("oif", &p.oif)] {
        if let Some(d) = dev {
            match &d.name {
                Some(n) => packet.push_str(&format!("{key} {n:?} ")),
                None => packet.push_str(&format!("{key} {} ", d.index)),
            }
        }
    }
    packet.push_str(&p.headers.to_string());
    let packet = packet.trim_end().to_owned();
    let steps = p.steps.iter().map(|s| {
        let owner = owners
            .iter()
            .find(|o| o.table.family == s.family && o.table.name == s.table);
        let origins = owner.map(|o| &o.enforced.rules.origins);
        let verdict = s.verdict.as_ref().map(linx_netfilter::print::verdict);
        let (kind, source) = match s.kind {
            TraceKind::Policy => (
                StepKind::Policy,
                origins.and_then(|o| o.chain(s.family, &s.table, &s.chain)),
            ),
            TraceKind::Return => (StepKind::Return, None),
            _ => (
                StepKind::Rule,
                origins.and_then(|o| o.rule(s.family, &s.table, &s.chain, s.index?)),
            ),
        };
        TraceStep {
            kind,
            ruleset: owner.map(|o| o.compiled.name.clone()),
            table: format!("{} {}", s.family.name(), s.table),
            chain: s.chain.clone(),
            rule: (kind == StepKind::Rule)
                .then_some(s.index)
                .flatten()
                .map(|i| i as u32),
            source: source.map(|s| s.to_string()),
            text: s.text.as_ref().map(|t| cut(t, limits::TEXT_LEN)),
            verdict,
        }
    });
    let all: Vec<TraceStep> = steps.collect();
    let omitted = all.len().saturating_sub(limits::STEPS) as u32;
    // Keep the deciding step when it is beyond the bound: it answers "why".
    let mut decided_by = p.decided_by.map(|i| i as u32);
    let mut kept: Vec<TraceStep> = all.iter().take(limits::STEPS).cloned().collect();
    if let Some(d) = p.decided_by.filter(|d| *d >= limits::STEPS) {
        kept.pop();
        kept.push(all[d].clone());
        decided_by = Some(limits::STEPS as u32 - 1);
    }
    TracedPacket {
        packet,
        verdict: p.verdict.as_ref().map(linx_netfilter::print::verdict),
        decided_by,
        steps: kept,
        steps_omitted: omitted,
        incomplete: p.incomplete,
    }
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// `status` ended in `phase`.
fn finished(
    mut status: FirewallTraceStatus,
    node: &str,
    phase: TracePhase,
    reason: &str,
    message: String,
) -> FirewallTraceStatus {
    status.enter(phase, reason, message, &now());
    status.node = Some(node.to_owned());
    status
}

async fn write(
    api: &Api<FirewallTrace>,
    name: &str,
    status: &FirewallTraceStatus,
) -> Result<(), kube::Error> {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use linx_crds::FirewallTraceSpec;

    fn trace(ns: &str, pod: &str, matching: &str) -> FirewallTrace {
        let mut t = FirewallTrace::new(
            "t",
            FirewallTraceSpec {
                pod: pod.into(),
                matching: matching.into(),
                ..Default::default()
            },
        );
        t.metadata.namespace = Some(ns.into());
        t
    }

    fn pod(ns: &str, name: &str, host_network: bool) -> Pod {
        Pod {
            uid: format!("uid-{ns}-{name}"),
            namespace: ns.into(),
            name: name.into(),
            host_network,
            ..Default::default()
        }
    }

    #[test]
    fn the_node_of_the_pod_takes_the_trace_and_refuses_what_it_must() {
        let pods = [
            pod("a", "web", false),
            pod("b", "db", false),
            pod("a", "host", true),
        ];
        assert_eq!(
            decide(&trace("a", "web", "tcp dport 22"), &pods, false),
            Decision::Start(pods[0].clone())
        );
        assert_eq!(
            decide(&trace("a", "web", "tcp dport 22"), &pods, true),
            Decision::Ignore
        );
        assert_eq!(
            decide(&trace("a", "elsewhere", ""), &pods, false),
            Decision::Ignore,
            "another node's pod"
        );
        let reason = |d| match d {
            Decision::Fail { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(decide(&trace("a", "b/db", ""), &pods, false)),
            reasons::OTHER_NAMESPACE
        );
        assert_eq!(
            reason(decide(&trace("a", "host", ""), &pods, false)),
            reasons::HOST_NETWORK
        );
        assert_eq!(
            reason(decide(
                &trace("a", "web", "tcp dport 22 accept"),
                &pods,
                false
            )),
            reasons::INVALID_MATCH
        );
        let mut restarted = trace("a", "web", "");
        restarted.status = Some(FirewallTraceStatus {
            phase: Some(TracePhase::Running),
            ..Default::default()
        });
        assert_eq!(
            reason(decide(&restarted, &pods, false)),
            reasons::AGENT_RESTARTED
        );
        let mut done = trace("a", "web", "");
        done.status = Some(FirewallTraceStatus {
            phase: Some(TracePhase::Completed),
            ..Default::default()
        });
        assert_eq!(decide(&done, &pods, false), Decision::Ignore);
    }
}
