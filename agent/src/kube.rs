//! The Kubernetes adapter: the pods of this node (field selector
//! `spec.nodeName=<node>`) and every FirewallRuleset, watched into
//! reflector stores; on each change the targets are recomputed under
//! [`RulesetPolicy`] and given to the [`NodeController`]. The node's
//! `FirewallNodeReport` is written from the controller's reports by
//! server-side apply, coalesced (at most one write per interval, only when
//! its content changed).
//!
//! When the API server is unreachable the watchers retry with backoff and
//! nothing is applied: every worker keeps enforcing the last desired value.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod as KubePod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use linx_crds::report::{AGENT_FIELD_MANAGER, MAX_FAILURES, MAX_MESSAGE_LEN, MAX_PODS};
use linx_crds::{FirewallNodeReport, FirewallRuleset, PodFailure, PodRuleset, RulesetReport};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::controller::NodeController;
use crate::desired::{targets, Target};
use crate::drops::{Drops, PodRules};
use crate::pod::Pod;
use crate::policy::RulesetPolicy;
use crate::report::{PodReport, PodState, Reports};

/// Settings of the adapter.
#[derive(Clone, Debug)]
pub struct KubeOptions {
    /// This node's name (the downward API's `spec.nodeName`).
    pub node: String,
    /// At most one report write per this interval.
    pub report_interval: Duration,
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

/// The pods and policy last given to the controller, with each pod's
/// desired revision: what the report is computed from.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub pods: Vec<Pod>,
    pub policy: Arc<RulesetPolicy>,
    /// Pod UID → revision of its current desired value.
    pub revisions: HashMap<String, u64>,
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
/// its worker's report is about the pod's current desired revision.
pub fn node_report(
    node: &str,
    snap: &Snapshot,
    reports: &BTreeMap<String, PodReport>,
) -> FirewallNodeReport {
    node_report_with(node, snap, reports, None)
}

/// [`node_report`], with each entry's pods and, from `drops`, the
/// would-be drops of the generation enforced.
pub fn node_report_with(
    node: &str,
    snap: &Snapshot,
    reports: &BTreeMap<String, PodReport>,
    drops: Option<&Drops>,
) -> FirewallNodeReport {
    let mut pods: BTreeMap<(String, String), Vec<(String, PodRuleset)>> = BTreeMap::new();
    let mut entries: BTreeMap<(String, String), RulesetReport> = BTreeMap::new();
    let mut failures: BTreeMap<(String, String), Vec<PodFailure>> = BTreeMap::new();
    for pod in snap.pods.iter().filter(|p| !p.host_network) {
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
                (Some(PodState::Applied), Ok(_)) => e.applied_pods += 1,
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
    FirewallNodeReport::for_node(node, entries.into_values().collect())
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
    shutdown: impl Future<Output = ()>,
) {
    let pods_api: Api<KubePod> = Api::all(client.clone());
    let rulesets_api: Api<FirewallRuleset> = Api::all(client.clone());
    let (pod_store, pod_writer) = reflector::store();
    let (rs_store, rs_writer) = reflector::store();
    let pod_cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", opts.node));
    let pods = changes(reflector::reflector(
        pod_writer,
        watcher(pods_api, pod_cfg).default_backoff(),
    ))
    .map(|c| (Source::Pods, c));
    let rulesets = changes(reflector::reflector(
        rs_writer,
        watcher(rulesets_api, watcher::Config::default()).default_backoff(),
    ))
    .map(|c| (Source::Rulesets, c));
    let mut events = std::pin::pin!(futures::stream::select(pods, rulesets));

    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));
    let drops = node.drops();
    let reporter = tokio::spawn(report_loop(
        Api::all(client.clone()),
        Api::all(client.clone()),
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
    let (mut pods_ready, mut rulesets_ready) = (false, false);
    tokio::pin!(shutdown);
    loop {
        let (source, change) = tokio::select! {
            e = events.next() => match e { Some(e) => e, None => break },
            _ = &mut shutdown => break,
        };
        match (source, change) {
            (_, Change::None) => continue,
            (Source::Pods, Change::Changed) => pods_ready = true,
            (Source::Rulesets, Change::Changed) => {
                rulesets_ready = true;
                // The previous policy remembers each resource's last
                // valid generation.
                policy = Arc::new(RulesetPolicy::next(
                    &policy,
                    rs_store.state().iter().map(|r| &**r),
                ));
            }
        }
        // Until both lists are complete a partial view would remove
        // tables that should stay: keep the last desired state.
        if !(pods_ready && rulesets_ready) {
            continue;
        }
        let pods = pods_of(&pod_store);
        let t: Vec<Target> = targets(&pods, &*policy);
        info!(pods = t.len(), "desired state changed");
        node.apply(t);
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
    }
    reporter.abort();
    traces.abort();
    info!("stopping: tables are left in place");
    node.shutdown().await;
}

#[derive(Clone, Copy, Debug)]
enum Source {
    Pods,
    Rulesets,
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
async fn report_loop(
    reports_api: Api<FirewallNodeReport>,
    nodes: Api<Node>,
    opts: KubeOptions,
    reports: Arc<Reports>,
    mut snap: watch::Receiver<Arc<Snapshot>>,
    drops: Option<Arc<Drops>>,
) {
    let mut counted = drops.as_ref().map(|d| d.changes());
    let mut node_uid: Option<String> = None;
    let mut written: Option<FirewallNodeReport> = None;
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
        let report = node_report_with(&opts.node, &current, &seen, drops.as_deref());
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
        let stale = reports.wait_for(Duration::from_secs(3600), |r| *r != seen);
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

/// A client from the in-cluster configuration or `KUBECONFIG`.
pub async fn client() -> Result<Client, KubeError> {
    Client::try_default().await.map_err(KubeError::Config)
}
