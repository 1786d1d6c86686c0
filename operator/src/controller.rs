//! The reconcile loop: validate each FirewallRuleset, fold in the agents'
//! reports and the table conflicts, and write the status with server-side
//! apply when it changed. This is the only code that writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, Recorder};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use linx_crds::validate::declared_tables;
use linx_crds::watch::{backoff, NoWait};
use linx_crds::{validate, FirewallAddressSet, FirewallNodeReport, FirewallRuleset};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::aggregate::aggregate;
use crate::status::{conflicts_of, desired, Observed};
use crate::{Error, Metrics, Result, FIELD_MANAGER};

/// Re-check every ruleset this often even without events (reports of
/// vanished nodes, missed watch events).
pub const RESYNC: Duration = Duration::from_secs(300);

/// What reconcile needs besides the object.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// All node reports (kept by a reflector).
    pub reports: Store<FirewallNodeReport>,
    /// All FirewallRulesets (the controller's own cache), for conflicts.
    pub rulesets: Store<FirewallRuleset>,
    /// All published FirewallAddressSets, for the element counts.
    pub address_sets: Store<FirewallAddressSet>,
    /// The time written into conditions; fixed in tests.
    pub clock: fn() -> Time,
}

/// Current time for conditions.
pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// One reconciliation of one FirewallRuleset.
#[instrument(skip(obj, ctx), fields(namespace = obj.namespace().unwrap_or_default(), name = %obj.name_any()))]
pub async fn reconcile(obj: Arc<FirewallRuleset>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let name = obj.name_any();
    let ns = obj
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(name.clone()))?;
    let generation = obj.metadata.generation.unwrap_or(0);
    let uid = obj.uid().unwrap_or_default();

    // Until the first lists of reports and address sets have arrived,
    // counts would read as zero and flap: come back shortly. (A dropped
    // writer also answers.)
    if ctx.reports.wait_until_ready().now_or_never().is_none()
        || ctx.address_sets.wait_until_ready().now_or_never().is_none()
    {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let validation = validate(&obj.spec);
    let reports = ctx.reports.state();
    let agg = aggregate(
        reports.iter().map(|r| r.as_ref()),
        &ns,
        &name,
        &uid,
        generation,
    );
    let conflicts = conflicts_of(&obj, &ctx.rulesets.state());
    // Without any report, whether there is anything to wait for: a
    // resource selecting no pod is Ready as soon as it is valid.
    let selects_pods = if validation.is_valid() && !agg.reported() {
        let found = crate::webhook::selects_any_pod(&ctx.client, &ns, &obj.spec.pod_selector)
            .await
            .map_err(|source| Error::ListPods {
                namespace: ns.clone(),
                object: format!("{ns}/{name}"),
                source,
            })?;
        Some(found)
    } else {
        None
    };
    let observed = Observed {
        generation,
        current: obj.status.as_ref(),
        validation: &validation,
        reports: &agg,
        conflicts,
        selects_pods,
    };
    let (mut status, changes) = desired(&observed, &(ctx.clock)());
    status.address_sets = crate::publish::address_set_status(
        &obj,
        ctx.address_sets
            .state()
            .iter()
            .filter(|a| a.namespace().as_deref() == Some(ns.as_str()))
            .map(|a| a.as_ref()),
    );

    if obj.status.as_ref() != Some(&status) {
        let api: Api<FirewallRuleset> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({
            "apiVersion": FirewallRuleset::api_version(&()),
            "kind": FirewallRuleset::kind(&()),
            "status": status,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| Error::WriteStatus {
            object: format!("{ns}/{name}"),
            source,
        })?;
        ctx.metrics.status_writes.inc();
        info!(
            valid = validation.is_valid(),
            matched = agg.matched,
            applied = agg.applied,
            failed = agg.failed,
            "status written"
        );
        let reference = obj.object_ref(&());
        for change in changes {
            let event = Event {
                type_: change.type_,
                reason: change.reason.to_string(),
                note: Some(change.note),
                action: "Reconcile".into(),
                secondary: None,
            };
            if let Err(source) = ctx.recorder.publish(&event, &reference).await {
                // The status already says it; an event lost is not worth a retry.
                let e = Error::PublishEvent {
                    object: format!("{ns}/{name}"),
                    source,
                };
                warn!(error = %e, "event not published");
                ctx.metrics.error(&e);
            }
        }
    }
    ctx.metrics.observe(started.elapsed());
    Ok(Action::requeue(RESYNC))
}

/// Retry soon after an error.
pub fn error_policy(_obj: Arc<FirewallRuleset>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(%error, "reconcile failed");
    ctx.metrics.error(error);
    Action::requeue(Duration::from_secs(15))
}

/// Rulesets to re-check when `changed` (created, updated or deleted)
/// declares tables they declare too.
fn peers(
    store: &Store<FirewallRuleset>,
    changed: &FirewallRuleset,
) -> Vec<ObjectRef<FirewallRuleset>> {
    let tables = declared_tables(&changed.spec);
    let ns = changed.namespace();
    store
        .state()
        .iter()
        .filter(|r| r.namespace() == ns && r.name_any() != changed.name_any())
        .filter(|r| declared_tables(&r.spec).iter().any(|t| tables.contains(t)))
        .map(|r| ObjectRef::from_obj(r.as_ref()))
        .collect()
}

/// Runs the controller until shutdown.
pub async fn run(client: Client, metrics: Metrics) {
    // FirewallTraces' TTL and lost traces, beside the rulesets.
    let traces = crate::traces::run(client.clone());
    let rulesets: Api<FirewallRuleset> = Api::all(client.clone());
    let reports: Api<FirewallNodeReport> = Api::all(client.clone());
    let (report_store, writer) = reflector::store();
    // One watch on reports feeds both the store (aggregation) and the
    // trigger: a report change re-checks the rulesets it names.
    let report_stream = backoff(watcher(reports, watcher::Config::default()))
        .reflect(writer)
        .touched_objects();
    // Published address sets: their counts go into the status of the
    // ruleset they belong to.
    let (address_store, address_writer) = reflector::store();
    let address_stream = backoff(watcher(
        Api::<FirewallAddressSet>::all(client.clone()),
        watcher::Config::default(),
    ))
    .reflect(address_writer)
    .touched_objects();
    let peer_stream =
        backoff(watcher(rulesets.clone(), watcher::Config::default())).touched_objects();
    // The rulesets themselves, under the same backoff as every other watch;
    // the controller's own backoff would pause all its triggers on any one
    // watch's error (minutes after an outage), so it never waits.
    let (store, main_writer) = reflector::store();
    let main_stream = backoff(reflector::reflector(
        main_writer,
        watcher(rulesets, watcher::Config::default()),
    ))
    .applied_objects();
    let controller = Controller::for_stream(main_stream, store.clone()).trigger_backoff(NoWait);
    let peer_store = store.clone();
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), FIELD_MANAGER.into()),
        client,
        metrics,
        reports: report_store,
        rulesets: store,
        address_sets: address_store,
        clock: now,
    });
    let controller = controller
        .watches_stream(report_stream, |report: FirewallNodeReport| {
            report
                .spec
                .rulesets
                .iter()
                .map(|e| ObjectRef::new(&e.name).within(&e.namespace))
                .collect::<Vec<_>>()
        })
        .watches_stream(address_stream, |a: FirewallAddressSet| {
            a.namespace()
                .map(|ns| ObjectRef::new(&a.spec.ruleset).within(&ns))
        })
        .watches_stream(peer_stream, move |r: FirewallRuleset| {
            peers(&peer_store, &r)
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "controller");
            }
        });
    tokio::select! {
        _ = controller => {}
        _ = traces => {}
    }
}
