//! The policy from FirewallRulesets: a pod's desired ruleset is the tables
//! of every FirewallRuleset of its namespace whose `podSelector` matches
//! it, combined per `linx_crds::conflict` (a table claimed by several goes
//! to the oldest resource, then the smaller name; the others apply their
//! remaining tables). A resource that does not compile contributes nothing
//! (the operator reports it); other resources still apply.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use linx_crds::conflict::{resolve, Claim};
use linx_crds::{Family as CrdFamily, FirewallRuleset};
use linx_netfilter::{Family, Ruleset};
use tracing::warn;

use crate::desired::Policy;
use crate::pod::Pod;

/// One FirewallRuleset, compiled once.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub name: String,
    pub uid: String,
    pub generation: i64,
    created: Option<Time>,
    selector: LabelSelector,
    /// The compiled value, or why it does not compile.
    pub value: Result<Arc<Ruleset>, String>,
}

/// The FirewallRulesets known, by namespace.
#[derive(Clone, Debug, Default)]
pub struct RulesetPolicy {
    by_namespace: BTreeMap<String, Vec<Compiled>>,
}

impl RulesetPolicy {
    /// Compiles each resource once.
    pub fn new<'a>(rulesets: impl IntoIterator<Item = &'a FirewallRuleset>) -> Self {
        let mut by_namespace: BTreeMap<String, Vec<Compiled>> = BTreeMap::new();
        for r in rulesets {
            let m = &r.metadata;
            let (Some(ns), Some(name)) = (m.namespace.clone(), m.name.clone()) else {
                continue;
            };
            let value = linx_crds::convert::to_ruleset(&r.spec)
                .map(Arc::new)
                .map_err(|d| {
                    d.iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                });
            if let Err(e) = &value {
                warn!(ruleset = %format!("{ns}/{name}"), error = %e, "does not compile: not applied");
            }
            by_namespace.entry(ns).or_default().push(Compiled {
                name,
                uid: m.uid.clone().unwrap_or_default(),
                generation: m.generation.unwrap_or(0),
                created: m.creation_timestamp.clone(),
                selector: r.spec.pod_selector.clone(),
                value,
            });
        }
        RulesetPolicy { by_namespace }
    }

    /// The resources of the pod's namespace that select it.
    pub fn selecting<'a>(&'a self, pod: &'a Pod) -> impl Iterator<Item = &'a Compiled> + 'a {
        self.by_namespace
            .get(&pod.namespace)
            .into_iter()
            .flatten()
            .filter(|c| selects(&c.selector, &pod.labels))
    }
}

impl Policy for RulesetPolicy {
    fn desired(&self, pod: &Pod) -> Option<Ruleset> {
        let chosen: Vec<(&Compiled, &Arc<Ruleset>)> = self
            .selecting(pod)
            .filter_map(|c| c.value.as_ref().ok().map(|v| (c, v)))
            .collect();
        if chosen.is_empty() {
            return None;
        }
        let claims: Vec<Claim> = chosen
            .iter()
            .map(|(c, v)| Claim {
                name: c.name.clone(),
                created: c.created.clone(),
                tables: v
                    .tables
                    .iter()
                    .filter_map(|t| Some((crd_family(t.family)?, t.name.clone())))
                    .collect(),
            })
            .collect();
        let res = resolve(&claims);
        let mut out = Ruleset::default();
        for (c, v) in chosen {
            for t in &v.tables {
                let ok = crd_family(t.family).is_none_or(|f| res.may_apply(&c.name, f, &t.name));
                if ok {
                    out.tables.push(t.clone());
                }
            }
        }
        Some(out)
    }
}

fn crd_family(f: Family) -> Option<CrdFamily> {
    [
        CrdFamily::Inet,
        CrdFamily::Ip,
        CrdFamily::Ip6,
        CrdFamily::Arp,
        CrdFamily::Bridge,
        CrdFamily::Netdev,
    ]
    .into_iter()
    .find(|c| c.as_str() == f.name())
}

/// Whether a label selector matches labels (Kubernetes semantics; an empty
/// selector matches everything; an unknown operator matches nothing).
pub fn selects(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && sel.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                _ => false,
            }
        })
}

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
