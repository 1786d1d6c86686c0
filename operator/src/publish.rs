//! Publishing what set sources resolve to: one watch each on pods (not
//! host-network ones), namespaces, services, FirewallRulesets and
//! FirewallAddressSets feeds the [`Index`] and the [`Publisher`]; the
//! publisher says which `FirewallAddressSet` chunks to write or delete,
//! and [`run`] (the only code here doing I/O) does it by server-side
//! apply, only when a chunk's content changed.
//!
//! The [`Publisher`] is a pure state machine (the linkerd2
//! policy-controller's index / status-writer split): events in, writes
//! out, tested without an API server.
//!
//! * Each FirewallRuleset generation is compiled once; a generation that
//!   does not compile keeps what was published for the last valid one.
//! * Events are applied in batches (everything already received), then
//!   only the rulesets whose sources a change can affect are resolved
//!   again (`Changes::affect`).
//! * Chunks of a grown or shrunk list are written first, stale chunks
//!   deleted after (agents use a list only once all its chunks agree).
//! * Address sets of deleted rulesets are deleted here too (the garbage
//!   collector does it on a real cluster through the owner reference).

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use linx_crds::addressset::{assemble, object_name, split, RULESET_LABEL};
use linx_crds::source::{check, sources_of, KeyKind, SetRef, SetSource};
use linx_crds::watch::backoff;
use linx_crds::{AddressSetStatus, FirewallAddressSet, FirewallAddressSetSpec, FirewallRuleset};
use tracing::{debug, info, warn};

use crate::index::{Index, PodEntry, ServiceEntry};
use crate::FIELD_MANAGER;

/// A set with a source, of a valid FirewallRuleset generation.
#[derive(Clone, Debug, PartialEq)]
pub struct SourcedSet {
    pub at: SetRef,
    pub source: SetSource,
    pub kind: KeyKind,
}

/// What the publisher knows of one FirewallRuleset.
#[derive(Clone, Debug, PartialEq)]
pub struct RulesetSources {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: i64,
    /// The sets with a source; `None` while the generation does not
    /// compile (what was published for the last valid one stays).
    pub sets: Option<Vec<SourcedSet>>,
}

impl RulesetSources {
    /// Compiles `r` (structure, compiler, sources) and finds its sourced sets.
    pub fn of(r: &FirewallRuleset) -> Option<RulesetSources> {
        let m = &r.metadata;
        // What `linx_crds::validate` checks, keeping the compiled value.
        let valid = linx_crds::validate::check_structure(&r.spec)
            .is_empty()
            .then(|| linx_crds::convert::to_ruleset(&r.spec).ok())
            .flatten()
            .filter(|v| check(&r.spec, v).is_empty());
        let sets = valid.map(|v| {
            sources_of(&r.spec)
                .into_iter()
                .filter_map(|s| {
                    let fam = linx_crds::convert::family(s.at.family);
                    let set = v
                        .tables
                        .iter()
                        .find(|t| t.family == fam && t.name == s.at.table)?
                        .sets
                        .iter()
                        .find(|x| x.name == s.at.set)?;
                    Some(SourcedSet {
                        kind: KeyKind::of(set)?,
                        at: s.at,
                        source: s.source.clone(),
                    })
                })
                .collect()
        });
        Some(RulesetSources {
            namespace: m.namespace.clone()?,
            name: m.name.clone()?,
            uid: m.uid.clone()?,
            generation: m.generation.unwrap_or(0),
            sets,
        })
    }

    /// The chunks every sourced set resolves to now, as objects to apply.
    pub fn objects(&self, index: &Index) -> Option<Vec<FirewallAddressSet>> {
        let sets = self.sets.as_ref()?;
        let mut out = Vec::new();
        for s in sets {
            let list = index.resolve(&self.namespace, &s.source, s.kind);
            let parts = split(&list);
            let n = parts.len() as u32;
            for (i, elements) in parts.into_iter().enumerate() {
                out.push(self.object(&s.at, i as u32, n, elements));
            }
        }
        Some(out)
    }

    fn object(
        &self,
        at: &SetRef,
        chunk: u32,
        chunks: u32,
        elements: Vec<String>,
    ) -> FirewallAddressSet {
        let owner = OwnerReference {
            api_version: FirewallRuleset::api_version(&()).into_owned(),
            kind: FirewallRuleset::kind(&()).into_owned(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: None,
        };
        FirewallAddressSet {
            metadata: ObjectMeta {
                name: Some(object_name(&self.name, at, chunk)),
                namespace: Some(self.namespace.clone()),
                labels: Some([(RULESET_LABEL.to_string(), self.name.clone())].into()),
                owner_references: Some(vec![owner]),
                ..Default::default()
            },
            spec: FirewallAddressSetSpec {
                ruleset: self.name.clone(),
                ruleset_uid: self.uid.clone(),
                family: at.family,
                table: at.table.clone(),
                set: at.set.clone(),
                chunk,
                chunks,
                elements,
            },
        }
    }
}

/// One write the publisher asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Server-side apply of the whole object.
    Apply(Box<FirewallAddressSet>),
    Delete {
        namespace: String,
        name: String,
    },
}

type Key = (String, String);

fn key_of(o: &FirewallAddressSet) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}

/// The state behind publishing: the index, the rulesets with sources,
/// what is published, and what must be looked at again.
#[derive(Debug, Default)]
pub struct Publisher {
    pub index: Index,
    rulesets: BTreeMap<String, RulesetSources>,
    /// Published chunks (as last seen or written), by namespace and name.
    published: BTreeMap<Key, FirewallAddressSetSpec>,
    /// Rulesets (by UID) to plan again whatever the index says.
    dirty: BTreeSet<String>,
    /// Look for chunks whose ruleset is gone.
    sweep: bool,
}

impl Publisher {
    /// A FirewallRuleset was added or changed (or is gone, with `deleted`).
    pub fn ruleset(&mut self, r: &FirewallRuleset, deleted: bool) {
        let Some(uid) = r.metadata.uid.clone() else {
            return;
        };
        if deleted {
            self.rulesets.remove(&uid);
            self.sweep = true;
            return;
        }
        let generation = r.metadata.generation.unwrap_or(0);
        if self
            .rulesets
            .get(&uid)
            .is_some_and(|k| k.generation == generation)
        {
            return;
        }
        if let Some(s) = RulesetSources::of(r) {
            self.rulesets.insert(uid.clone(), s);
            self.dirty.insert(uid);
        }
    }

    /// Every FirewallRuleset (after a full list).
    pub fn replace_rulesets<'a>(&mut self, all: impl IntoIterator<Item = &'a FirewallRuleset>) {
        let mut seen = BTreeSet::new();
        for r in all {
            seen.extend(r.metadata.uid.clone());
            self.ruleset(r, false);
        }
        self.rulesets.retain(|uid, _| seen.contains(uid));
        self.sweep = true;
    }

    /// A FirewallAddressSet as the API server has it (or gone). A chunk
    /// that differs from what was written (changed or deleted by someone
    /// else) makes its ruleset planned again.
    pub fn seen(&mut self, o: &FirewallAddressSet, deleted: bool) {
        let key = key_of(o);
        let before = if deleted {
            self.published.remove(&key)
        } else {
            self.published.insert(key, o.spec.clone())
        };
        if before.as_ref() != (!deleted).then_some(&o.spec) {
            self.dirty.insert(o.spec.ruleset_uid.clone());
            self.sweep = true;
        }
    }

    /// Every FirewallAddressSet (after a full list).
    pub fn replace_published<'a>(&mut self, all: impl IntoIterator<Item = &'a FirewallAddressSet>) {
        self.published = all
            .into_iter()
            .map(|o| (key_of(o), o.spec.clone()))
            .collect();
        self.dirty.extend(self.rulesets.keys().cloned());
        self.sweep = true;
    }

    /// The writes that make the published chunks equal to what every
    /// affected source resolves to now: applies first, deletes after.
    pub fn plan(&mut self) -> Vec<Write> {
        let changes = self.index.take_changes();
        let mut uids = std::mem::take(&mut self.dirty);
        for (uid, r) in &self.rulesets {
            let affected = r
                .sets
                .iter()
                .flatten()
                .any(|s| changes.affect(&r.namespace, &s.source));
            if affected {
                uids.insert(uid.clone());
            }
        }
        let (mut applies, mut deletes) = (Vec::new(), Vec::new());
        for uid in &uids {
            let Some(r) = self.rulesets.get(uid) else {
                continue;
            };
            let Some(objects) = r.objects(&self.index) else {
                continue; // invalid generation: keep what is published
            };
            let wanted: BTreeSet<Key> = objects.iter().map(key_of).collect();
            for o in objects {
                if self.published.get(&key_of(&o)) != Some(&o.spec) {
                    applies.push(Write::Apply(Box::new(o)));
                }
            }
            deletes.extend(
                self.published
                    .iter()
                    .filter(|((ns, _), s)| *ns == r.namespace && s.ruleset_uid == *uid)
                    .filter(|(k, _)| !wanted.contains(*k))
                    .map(|((ns, name), _)| Write::Delete {
                        namespace: ns.clone(),
                        name: name.clone(),
                    }),
            );
        }
        if std::mem::take(&mut self.sweep) {
            deletes.extend(
                self.published
                    .iter()
                    .filter(|(_, s)| !self.rulesets.contains_key(&s.ruleset_uid))
                    .map(|((ns, name), _)| Write::Delete {
                        namespace: ns.clone(),
                        name: name.clone(),
                    }),
            );
        }
        deletes.dedup();
        applies.extend(deletes);
        applies
    }

    /// `w` succeeded: it is what is published now.
    pub fn written(&mut self, w: &Write) {
        match w {
            Write::Apply(o) => {
                self.published.insert(key_of(o), o.spec.clone());
            }
            Write::Delete { namespace, name } => {
                self.published.remove(&(namespace.clone(), name.clone()));
            }
        }
    }

    /// `w` failed: its ruleset is planned again next time.
    pub fn failed(&mut self, w: &Write) {
        match w {
            Write::Apply(o) => {
                self.dirty.insert(o.spec.ruleset_uid.clone());
            }
            Write::Delete { .. } => self.sweep = true,
        }
    }
}

/// How many elements each sourced set of `r` resolved to, from the
/// published chunks (`chunks`: the namespace's FirewallAddressSets).
pub fn address_set_status<'a>(
    r: &FirewallRuleset,
    chunks: impl IntoIterator<Item = &'a FirewallAddressSet>,
) -> Vec<AddressSetStatus> {
    let uid = r.metadata.uid.as_deref().unwrap_or_default();
    let lists = assemble(
        chunks
            .into_iter()
            .filter(|c| c.spec.ruleset_uid == uid)
            .map(|c| &c.spec),
    );
    let mut out: Vec<AddressSetStatus> = sources_of(&r.spec)
        .into_iter()
        .map(|s| AddressSetStatus {
            table: s.at.table_label(),
            elements: lists.get(&s.at).map_or(0, |l| l.len() as i32),
            set: s.at.set,
        })
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.table == b.table && a.set == b.set);
    out
}

/// One input of the publisher.
// One event at a time passes through: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Input {
    Pod(watcher::Event<Pod>),
    Namespace(watcher::Event<Namespace>),
    Service(watcher::Event<Service>),
    Ruleset(watcher::Event<FirewallRuleset>),
    AddressSet(watcher::Event<FirewallAddressSet>),
}

/// Full lists in progress, projected as they arrive.
#[derive(Default)]
struct Relists {
    pods: Vec<(String, String, PodEntry)>,
    services: Vec<(String, String, ServiceEntry)>,
    namespaces: Vec<Namespace>,
    rulesets: Vec<FirewallRuleset>,
    published: Vec<FirewallAddressSet>,
    /// Which of the five lists completed at least once.
    done: [bool; 5],
}

impl Relists {
    fn ready(&self) -> bool {
        self.done.iter().all(|d| *d)
    }
}

fn apply(p: &mut Publisher, lists: &mut Relists, input: Input) {
    use watcher::Event as E;
    match input {
        Input::Pod(e) => match e {
            E::Apply(o) => p.index.pod(&o, false),
            E::Delete(o) => p.index.pod(&o, true),
            E::Init => lists.pods.clear(),
            E::InitApply(o) => lists.pods.extend(PodEntry::of(&o)),
            E::InitDone => {
                p.index.replace_pods(std::mem::take(&mut lists.pods));
                lists.done[0] = true;
            }
        },
        Input::Service(e) => match e {
            E::Apply(o) => p.index.service(&o, false),
            E::Delete(o) => p.index.service(&o, true),
            E::Init => lists.services.clear(),
            E::InitApply(o) => lists.services.extend(ServiceEntry::of(&o)),
            E::InitDone => {
                p.index
                    .replace_services(std::mem::take(&mut lists.services));
                lists.done[1] = true;
            }
        },
        Input::Namespace(e) => match e {
            E::Apply(o) => p.index.namespace(&o, false),
            E::Delete(o) => p.index.namespace(&o, true),
            E::Init => lists.namespaces.clear(),
            E::InitApply(o) => lists.namespaces.push(o),
            E::InitDone => {
                p.index
                    .replace_namespaces(&std::mem::take(&mut lists.namespaces));
                lists.done[2] = true;
            }
        },
        Input::Ruleset(e) => match e {
            E::Apply(o) => p.ruleset(&o, false),
            E::Delete(o) => p.ruleset(&o, true),
            E::Init => lists.rulesets.clear(),
            E::InitApply(o) => lists.rulesets.push(o),
            E::InitDone => {
                p.replace_rulesets(&std::mem::take(&mut lists.rulesets));
                lists.done[3] = true;
            }
        },
        Input::AddressSet(e) => match e {
            E::Apply(o) => p.seen(&o, false),
            E::Delete(o) => p.seen(&o, true),
            E::Init => lists.published.clear(),
            E::InitApply(o) => lists.published.push(o),
            E::InitDone => {
                p.replace_published(&std::mem::take(&mut lists.published));
                lists.done[4] = true;
            }
        },
    }
}

type Inputs = Pin<Box<dyn Stream<Item = Input> + Send>>;

fn watch<K, F>(api: Api<K>, cfg: watcher::Config, wrap: F) -> Inputs
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    F: Fn(watcher::Event<K>) -> Input + Send + 'static,
{
    let what = std::any::type_name::<K>();
    backoff(watcher(api, cfg))
        .filter_map(move |e| {
            let out = match e {
                Ok(e) => Some(wrap(e)),
                Err(err) => {
                    // Retried with backoff; what is published stays.
                    warn!(error = %err, resource = what, "watch failed");
                    None
                }
            };
            std::future::ready(out)
        })
        .boxed()
}

/// Most events applied before planning, so a burst is planned once
/// without starving the writes.
const BATCH: usize = 10_000;

/// Watches, resolves and publishes until the task is dropped.
pub async fn run(client: Client) {
    let cfg = watcher::Config::default();
    let inputs: Vec<Inputs> = vec![
        // Host-network pods never give addresses: not even listed.
        watch(
            Api::<Pod>::all(client.clone()),
            cfg.clone().fields("spec.hostNetwork!=true"),
            Input::Pod,
        ),
        watch(Api::all(client.clone()), cfg.clone(), Input::Namespace),
        watch(Api::all(client.clone()), cfg.clone(), Input::Service),
        watch(Api::all(client.clone()), cfg.clone(), Input::Ruleset),
        watch(Api::all(client.clone()), cfg, Input::AddressSet),
    ];
    let mut inputs = futures::stream::select_all(inputs);
    let mut p = Publisher::default();
    let mut lists = Relists::default();
    let mut retry: Option<tokio::time::Instant> = None;
    loop {
        let until_retry = async {
            match retry {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            input = inputs.next() => match input {
                Some(i) => apply(&mut p, &mut lists, i),
                None => return,
            },
            _ = until_retry => retry = None,
        }
        for _ in 0..BATCH {
            match inputs.next().now_or_never() {
                Some(Some(i)) => apply(&mut p, &mut lists, i),
                Some(None) => return,
                None => break,
            }
        }
        // Until every list is complete a partial view would publish
        // partial lists: keep what is published.
        if !lists.ready() {
            continue;
        }
        let writes = p.plan();
        if !writes.is_empty() {
            debug!(
                writes = writes.len(),
                pods = p.index.pod_count(),
                "publishing"
            );
        }
        for w in writes {
            match write(&client, &w).await {
                Ok(()) => p.written(&w),
                Err(e) => {
                    warn!(error = %e, "address set not written; retrying");
                    p.failed(&w);
                    retry = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                }
            }
        }
    }
}

async fn write(client: &Client, w: &Write) -> Result<(), kube::Error> {
    match w {
        Write::Apply(o) => {
            let (ns, name) = key_of(o);
            let api: Api<FirewallAddressSet> = Api::namespaced(client.clone(), &ns);
            let mut obj = serde_json::to_value(o.as_ref()).unwrap_or_default();
            obj["apiVersion"] = FirewallAddressSet::api_version(&()).into();
            obj["kind"] = FirewallAddressSet::kind(&()).into();
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await?;
            info!(namespace = %ns, name = %name, elements = o.spec.elements.len(), "address set published");
        }
        Write::Delete { namespace, name } => {
            let api: Api<FirewallAddressSet> = Api::namespaced(client.clone(), namespace);
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            info!(namespace = %namespace, name = %name, "stale address set deleted");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(i: usize) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("api-{i}"), "namespace": "shop", "labels": {"app": "api"}},
            "status": {"podIPs": [{"ip": format!("10.1.{}.{}", i / 250, i % 250)}]}
        }))
        .unwrap()
    }

    fn ruleset() -> FirewallRuleset {
        serde_json::from_value(json!({
            "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
            "metadata": {"name": "db", "namespace": "shop", "uid": "u1", "generation": 1},
            "spec": {"tables": [{"name": "fw", "family": "inet", "sets": [{"name": "api",
                "type": "ipv4_addr", "source": {"pods": [{"podSelector": {"matchLabels": {"app": "api"}}}]}}]}]}
        }))
        .unwrap()
    }

    fn kinds(w: &[Write]) -> Vec<String> {
        w.iter()
            .map(|w| match w {
                Write::Apply(o) => format!("apply {}/{}", o.spec.chunk, o.spec.chunks),
                Write::Delete { name, .. } => format!("delete {}", &name[name.len() - 1..]),
            })
            .collect()
    }

    #[test]
    fn a_list_is_split_written_once_and_shrunk_new_chunks_first() {
        let mut p = Publisher::default();
        p.index
            .replace_pods((0..2500).filter_map(|i| PodEntry::of(&pod(i))));
        p.replace_rulesets(&[ruleset()]);
        p.replace_published(&[]);
        let w = p.plan();
        assert_eq!(
            kinds(&w),
            ["apply 0/4", "apply 1/4", "apply 2/4", "apply 3/4"]
        );
        let total: usize = w
            .iter()
            .map(|w| match w {
                Write::Apply(o) => o.spec.elements.len(),
                Write::Delete { .. } => 0,
            })
            .sum();
        assert_eq!(total, 2500);
        w.iter().for_each(|w| p.written(w));
        assert_eq!(p.plan(), vec![], "nothing changed, nothing written");
        // One pod's IP changes: one chunk or two (old and new element's) move.
        let mut moved = pod(7);
        moved.status.as_mut().unwrap().pod_ips =
            Some(vec![
                serde_json::from_value(json!({"ip": "10.9.9.9"})).unwrap()
            ]);
        p.index.pod(&moved, false);
        let w = p.plan();
        assert!((1..=2).contains(&w.len()), "{:?}", kinds(&w));
        w.iter().for_each(|w| p.written(w));
        // Shrunk to ten pods: the new single chunk first, then the stale ones.
        p.index
            .replace_pods((0..10).filter_map(|i| PodEntry::of(&pod(i))));
        let w = p.plan();
        assert_eq!(kinds(&w), ["apply 0/1", "delete 1", "delete 2", "delete 3"]);
        // Someone else deletes a chunk: it is written again.
        w.iter().for_each(|w| p.written(w));
        let Write::Apply(chunk) = &w[0] else {
            unreachable!()
        };
        p.seen(chunk, true);
        assert_eq!(kinds(&p.plan()), ["apply 0/1"]);
    }

    #[test]
    fn an_invalid_generation_keeps_what_is_published() {
        let mut p = Publisher::default();
        p.index
            .replace_pods((0..3).filter_map(|i| PodEntry::of(&pod(i))));
        p.replace_rulesets(&[ruleset()]);
        p.replace_published(&[]);
        let w = p.plan();
        w.iter().for_each(|w| p.written(w));
        let mut broken = ruleset();
        broken.metadata.generation = Some(2);
        broken.spec.tables.as_mut().unwrap()[0].sets[0].set_type = Some("inet_service".into());
        p.ruleset(&broken, false);
        p.index
            .replace_pods((0..5).filter_map(|i| PodEntry::of(&pod(i))));
        assert_eq!(p.plan(), vec![], "nothing written or deleted while invalid");
    }
}
