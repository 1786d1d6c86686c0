//! Folding node agents' reports into per-ruleset counts (the pure index).

use std::collections::BTreeMap;

use linx_crds::report::MAX_RULE_COUNTS;
use linx_crds::{FirewallNodeReport, PodFailure, RuleCount};

/// Failures kept per ruleset, and so copied into its status.
pub const MAX_STATUS_FAILURES: usize = 10;

/// What all agents together say about one FirewallRuleset generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Aggregate {
    /// Nodes whose report names the ruleset (any generation).
    pub nodes: u32,
    /// Nodes that have not yet acted on the current generation.
    pub stale_nodes: u32,
    pub matched: i32,
    pub applied: i32,
    pub failed: i32,
    /// Up to [`MAX_STATUS_FAILURES`] failures, sorted by node then pod.
    pub failures: Vec<PodFailure>,
    /// Would-be drops (Audit) of the current generation, summed.
    pub would_drop_total: u64,
    /// The rules that would have dropped the most, summed over nodes.
    pub would_drop: Vec<RuleCount>,
}

impl Aggregate {
    /// True when some agent reported on this ruleset.
    pub fn reported(&self) -> bool {
        self.nodes > 0
    }
}

/// Sums the entries about `namespace/name` (with `uid`) over `reports`.
///
/// Matched pods count from every report; applied and failed pods only from
/// reports about `generation`, so a node still applying an older
/// generation counts as pending. Entries for another uid (a deleted
/// resource of the same name) are ignored.
pub fn aggregate<'a>(
    reports: impl IntoIterator<Item = &'a FirewallNodeReport>,
    namespace: &str,
    name: &str,
    uid: &str,
    generation: i64,
) -> Aggregate {
    let mut agg = Aggregate::default();
    let mut by_rule: BTreeMap<(String, Option<String>), u64> = BTreeMap::new();
    for report in reports {
        let node = &report.spec.node_name;
        for e in report
            .spec
            .rulesets
            .iter()
            .filter(|e| e.namespace == namespace && e.name == name && e.uid == uid)
        {
            agg.nodes += 1;
            agg.matched = agg.matched.saturating_add(e.matched_pods.max(0));
            if e.generation != generation {
                agg.stale_nodes += 1;
                continue;
            }
            agg.applied = agg.applied.saturating_add(e.applied_pods.max(0));
            agg.failed = agg.failed.saturating_add(e.failed_pods.max(0));
            agg.failures.extend(e.failures.iter().map(|f| PodFailure {
                node: node.clone(),
                ..f.clone()
            }));
            agg.would_drop_total = agg.would_drop_total.saturating_add(e.would_drop_total);
            for r in &e.would_drop {
                let n = by_rule
                    .entry((r.rule.clone(), r.source.clone()))
                    .or_default();
                *n = n.saturating_add(r.count);
            }
        }
    }
    // Each node lists only its own top rules: a rule's sum counts the
    // nodes listing it (a lower bound); the total is exact.
    let mut rules: Vec<RuleCount> = by_rule
        .into_iter()
        .map(|((rule, source), count)| RuleCount {
            rule,
            source,
            count,
        })
        .collect();
    rules.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.rule.cmp(&b.rule)));
    rules.truncate(MAX_RULE_COUNTS);
    agg.would_drop = rules;
    agg.failures.sort();
    agg.failures.truncate(MAX_STATUS_FAILURES);
    agg
}
