//! Which FirewallRuleset owns a table when several claim it.
//!
//! Every FirewallRuleset owns the tables it declares in each pod it
//! selects. Two resources selecting the same pod and declaring a table of
//! the same family and name conflict. The rule, applied the same way by the
//! operator (to report) and by the agents (to decide what to apply):
//!
//! **the resource created first owns the table; equal creation times are
//! broken by name (lexicographically smaller wins).** Resources never
//! change their creation time or name, so the winner is stable: a new
//! resource cannot take a table away from an existing one, and the loser
//! applies its other tables only. Both report the conflict.
//!
//! Resources are namespaced and select pods of their namespace only, so
//! claims only ever compete within one namespace.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

use crate::resource::{Family, TableConflict};

/// One resource's claim on tables.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// The resource's name (they are all in one namespace).
    pub name: String,
    /// `metadata.creationTimestamp`; `None` sorts after every time.
    pub created: Option<Time>,
    /// Tables it declares.
    pub tables: Vec<(Family, String)>,
}

/// The outcome: which resource owns each contested table, and what each
/// resource should report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolution {
    /// Contested tables and their owner's name.
    pub owners: BTreeMap<(Family, String), String>,
    /// Conflicts by resource name, sorted by table then other resource.
    pub conflicts: BTreeMap<String, Vec<TableConflict>>,
}

impl Resolution {
    /// True when `resource` may apply `table` (it is uncontested or owned).
    pub fn may_apply(&self, resource: &str, family: Family, table: &str) -> bool {
        self.owners
            .get(&(family, table.to_string()))
            .is_none_or(|o| o == resource)
    }
}

/// Orders claims by precedence: oldest first, then by name.
fn precedes(a: &Claim, b: &Claim) -> std::cmp::Ordering {
    let key = |c: &Claim| {
        (
            c.created.is_none(),
            c.created.as_ref().map(|t| t.0),
            c.name.clone(),
        )
    };
    key(a).cmp(&key(b))
}

/// Resolves claims made by resources that all select one pod (the agent's
/// view) or that may select a common pod (the operator's view).
///
/// ```
/// use linx_crds::conflict::{resolve, Claim};
/// use linx_crds::Family;
/// let a = Claim { name: "a".into(), created: None, tables: vec![(Family::Inet, "fw".into())] };
/// let b = Claim { name: "b".into(), created: None, tables: vec![(Family::Inet, "fw".into())] };
/// let r = resolve(&[b, a]);
/// assert!(r.may_apply("a", Family::Inet, "fw"));
/// assert!(!r.may_apply("b", Family::Inet, "fw"));
/// ```
pub fn resolve(claims: &[Claim]) -> Resolution {
    let mut order: Vec<&Claim> = claims.iter().collect();
    order.sort_by(|a, b| precedes(a, b));
    let mut claimants: BTreeMap<(Family, String), Vec<&str>> = BTreeMap::new();
    for c in &order {
        for t in &c.tables {
            let v = claimants.entry(t.clone()).or_default();
            // A resource declaring one table twice is the validator's business.
            if !v.contains(&c.name.as_str()) {
                v.push(&c.name);
            }
        }
    }
    let mut res = Resolution::default();
    for ((family, table), names) in claimants.into_iter().filter(|(_, v)| v.len() > 1) {
        let owner = names[0];
        for n in &names {
            let entry = res.conflicts.entry(n.to_string()).or_default();
            // The owner names every other claimant; one that lost names the
            // owner only (the other losers do not hold the table either).
            let others = names
                .iter()
                .filter(|o| *o != n && (*n == owner || **o == owner));
            for other in others {
                entry.push(TableConflict {
                    table: format!("{family} {table}"),
                    other: other.to_string(),
                    owned: *n == owner,
                });
            }
        }
        res.owners.insert((family, table), owner.to_string());
    }
    res
}

/// True when some set of labels satisfies both selectors, i.e. a pod could
/// be selected by both. Unknown operators are taken as satisfiable, so the
/// answer errs towards reporting a conflict.
pub fn selectors_may_overlap(a: &LabelSelector, b: &LabelSelector) -> bool {
    #[derive(Default)]
    struct Key<'a> {
        allowed: Option<Vec<&'a str>>,
        denied: Vec<&'a str>,
        exists: bool,
        absent: bool,
    }
    let mut keys: BTreeMap<&str, Key> = BTreeMap::new();
    for sel in [a, b] {
        for (k, v) in sel.match_labels.iter().flatten() {
            restrict(keys.entry(k).or_default(), vec![v.as_str()]);
        }
        for e in sel.match_expressions.iter().flatten() {
            let key = keys.entry(&e.key).or_default();
            let vals: Vec<&str> = e.values.iter().flatten().map(String::as_str).collect();
            match e.operator.as_str() {
                "In" => restrict(key, vals),
                "NotIn" => key.denied.extend(vals),
                "Exists" => key.exists = true,
                "DoesNotExist" => key.absent = true,
                _ => {}
            }
        }
    }
    fn restrict<'a>(key: &mut Key<'a>, vals: Vec<&'a str>) {
        key.allowed = Some(match key.allowed.take() {
            None => vals,
            Some(prev) => prev.into_iter().filter(|v| vals.contains(v)).collect(),
        });
    }
    keys.values().all(|k| {
        let must_exist = k.exists || k.allowed.is_some();
        if k.absent && must_exist {
            return false;
        }
        match &k.allowed {
            Some(vals) => vals.iter().any(|v| !k.denied.contains(v)),
            None => true,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn at(secs: i64) -> Option<Time> {
        Some(Time(jiff_ts(secs)))
    }
    fn jiff_ts(secs: i64) -> k8s_openapi::jiff::Timestamp {
        k8s_openapi::jiff::Timestamp::from_second(secs).unwrap()
    }
    fn claim(name: &str, created: Option<Time>, tables: &[&str]) -> Claim {
        Claim {
            name: name.into(),
            created,
            tables: tables
                .iter()
                .map(|t| (Family::Inet, t.to_string()))
                .collect(),
        }
    }

    #[test]
    fn oldest_claim_wins_and_both_report() {
        let r = resolve(&[
            claim("new", at(200), &["fw", "extra"]),
            claim("old", at(100), &["fw"]),
        ]);
        assert_eq!(
            r.owners
                .get(&(Family::Inet, "fw".into()))
                .map(String::as_str),
            Some("old")
        );
        assert!(r.may_apply("new", Family::Inet, "extra"));
        assert!(!r.may_apply("new", Family::Inet, "fw"));
        assert_eq!(
            r.conflicts["new"],
            vec![TableConflict {
                table: "inet fw".into(),
                other: "old".into(),
                owned: false
            }]
        );
        assert_eq!(
            r.conflicts["old"],
            vec![TableConflict {
                table: "inet fw".into(),
                other: "new".into(),
                owned: true
            }]
        );
    }

    #[test]
    fn equal_times_fall_back_to_name_and_order_of_input_does_not_matter() {
        let a = claim("alpha", at(100), &["fw"]);
        let b = claim("beta", at(100), &["fw"]);
        let c = claim("gamma", None, &["fw"]);
        let r1 = resolve(&[a.clone(), b.clone(), c.clone()]);
        let r2 = resolve(&[c, b, a]);
        assert_eq!(r1, r2);
        assert_eq!(r1.owners[&(Family::Inet, "fw".into())], "alpha");
        // The owner names both others; each loser names the owner only.
        assert_eq!(r1.conflicts["alpha"].len(), 2);
        assert!(r1.conflicts["alpha"].iter().all(|c| c.owned));
        for loser in ["beta", "gamma"] {
            let c = &r1.conflicts[loser];
            assert_eq!(c.len(), 1, "{loser}: {c:?}");
            assert_eq!((c[0].other.as_str(), c[0].owned), ("alpha", false));
        }
    }

    #[test]
    fn same_name_in_other_family_is_no_conflict() {
        let a = Claim {
            name: "a".into(),
            created: None,
            tables: vec![(Family::Ip, "fw".into())],
        };
        let b = Claim {
            name: "b".into(),
            created: None,
            tables: vec![(Family::Ip6, "fw".into())],
        };
        let r = resolve(&[a, b]);
        assert!(r.owners.is_empty() && r.conflicts.is_empty());
    }

    fn sel(labels: &[(&str, &str)], exprs: &[(&str, &str, &[&str])]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            match_expressions: Some(
                exprs
                    .iter()
                    .map(|(k, op, vals)| LabelSelectorRequirement {
                        key: k.to_string(),
                        operator: op.to_string(),
                        values: Some(vals.iter().map(|v| v.to_string()).collect()),
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn selector_overlap() {
        let all = LabelSelector::default();
        let web = sel(&[("app", "web")], &[]);
        let db = sel(&[("app", "db")], &[]);
        assert!(selectors_may_overlap(&all, &web));
        assert!(!selectors_may_overlap(&web, &db));
        assert!(selectors_may_overlap(
            &web,
            &sel(&[], &[("app", "In", &["web", "db"])])
        ));
        assert!(!selectors_may_overlap(
            &web,
            &sel(&[], &[("app", "NotIn", &["web"])])
        ));
        assert!(!selectors_may_overlap(
            &web,
            &sel(&[], &[("app", "DoesNotExist", &[])])
        ));
        assert!(selectors_may_overlap(
            &web,
            &sel(&[("tier", "front")], &[("x", "DoesNotExist", &[])])
        ));
        assert!(!selectors_may_overlap(
            &sel(&[], &[("k", "Exists", &[])]),
            &sel(&[], &[("k", "DoesNotExist", &[])])
        ));
    }
}
