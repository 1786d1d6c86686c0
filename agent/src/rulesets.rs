//! The policy from FirewallRulesets: a pod's desired ruleset is the tables
//! of every FirewallRuleset of its namespace whose `podSelector` matches
//! it, combined per `linx_crds::conflict` (a table claimed by several goes
//! to the oldest resource, then the smaller name; the others apply their
//! remaining tables).
//!
//! A resource whose current generation does not compile keeps its last
//! valid generation enforced (tables and selector as they were), so an
//! edit with a typo never leaves a pod unprotected: [`RulesetPolicy::next`]
//! carries it over from the previous policy. When no valid generation is
//! known (the agent started while the resource was invalid) the pods it
//! selects are *held*: no table the agent manages there is removed, so
//! what the previous agent put in the kernel stays (see `docs/agent.md`).
//!
//! Sets with a source get the elements the operator resolved for them
//! (an [`AddressBook`] built from `FirewallAddressSet`s) beside their
//! static ones: [`RulesetPolicy::next_with`] compiles a resource again
//! when its elements change, sharing everything else with the value
//! enforced before, so each pod's reconciler sends the element delta.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use linx_crds::conflict::{resolve, Claim};
use linx_crds::instrument::{instrument, Instrumentation, Tags};
use linx_crds::origin::Origins;
use linx_crds::source::Resolved;
use linx_crds::{FirewallRuleset, FirewallRulesetSpec};
use linx_netfilter::diff::share_unchanged;
use linx_netfilter::{Ruleset, Table};
use tracing::warn;

use crate::desired::Policy;
use crate::pod::Pod;

/// One FirewallRuleset, compiled once per generation and once per change
/// of its resolved set elements.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub name: String,
    pub uid: String,
    /// The current `metadata.generation`.
    pub generation: i64,
    created: Option<Time>,
    selector: LabelSelector,
    /// The current generation compiled with its resolved elements and
    /// instrumented (Audit, drop logs), or why it does not compile.
    pub value: Result<Arc<Ruleset>, String>,
    /// Where the current generation's rules come from (when it compiles).
    rules: Option<Arc<RuleMap>>,
    /// The generation enforced on the pods: the current one when it
    /// compiles, else the last one that did (if known).
    pub enforced: Option<Enforced>,
    /// The current generation without resolved elements.
    base: Result<Arc<Ruleset>, String>,
    /// The elements of its sourced sets `value` was made with.
    resolved: Arc<Resolved>,
}

/// A generation of a resource that compiled, as enforced.
#[derive(Clone, Debug, PartialEq)]
pub struct Enforced {
    pub generation: i64,
    pub selector: LabelSelector,
    pub value: Arc<Ruleset>,
    /// Where each of its rules comes from, and its NFLOG tags.
    pub rules: Arc<RuleMap>,
    /// What `value` is made of, to add other resolved elements to it.
    spec: Arc<FirewallRulesetSpec>,
    base: Arc<Ruleset>,
}

/// What maps a rule of a pod's kernel back to the resource: each rule's
/// line:column (or field), and the tags of the rules that log to the agent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleMap {
    pub origins: Origins,
    pub tags: Tags,
    /// `logging.drops`: would-be drops are logged as lines too.
    pub log_drops: bool,
}

/// A table a pod gets, with the resource (and generation) it comes from.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    pub compiled: &'a Compiled,
    pub enforced: &'a Enforced,
    pub table: &'a Table,
}

impl Compiled {
    /// The selector deciding which pods the resource affects now: the
    /// enforced generation's, else the current one's.
    fn effective_selector(&self) -> &LabelSelector {
        self.enforced
            .as_ref()
            .map_or(&self.selector, |e| &e.selector)
    }

    /// Invalid, with no valid generation known: its pods are held.
    pub fn holds(&self) -> bool {
        self.value.is_err() && self.enforced.is_none()
    }

    /// Why another generation than the current one is enforced (or none).
    pub fn note(&self) -> Option<String> {
        let Err(e) = &self.value else { return None };
        Some(match &self.enforced {
            Some(en) => format!(
                "generation {} does not compile ({e}); generation {} stays enforced",
                self.generation, en.generation
            ),
            None => format!(
                "generation {} does not compile ({e}) and no valid generation is known \
                 since the agent started: the tables of its pods are kept as they are",
                self.generation
            ),
        })
    }
}

/// The resolved elements of every FirewallRuleset's sourced sets, from
/// the `FirewallAddressSet`s the operator publishes: by the ruleset's
/// namespace and UID (so a list is only ever used by the ruleset it was
/// made for, in its own namespace).
pub type AddressBook = BTreeMap<(String, String), Arc<Resolved>>;

/// The FirewallRulesets known, by namespace.
#[derive(Clone, Debug)]
pub struct RulesetPolicy {
    by_namespace: BTreeMap<String, Vec<Compiled>>,
    /// Desired values already combined, shared by every pod they fit.
    combined: Arc<Mutex<Combined>>,
    /// The agent's NFLOG group, which Audit and drop logs log to.
    group: u16,
}

/// The NFLOG group the agent reads in each pod, unless told otherwise.
pub const DEFAULT_NFLOG_GROUP: u16 = 0x4c58;

impl Default for RulesetPolicy {
    fn default() -> Self {
        Self::with_group(DEFAULT_NFLOG_GROUP)
    }
}

/// Combined values by the allocations of the enforced values they were
/// made from (which the entry keeps alive, so an address is never reused
/// for another value while the entry exists).
type Combined = HashMap<Vec<usize>, (Vec<Arc<Ruleset>>, Arc<Ruleset>)>;

impl RulesetPolicy {
    /// An empty policy whose resources log to NFLOG group `group` (their
    /// successors made by [`RulesetPolicy::next`] keep it).
    pub fn with_group(group: u16) -> Self {
        RulesetPolicy {
            by_namespace: BTreeMap::new(),
            combined: Arc::default(),
            group,
        }
    }

    /// The NFLOG group Audit and drop logs log to.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// Compiles each resource once, with no memory of earlier generations.
    pub fn new<'a>(rulesets: impl IntoIterator<Item = &'a FirewallRuleset>) -> Self {
        Self::next(&RulesetPolicy::default(), rulesets)
    }

    /// Compiles each resource once; a resource that does not compile keeps
    /// the generation `prev` enforced for it (same UID).
    pub fn next<'a>(
        prev: &RulesetPolicy,
        rulesets: impl IntoIterator<Item = &'a FirewallRuleset>,
    ) -> Self {
        Self::next_with(prev, rulesets, &AddressBook::default())
    }

    /// [`RulesetPolicy::next`] with the resolved elements of sourced sets.
    /// Only resources whose generation or elements changed are compiled;
    /// the others keep their values (the same allocations).
    pub fn next_with<'a>(
        prev: &RulesetPolicy,
        rulesets: impl IntoIterator<Item = &'a FirewallRuleset>,
        book: &AddressBook,
    ) -> Self {
        let before: HashMap<&str, &Compiled> = prev
            .by_namespace
            .values()
            .flatten()
            .map(|c| (c.uid.as_str(), c))
            .collect();
        let none = Arc::new(Resolved::new());
        let mut by_namespace: BTreeMap<String, Vec<Compiled>> = BTreeMap::new();
        for r in rulesets {
            let m = &r.metadata;
            let (Some(ns), Some(name)) = (m.namespace.clone(), m.name.clone()) else {
                continue;
            };
            let uid = m.uid.clone().unwrap_or_default();
            let generation = m.generation.unwrap_or(0);
            let resolved = book
                .get(&(ns.clone(), uid.clone()))
                .cloned()
                .unwrap_or_else(|| none.clone());
            let old = before.get(uid.as_str()).filter(|_| !uid.is_empty());
            let old_enforced = old.and_then(|c| c.enforced.as_ref());
            // Same generation as before: no need to compile it again (nor
            // to warn again about it); same elements too: nothing to do.
            let known = old.filter(|c| c.generation == generation);
            let same_elements = |c: &&&Compiled| same_resolved(&c.resolved, &resolved);
            let base = match known {
                Some(c) => c.base.clone(),
                None => compile(r, old_enforced),
            };
            let (value, rules) = match known.filter(same_elements) {
                Some(c) => (c.value.clone(), c.rules.clone()),
                None => match base.clone().and_then(|b| {
                    finish(
                        &r.spec,
                        &b,
                        &resolved,
                        old_enforced.map(|e| &e.value),
                        prev.group,
                    )
                }) {
                    Ok((v, m)) => (Ok(v), Some(m)),
                    Err(e) => (Err(e), None),
                },
            };
            let enforced = match (&value, &rules, &base) {
                (Ok(v), Some(m), Ok(b)) => Some(Enforced {
                    generation,
                    selector: r.spec.pod_selector.clone(),
                    value: v.clone(),
                    rules: m.clone(),
                    spec: Arc::new(r.spec.clone()),
                    base: b.clone(),
                }),
                _ => old_enforced.map(|e| {
                    if old.is_some_and(|c| same_resolved(&c.resolved, &resolved)) {
                        return e.clone();
                    }
                    // The last valid generation with the new elements.
                    match finish(&e.spec, &e.base, &resolved, Some(&e.value), prev.group) {
                        Ok((value, rules)) => Enforced {
                            value,
                            rules,
                            ..e.clone()
                        },
                        Err(_) => e.clone(),
                    }
                }),
            };
            let c = Compiled {
                name,
                uid,
                generation,
                created: m.creation_timestamp.clone(),
                selector: r.spec.pod_selector.clone(),
                value,
                rules,
                enforced,
                base,
                resolved,
            };
            if let Some(note) = c.note().filter(|_| known.is_none()) {
                warn!(ruleset = %format!("{ns}/{}", c.name), "{note}");
            }
            by_namespace.entry(ns).or_default().push(c);
        }
        // Combined values whose parts are all still enforced stay shared.
        let live: std::collections::HashSet<usize> = by_namespace
            .values()
            .flatten()
            .filter_map(|c| c.enforced.as_ref().map(|e| Arc::as_ptr(&e.value) as usize))
            .collect();
        let mut combined = lock(&prev.combined).clone();
        combined.retain(|key, _| key.iter().all(|p| live.contains(p)));
        RulesetPolicy {
            by_namespace,
            combined: Arc::new(Mutex::new(combined)),
            group: prev.group,
        }
    }

    /// The resource `namespace/name`.
    pub fn find(&self, namespace: &str, name: &str) -> Option<&Compiled> {
        self.by_namespace
            .get(namespace)?
            .iter()
            .find(|c| c.name == name)
    }

    /// The resources of the pod's namespace that select it (by the selector
    /// of the generation enforced, else the current one).
    pub fn selecting<'a>(&'a self, pod: &'a Pod) -> impl Iterator<Item = &'a Compiled> + 'a {
        self.by_namespace
            .get(&pod.namespace)
            .into_iter()
            .flatten()
            .filter(|c| selects(c.effective_selector(), &pod.labels))
    }

    /// The tables `pod` gets and the resource each comes from: the
    /// enforced generations of the resources selecting it, each table to
    /// its owner per `linx_crds::conflict`.
    pub fn owners<'a>(&'a self, pod: &'a Pod) -> Vec<Owner<'a>> {
        Self::owned(&self.chosen(pod))
    }

    /// The tables of `chosen`, each to its owner per the conflict rule.
    fn owned<'a>(chosen: &[(&'a Compiled, &'a Enforced)]) -> Vec<Owner<'a>> {
        let claims: Vec<Claim> = chosen
            .iter()
            .map(|(c, e)| Claim {
                name: c.name.clone(),
                created: c.created.clone(),
                tables: e
                    .value
                    .tables
                    .iter()
                    .filter_map(|t| {
                        Some((linx_crds::convert::crd_family(t.family)?, t.name.clone()))
                    })
                    .collect(),
            })
            .collect();
        let res = resolve(&claims);
        let mut out = Vec::new();
        for &(c, e) in chosen {
            for t in &e.value.tables {
                let ok = linx_crds::convert::crd_family(t.family)
                    .is_none_or(|f| res.may_apply(&c.name, f, &t.name));
                if ok {
                    out.push(Owner {
                        compiled: c,
                        enforced: e,
                        table: t,
                    });
                }
            }
        }
        out
    }

    fn chosen<'a>(&'a self, pod: &'a Pod) -> Vec<(&'a Compiled, &'a Enforced)> {
        self.selecting(pod)
            .filter_map(|c| c.enforced.as_ref().map(|e| (c, e)))
            .collect()
    }
}

fn lock(m: &Mutex<Combined>) -> std::sync::MutexGuard<'_, Combined> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn same_resolved(a: &Arc<Resolved>, b: &Arc<Resolved>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// `r` compiled without resolved elements, by the one verdict the operator
/// and the admission webhook also use (`linx_crds::compile`): a resource
/// they refuse is applied by no agent. What it has in common with the
/// generation enforced before is made the same allocations
/// (`diff::share_unchanged`): the pods' reconcilers, holding that
/// generation as their baseline, then diff only what the edit changed.
fn compile(r: &FirewallRuleset, before: Option<&Enforced>) -> Result<Arc<Ruleset>, String> {
    linx_crds::compile(&r.spec)
        .map(|mut v| {
            if let Some(before) = before {
                share_unchanged(&mut v, &before.value);
            }
            Arc::new(v)
        })
        .map_err(|d| joined(&d))
}

/// `base` (`spec` compiled) with the `resolved` elements of its sourced
/// sets, compiled by the same compiler, then instrumented (Audit, drop
/// logs, own `log`s: see `linx_crds::instrument`), with where its rules
/// come from. Shares what it kept with `before` (the value enforced so
/// far), so a pod's reconciler compares only what changed.
fn finish(
    spec: &FirewallRulesetSpec,
    base: &Arc<Ruleset>,
    resolved: &Resolved,
    before: Option<&Arc<Ruleset>>,
    group: u16,
) -> Result<(Arc<Ruleset>, Arc<RuleMap>), String> {
    let mut v = if resolved.values().all(|l| l.is_empty()) {
        (**base).clone()
    } else {
        let with = linx_crds::source::with_elements(spec, base, resolved);
        linx_crds::convert::to_ruleset(&with)
            .map_err(|d| format!("with the elements its sources resolved to: {}", joined(&d)))?
    };
    let mut origins = Origins::of(spec, &v);
    let tags = instrument(&mut v, &Instrumentation::of(spec, group), &mut origins)?;
    share_unchanged(&mut v, before.unwrap_or(base));
    let rules = RuleMap {
        origins,
        tags,
        log_drops: spec.log_drops(),
    };
    Ok((Arc::new(v), Arc::new(rules)))
}

fn joined(d: &[linx_crds::Diagnostic]) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Policy for RulesetPolicy {
    fn desired(&self, pod: &Pod) -> Option<Ruleset> {
        self.desired_shared(pod).map(|v| (*v).clone())
    }

    /// Pods selected by the same resources share one value: computed once,
    /// compared by pointer when handed to their workers.
    fn desired_shared(&self, pod: &Pod) -> Option<Arc<Ruleset>> {
        let chosen = self.chosen(pod);
        if chosen.is_empty() {
            return None;
        }
        let key: Vec<usize> = chosen
            .iter()
            .map(|(_, e)| Arc::as_ptr(&e.value) as usize)
            .collect();
        if let Some((_, v)) = lock(&self.combined).get(&key) {
            return Some(v.clone());
        }
        let value = Arc::new(Ruleset {
            tables: Self::owned(&chosen)
                .iter()
                .map(|o| o.table.clone())
                .collect(),
        });
        let parts = chosen.iter().map(|(_, e)| Arc::clone(&e.value)).collect();
        lock(&self.combined).insert(key, (parts, value.clone()));
        Some(value)
    }

    fn holds(&self, pod: &Pod) -> bool {
        self.selecting(pod).any(Compiled::holds)
    }
}

pub use linx_crds::selector::selects;

#[cfg(test)]
mod tests {
    use super::*;
    use linx_crds::FirewallRulesetSpec;

    fn fr(name: &str, age_secs: i64, selector: &str, nft: &str) -> FirewallRuleset {
        let spec: FirewallRulesetSpec = serde_json::from_value(serde_json::json!({
            "podSelector": serde_json::from_str::<serde_json::Value>(selector).unwrap(),
            "nft": nft,
        }))
        .unwrap();
        let mut r = FirewallRuleset::new(name, spec);
        r.metadata.namespace = Some("shop".into());
        r.metadata.uid = Some(format!("uid-{name}"));
        r.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + age_secs).unwrap(),
        ));
        r
    }

    fn pod(ns: &str, labels: &[(&str, &str)]) -> Pod {
        Pod {
            uid: "u".into(),
            namespace: ns.into(),
            name: "p".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            host_network: false,
        }
    }

    fn tables(rs: &Ruleset) -> Vec<String> {
        rs.tables
            .iter()
            .map(|t| {
                let rules: usize = t.chains.iter().map(|c| c.rules.len()).sum();
                format!("{} {} ({rules} rules)", t.family.name(), t.name)
            })
            .collect()
    }

    #[test]
    fn selected_rulesets_combine_and_the_oldest_owns_a_contested_table() {
        let policy = RulesetPolicy::new(&[
            // Newer, but a smaller name: still loses the contested table.
            fr(
                "a-new",
                100,
                r#"{"matchLabels": {"app": "web"}}"#,
                "table inet fw { chain c { accept; accept; } }\ntable inet extra { chain x { accept } }",
            ),
            fr(
                "b-old",
                0,
                r#"{"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}"#,
                "table inet fw { chain c { accept } }",
            ),
            fr("broken", 0, "{}", "table inet bad { chain c { bogus } }"),
            fr("db-only", 0, r#"{"matchLabels": {"app": "db"}}"#, "table ip db { }"),
        ]);
        let web = policy.desired(&pod("shop", &[("app", "web")])).unwrap();
        assert_eq!(
            tables(&web),
            ["inet extra (1 rules)", "inet fw (1 rules)"],
            "b-old owns inet fw; a-new keeps its other table; broken adds nothing"
        );
        let api = policy.desired(&pod("shop", &[("app", "api")])).unwrap();
        assert_eq!(tables(&api), ["inet fw (1 rules)"]);
        // Selected only by the broken resource: it contributes nothing.
        assert_eq!(
            policy.desired(&pod("shop", &[("app", "cache")])),
            None,
            "nothing valid selects it"
        );
        assert_eq!(policy.desired(&pod("other", &[("app", "web")])), None);
    }

    #[test]
    fn an_edited_resource_shares_what_it_kept_with_its_previous_generation() {
        let nft = |port: u16| {
            format!(
                "table inet fw {{ chain x {{ tcp dport 22 accept; udp dport 53 accept }} \
                 chain y {{ tcp dport 80 accept; tcp dport {port} accept; tcp dport 443 accept }} }}"
            )
        };
        let sel = r#"{"matchLabels": {"app": "web"}}"#;
        let v1 = RulesetPolicy::new(&[fr("fw", 0, sel, &nft(8080))]);
        let mut edited = fr("fw", 0, sel, &nft(9090));
        edited.metadata.generation = Some(2);
        let v2 = RulesetPolicy::next(&v1, &[edited.clone()]);
        let web = pod("shop", &[("app", "web")]);
        let (d1, d2) = (v1.desired(&web).unwrap(), v2.desired(&web).unwrap());
        let fresh = linx_crds::compile(&edited.spec).unwrap();
        assert_eq!(d2, fresh, "the same value as a fresh compile");
        let (c1, c2) = (&d1.tables[0].chains, &d2.tables[0].chains);
        assert!(c2[0].rules.same(&c1[0].rules), "chain x untouched");
        assert!(!c2[1].rules.same(&c1[1].rules));
        let kept: Vec<bool> = (0..3)
            .map(|i| c2[1].rules[i].exprs.same(&c1[1].rules[i].exprs))
            .collect();
        assert_eq!(kept, [true, false, true], "only the edited rule is new");
    }

    #[test]
    fn label_selectors_follow_kubernetes_semantics() {
        let sel = |s: &str| -> LabelSelector { serde_json::from_str(s).unwrap() };
        let l = |v: &[(&str, &str)]| -> BTreeMap<String, String> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert!(selects(&sel("{}"), &l(&[])));
        assert!(selects(
            &sel(r#"{"matchLabels":{"a":"1"}}"#),
            &l(&[("a", "1"), ("b", "2")])
        ));
        assert!(!selects(
            &sel(r#"{"matchLabels":{"a":"1"}}"#),
            &l(&[("a", "2")])
        ));
        let e = |op: &str| {
            sel(&format!(
                r#"{{"matchExpressions":[{{"key":"a","operator":"{op}","values":["1"]}}]}}"#
            ))
        };
        assert!(selects(&e("NotIn"), &l(&[])));
        assert!(!selects(&e("NotIn"), &l(&[("a", "1")])));
        assert!(selects(&e("Exists"), &l(&[("a", "x")])));
        assert!(selects(&e("DoesNotExist"), &l(&[("b", "x")])));
        assert!(!selects(&e("Sometimes"), &l(&[("a", "1")])));
    }
}
