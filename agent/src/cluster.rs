//! The Kubernetes adapter: the pods of this node (field selector
//! `spec.nodeName=<node>`), every FirewallRuleset and every
//! FirewallAddressSet (the elements the operator resolved for sets with a
//! source; never the cluster's pods), watched into stores; on each change
//! the targets are recomputed under [`RulesetPolicy`] and given to the
//! [`NodeController`]. The node's
//! `FirewallNodeReport` is written from the controller's reports by
//! server-side apply, coalesced (at most one write per interval, only when
//! its content changed).
//!
//! When the API server is unreachable the watchers retry with backoff and
//! nothing is applied: every worker keeps enforcing the last desired value.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod as KubePod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::Client;
use linx_cni::protocol::PodRef;
use linx_cni::record::StartRecord;
use linx_crds::report::{
    ProgramLatency, AGENT_FIELD_MANAGER, MAX_FAILURES, MAX_MESSAGE_LEN, MAX_PODS, MAX_REPORT_BYTES,
    MAX_UNPROTECTED,
};
use linx_crds::watch::backoff;
use linx_crds::{
    FirewallAddressSet, FirewallNodeReport, FirewallRuleset, PodFailure, PodRuleset, PodStarts,
    RulesetReport, UnprotectedPod,
};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::addresses::AddressChunks;
use crate::cni::{Listener, Lookup};
use crate::controller::NodeController;
use crate::desired::{targets, Target};
use crate::drops::{Drops, PodRules};
use crate::pod::Pod;
use crate::report::{PodReport, PodState, Reports};
use crate::rulesets::RulesetPolicy;
use crate::snapshot::Snapshot;

/// Settings of the adapter.
#[derive(Clone, Debug)]
pub struct KubeOptions {
    /// This node's name (the downward API's `spec.nodeName`).
    pub node: String,
    /// At most one report write per this interval.
    pub report_interval: Duration,
    /// Where `linx-cni` keeps its start records, when the agent serves it:
    /// the report then says how pods started (see `docs/cni.md`).
    pub cni_state_dir: Option<PathBuf>,
    /// Set the `netfilter.linx.dev/firewall` condition of pods that
    /// declare it as a readiness gate (see [`crate::readiness`]).
    pub readiness_gate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("Kubernetes client configuration: {0}")]
    Config(#[source] kube::Error),
    #[error("writing FirewallNodeReport {node}: {source}")]
    Report {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading Node {node}: {source}")]
    Node {
        node: String,
        #[source]
        source: kube::Error,
    },
}

/// What the agent needs of a Pod object; `None` without a UID, name or
/// namespace, or once the pod has terminated (its sandbox is gone).
pub fn pod_from(p: &KubePod) -> Option<Pod> {
    let m = &p.metadata;
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    Some(Pod {
        uid: m.uid.clone()?,
        namespace: m.namespace.clone()?,
        name: m.name.clone()?,
        labels: m.labels.clone().unwrap_or_default(),
        host_network: p
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false),
    })
}

/// The pods of a store, in a stable order (by UID).
pub fn pods_of(store: &Store<KubePod>) -> Vec<Pod> {
    let mut pods: Vec<Pod> = store.state().iter().filter_map(|p| pod_from(p)).collect();
    pods.sort_by(|a, b| a.uid.cmp(&b.uid));
    pods
}

/// This node's report: one entry per FirewallRuleset selecting at least
/// one (non-host-network) pod. A pod counts as applied or failed only when
/// its worker's report is about the pod's current desired revision. With
/// `starts` (the start records of `linx-cni`, when the agent serves it),
/// also how the selected pods started.
pub fn node_report(
    node: &str,
    snap: &Snapshot,
    reports: &BTreeMap<String, PodReport>,
    starts: Option<&[StartRecord]>,
) -> FirewallNodeReport {
    node_report_with(node, snap, reports, starts, None)
}

/// [`node_report`], with each entry's pods and, from `drops`, the
/// would-be drops of the generation enforced.
pub fn node_report_with(
    node: &str,
    snap: &Snapshot,
    reports: &BTreeMap<String, PodReport>,
    starts: Option<&[StartRecord]>,
    drops: Option<&Drops>,
) -> FirewallNodeReport {
    let mut pods: BTreeMap<(String, String), Vec<(String, PodRuleset)>> = BTreeMap::new();
    let mut entries: BTreeMap<(String, String), RulesetReport> = BTreeMap::new();
    let mut failures: BTreeMap<(String, String), Vec<PodFailure>> = BTreeMap::new();
    let mut latencies: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for pod in snap.pods.iter().filter(|p| p.never_touched().is_none()) {
        let current = reports
            .get(&pod.uid)
            .filter(|r| snap.revisions.get(&pod.uid) == Some(&r.revision));
        for c in snap.policy.selecting(pod) {
            let key = (pod.namespace.clone(), c.name.clone());
            let e = entries.entry(key.clone()).or_insert_with(|| RulesetReport {
                namespace: pod.namespace.clone(),
                name: c.name.clone(),
                uid: c.uid.clone(),
                generation: c.generation,
                enforced_generation: c
                    .enforced
                    .as_ref()
                    .map(|e| e.generation)
                    .filter(|g| *g != c.generation),
                message: c.note().map(|m| truncate(m, MAX_MESSAGE_LEN)),
                ..Default::default()
            });
            e.matched_pods += 1;
            let state = current.map_or(PodState::Pending, |r| r.state.clone());
            pods.entry(key.clone()).or_default().push((
                pod.uid.clone(),
                PodRuleset {
                    pod: pod.name.clone(),
                    state: state.name().to_owned(),
                    applied_generation: c
                        .enforced
                        .as_ref()
                        .filter(|_| state == PodState::Applied)
                        .map(|e| e.generation),
                    would_drop: 0,
                },
            ));
            match (current.map(|r| &r.state), &c.value) {
                // The current generation does not compile: never applied
                // (the operator reports why; the entry names what is
                // enforced instead).
                (_, Err(_)) => {}
                (Some(PodState::Applied), Ok(_)) => {
                    e.applied_pods += 1;
                    if let Some(l) = current.and_then(|r| r.program_latency) {
                        let ms = i64::try_from(l.as_millis()).unwrap_or(i64::MAX);
                        latencies.entry(key).or_default().push(ms);
                    }
                }
                (Some(PodState::Failed), Ok(_)) => {
                    e.failed_pods += 1;
                    let message = current.and_then(|r| r.error.clone()).unwrap_or_default();
                    failures.entry(key).or_default().push(PodFailure {
                        node: node.to_string(),
                        pod: pod.name.clone(),
                        message: truncate(message, MAX_MESSAGE_LEN),
                    });
                }
                _ => {}
            }
        }
    }
    for (key, mut l) in latencies {
        if let Some(e) = entries.get_mut(&key) {
            e.program_latency = ProgramLatency::of(&mut l);
        }
    }
    for (key, mut f) in failures {
        f.sort();
        f.truncate(MAX_FAILURES);
        if let Some(e) = entries.get_mut(&key) {
            e.failures = f;
        }
    }
    for (key, mut list) in pods {
        let Some(e) = entries.get_mut(&key) else {
            continue;
        };
        let enforced = snap
            .policy
            .find(&key.0, &key.1)
            .and_then(|c| c.enforced.as_ref().map(|x| x.generation));
        let counts = drops
            .and_then(|d| d.counts(&e.uid))
            .filter(|c| Some(c.generation) == enforced);
        if let Some(c) = &counts {
            e.would_drop_total = c.would_drop_total;
            e.would_drop = c.top();
            for (uid, p) in &mut list {
                p.would_drop = c.pods.get(uid).copied().unwrap_or(0);
            }
        }
        list.sort_by(|a, b| a.1.pod.cmp(&b.1.pod));
        e.pods = list.into_iter().take(MAX_PODS).map(|(_, p)| p).collect();
    }
    let mut report = FirewallNodeReport::for_node(node, entries.into_values().collect());
    report.spec.pod_starts = starts.map(|r| pod_starts(snap, reports, r));
    // The per-field caps bound each part; this bounds the whole object.
    report.spec.fit(MAX_REPORT_BYTES);
    if let Some(t) = &report.spec.truncated {
        warn!(cut = ?t, "node report over {MAX_REPORT_BYTES} bytes: cut");
    }
    report
}

/// Whether a pod's worker says its firewall equals its current desired value.
fn is_applied(snap: &Snapshot, reports: &BTreeMap<String, PodReport>, uid: &str) -> bool {
    reports.get(uid).is_some_and(|r| {
        r.state == PodState::Applied && snap.revisions.get(uid) == Some(&r.revision)
    })
}

/// How the selected pods started, from `linx-cni`'s records (matched by
/// pod UID, or by name when the runtime passed no UID; the latest record
/// of a pod wins).
fn pod_starts(
    snap: &Snapshot,
    reports: &BTreeMap<String, PodReport>,
    records: &[StartRecord],
) -> PodStarts {
    let mut by_uid: HashMap<&str, &StartRecord> = HashMap::new();
    let mut by_name: HashMap<(&str, &str), &StartRecord> = HashMap::new();
    let mut sorted: Vec<&StartRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.at);
    for r in sorted {
        match &r.pod.uid {
            Some(uid) => by_uid.insert(uid, r),
            None => by_name.insert((&r.pod.namespace, &r.pod.name), r),
        };
    }
    let mut out = PodStarts::default();
    for pod in snap.pods.iter().filter(|p| p.never_touched().is_none()) {
        if snap.policy.selecting(pod).next().is_none() {
            continue;
        }
        let rec = by_uid
            .get(pod.uid.as_str())
            .or_else(|| by_name.get(&(pod.namespace.as_str(), pod.name.as_str())));
        match rec {
            None => out.unobserved += 1,
            Some(r) if r.protected => out.protected += 1,
            Some(r) => {
                out.unprotected_count += 1;
                out.unprotected.push(UnprotectedPod {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    enforced: is_applied(snap, reports, &pod.uid),
                    reason: truncate(r.reason.clone().unwrap_or_default(), MAX_MESSAGE_LEN),
                });
            }
        }
    }
    out.unprotected.sort();
    out.unprotected.truncate(MAX_UNPROTECTED);
    out
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Writes the report by server-side apply (forced: the agent is the only
/// writer of its node's report).
pub async fn write_report(
    api: &Api<FirewallNodeReport>,
    report: &FirewallNodeReport,
) -> Result<(), kube::Error> {
    let name = report.spec.node_name.as_str();
    api.patch(
        name,
        &PatchParams::apply(AGENT_FIELD_MANAGER).force(),
        &Patch::Apply(report),
    )
    .await
    .map(|_| ())
}

/// Runs the adapter until `shutdown` completes, then stops the controller
/// (tables are left in place).
pub async fn run(
    client: Client,
    opts: KubeOptions,
    mut node: NodeController,
    cni: Option<Listener>,
    shutdown: impl Future<Output = ()>,
) {
    let pods_api: Api<KubePod> = Api::all(client.clone());
    let rulesets_api: Api<FirewallRuleset> = Api::all(client.clone());
    let (pod_store, pod_writer) = reflector::store();
    let (rs_store, rs_writer) = reflector::store();
    let pod_cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", opts.node));
    let pods = changes(reflector::reflector(
        pod_writer,
        backoff(watcher(pods_api.clone(), pod_cfg)),
    ))
    .map(Input::Pods);
    let rulesets = changes(reflector::reflector(
        rs_writer,
        backoff(watcher(rulesets_api, watcher::Config::default())),
    ))
    .map(Input::Rulesets);
    // The elements resolved for sets with a source: the agent's only view
    // of pods beyond its node.
    let addresses_api: Api<FirewallAddressSet> = Api::all(client.clone());
    let addresses =
        backoff(watcher(addresses_api, watcher::Config::default())).map(Input::AddressSets);
    let mut events = std::pin::pin!(futures::stream::select(
        futures::stream::select(pods, rulesets),
        addresses
    ));

    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));
    let drops = node.drops();
    // The policy once both lists are complete, for linx-cni's requests.
    let (policy_tx, policy_rx) = watch::channel(None);
    let endpoint = cni.and_then(|listener| {
        let lookup = Arc::new(KubeLookup {
            store: pod_store.clone(),
            api: pods_api,
            policy: policy_rx,
            node: opts.node.clone(),
        });
        listener
            .serve(node.handle(), lookup)
            .map_err(|e| warn!(error = %e, "linx-cni endpoint not served"))
            .ok()
    });
    let readiness = opts.readiness_gate.then(|| {
        tokio::spawn(crate::readiness::run(
            client.clone(),
            pod_store.clone(),
            node.reports(),
            snap_rx.clone(),
        ))
    });
    let reporter = tokio::spawn(report_loop(
        Api::all(client.clone()),
        Api::all(client.clone()),
        Recorder::new(client.clone(), AGENT_FIELD_MANAGER.into()),
        opts.clone(),
        node.reports(),
        snap_rx.clone(),
        drops.clone(),
    ));
    let traces = tokio::spawn(crate::traces::run(
        client,
        crate::traces::TraceOptions {
            node: opts.node.clone(),
            concurrency: crate::traces::CONCURRENCY,
        },
        node.resolver(),
        snap_rx,
    ));

    let mut policy = Arc::new(match &drops {
        Some(d) => RulesetPolicy::with_group(d.group()),
        None => RulesetPolicy::default(),
    });
    let mut chunks = AddressChunks::default();
    let (mut pods_ready, mut rulesets_ready) = (false, false);
    tokio::pin!(shutdown);
    loop {
        let input = tokio::select! {
            e = events.next() => match e { Some(e) => e, None => break },
            _ = &mut shutdown => break,
        };
        // The program-latency clock of what these inputs change starts now.
        let learned = tokio::time::Instant::now();
        // The previous policy remembers each resource's last valid
        // generation, and what it compiled: every ruleset event is seen
        // by it (an intermediate valid generation is remembered), while
        // address set changes received together make one recompile.
        let next = |policy: &Arc<RulesetPolicy>, chunks: &AddressChunks| {
            Arc::new(RulesetPolicy::next_with(
                policy,
                rs_store.state().iter().map(|r| &**r),
                chunks.book(),
            ))
        };
        let mut input = Some(input);
        let mut addresses_changed = false;
        while let Some(i) = input.take() {
            match i {
                Input::Pods(Change::Changed) => pods_ready = true,
                Input::Rulesets(Change::Changed) => {
                    rulesets_ready = true;
                    policy = next(&policy, &chunks);
                    addresses_changed = false;
                }
                Input::AddressSets(Ok(e)) => addresses_changed |= chunks.apply(e),
                Input::AddressSets(Err(e)) => {
                    warn!(error = %e, "watch failed: keeping the last desired state");
                }
                Input::Pods(Change::None) | Input::Rulesets(Change::None) => {}
            }
            // Everything already received goes into the same snapshot.
            input = events.next().now_or_never().flatten();
        }
        if addresses_changed {
            policy = next(&policy, &chunks);
        }
        // Until every list is complete a partial view would remove tables
        // (or elements) that should stay: keep the last desired state.
        if !(pods_ready && rulesets_ready && chunks.ready) {
            continue;
        }
        let pods = pods_of(&pod_store);
        let t: Vec<Target> = targets(&pods, &*policy);
        debug!(pods = t.len(), "desired state changed");
        node.apply_learned(t, learned);
        let revisions = pods
            .iter()
            .filter_map(|p| Some((p.uid.clone(), node.revision_of(&p.uid)?)))
            .collect();
        if let Some(d) = &drops {
            d.set_pods(pods.iter().map(|p| (p.clone(), PodRules::of(&policy, p))));
        }
        snap_tx.send_replace(Arc::new(Snapshot {
            pods,
            policy: policy.clone(),
            revisions,
        }));
        policy_tx.send_replace(Some(policy.clone()));
    }
    reporter.abort();
    traces.abort();
    for task in endpoint.into_iter().chain(readiness) {
        task.abort();
    }
    info!("stopping: tables are left in place");
    node.shutdown().await;
}

// One event at a time passes through: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Input {
    Pods(Change),
    Rulesets(Change),
    AddressSets(Result<watcher::Event<FirewallAddressSet>, watcher::Error>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// The store's content changed (or a full list completed).
    Changed,
    /// Nothing to act on (a list in progress, or an error being retried).
    None,
}

/// Maps watcher events (already applied to a store) to whether the store
/// changed. A re-list swaps the store only at `InitDone`.
fn changes<K>(
    s: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
) -> impl Stream<Item = Change> + Send {
    s.map(|e| match e {
        Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) => {
            Change::Changed
        }
        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => Change::None,
        Err(e) => {
            // Retried with backoff; the last desired state stays enforced.
            warn!(error = %e, "watch failed: keeping the last desired state");
            Change::None
        }
    })
}

/// Writes the node's report whenever it changes, at most once per
/// `report_interval`. The Node's UID (for the owner reference) is read
/// before the first write; failures are retried at the next interval.
/// With `linx-cni` served, its start records are read again each interval
/// and each pod that started unprotected gets a Warning Event, once.
async fn report_loop(
    reports_api: Api<FirewallNodeReport>,
    nodes: Api<Node>,
    recorder: Recorder,
    opts: KubeOptions,
    reports: Arc<Reports>,
    mut snap: watch::Receiver<Arc<Snapshot>>,
    drops: Option<Arc<Drops>>,
) {
    let mut counted = drops.as_ref().map(|d| d.changes());
    let mut node_uid: Option<String> = None;
    let mut written: Option<FirewallNodeReport> = None;
    let mut told: HashSet<String> = HashSet::new();
    // Nothing is reported until the first full view.
    if snap.changed().await.is_err() {
        return;
    }
    loop {
        let seen = reports.snapshot();
        let current = snap.borrow_and_update().clone();
        if let Some(c) = &mut counted {
            c.borrow_and_update();
        }
        let starts = opts
            .cni_state_dir
            .as_deref()
            .map(linx_cni::record::read_all);
        if let Some(records) = &starts {
            announce_unprotected(&recorder, &current, records, &mut told).await;
        }
        let report = node_report_with(
            &opts.node,
            &current,
            &seen,
            starts.as_deref(),
            drops.as_deref(),
        );
        let mut failed = false;
        if written.as_ref().map(|w| &w.spec) != Some(&report.spec) {
            match write_once(&reports_api, &nodes, &opts.node, &mut node_uid, report).await {
                Ok(r) => written = Some(r),
                Err(e) => {
                    warn!(error = %e, "report not written; retrying");
                    failed = true;
                }
            }
        }
        tokio::time::sleep(opts.report_interval).await;
        if failed {
            continue;
        }
        // Start records change without telling us: look again each
        // interval when there are any to read.
        let idle = if opts.cni_state_dir.is_some() {
            Duration::ZERO
        } else {
            Duration::from_secs(3600)
        };
        let stale = reports.wait_for(idle, |r| *r != seen);
        let counts = async {
            match &mut counted {
                Some(c) => c.changed().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stale => {}
            r = snap.changed() => if r.is_err() { return },
            _ = counts => {}
        }
    }
}

/// A Warning Event on each pod (of the current view) that `linx-cni` let
/// start without its firewall, once per sandbox and agent run.
async fn announce_unprotected(
    recorder: &Recorder,
    snap: &Snapshot,
    records: &[StartRecord],
    told: &mut HashSet<String>,
) {
    for r in records.iter().filter(|r| !r.protected) {
        if told.contains(&r.container_id) {
            continue;
        }
        let Some(pod) = snap.pods.iter().find(|p| match &r.pod.uid {
            Some(uid) => &p.uid == uid,
            None => p.namespace == r.pod.namespace && p.name == r.pod.name,
        }) else {
            continue; // not in the view (yet): next time
        };
        told.insert(r.container_id.clone());
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(pod.namespace.clone()),
            name: Some(pod.name.clone()),
            uid: Some(pod.uid.clone()),
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: "StartedUnprotected".into(),
            note: Some(truncate(
                format!(
                    "the pod's containers started before its firewall was in (linx-cni failOpen): {}",
                    r.reason.as_deref().unwrap_or("no reason recorded")
                ),
                MAX_MESSAGE_LEN,
            )),
            action: "Admit".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            warn!(pod = %pod, error = %e, "event not published");
        }
    }
}

/// Resolves pods for `linx-cni`'s requests: this node's watch cache, or one
/// GET when the Pod is not there yet (the runtime can be ahead of the
/// watch), under the policy of the last complete view.
struct KubeLookup {
    store: Store<KubePod>,
    api: Api<KubePod>,
    policy: watch::Receiver<Option<Arc<RulesetPolicy>>>,
    node: String,
}

impl Lookup for KubeLookup {
    fn target<'a>(&'a self, pod: &'a PodRef) -> BoxFuture<'a, Result<Target, String>> {
        Box::pin(async move {
            let mut rx = self.policy.clone();
            let policy = rx
                .wait_for(Option::is_some)
                .await
                .map_err(|_| "the agent is stopping".to_string())?
                .clone()
                .expect("waited for it");
            let uid_ok = |p: &KubePod| pod.uid.is_none() || p.metadata.uid == pod.uid;
            let key = ObjectRef::new(&pod.name).within(&pod.namespace);
            let cached = self.store.get(&key).filter(|p| uid_ok(p));
            let kube_pod = match cached {
                Some(p) => p,
                None => {
                    let api: Api<KubePod> =
                        Api::namespaced(self.api.clone().into_client(), &pod.namespace);
                    let p = api
                        .get(&pod.name)
                        .await
                        .map_err(|e| format!("pod {pod}: reading it from the API server: {e}"))?;
                    if !uid_ok(&p) {
                        return Err(format!(
                            "pod {pod}: the API server has UID {:?}, the sandbox is for {:?}",
                            p.metadata.uid, pod.uid
                        ));
                    }
                    Arc::new(p)
                }
            };
            let on = kube_pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
            if on != Some(self.node.as_str()) {
                return Err(format!(
                    "pod {pod}: bound to node {on:?}, this is {}",
                    self.node
                ));
            }
            let p = pod_from(&kube_pod).ok_or_else(|| format!("pod {pod}: terminated"))?;
            Ok(targets(std::slice::from_ref(&p), &*policy)
                .pop()
                .expect("one target per pod"))
        })
    }
}

async fn write_once(
    reports_api: &Api<FirewallNodeReport>,
    nodes: &Api<Node>,
    node: &str,
    node_uid: &mut Option<String>,
    report: FirewallNodeReport,
) -> Result<FirewallNodeReport, KubeError> {
    if node_uid.is_none() {
        let n = nodes.get(node).await.map_err(|source| KubeError::Node {
            node: node.into(),
            source,
        })?;
        *node_uid = n.metadata.uid;
    }
    let report = match node_uid {
        Some(uid) => report.owned_by_node(uid),
        None => report,
    };
    write_report(reports_api, &report)
        .await
        .map_err(|source| KubeError::Report {
            node: node.into(),
            source,
        })?;
    Ok(report)
}

/// A client from the in-cluster configuration or `KUBECONFIG`, naming
/// itself `linx-agent/VERSION`: the API server's audit log and
/// priority-and-fairness (and the benchmarks) tell its requests apart
/// from the operator's.
pub async fn client() -> Result<Client, KubeError> {
    let mut cfg = kube::Config::infer()
        .await
        .map_err(|e| KubeError::Config(kube::Error::InferConfig(e)))?;
    cfg.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("linx-agent/", env!("CARGO_PKG_VERSION"))),
    ));
    Client::try_from(cfg).map_err(KubeError::Config)
}
