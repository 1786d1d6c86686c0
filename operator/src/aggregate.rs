//! Folding node agents' reports into per-ruleset counts (the pure index).

use linx_crds::{FirewallNodeReport, PodFailure};

use crate::status::MAX_STATUS_FAILURES;

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
        }
    }
    agg.failures.sort();
    agg.failures.truncate(MAX_STATUS_FAILURES);
    agg
}
