//! What a node agent reports: one small `FirewallNodeReport` per node.
//!
//! Each agent writes only its own node's report (named after the node, with
//! server-side apply and field manager [`AGENT_FIELD_MANAGER`]); the operator
//! watches all reports and folds them into each FirewallRuleset's status.
//! No two agents ever write the same object, and a report carries counts per
//! ruleset plus a few failures, so its size does not grow with the number of
//! pods. See `docs/reporting.md`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Field manager the agent uses when applying its report.
pub const AGENT_FIELD_MANAGER: &str = "linx-agent";

/// Rulesets one report may describe.
pub const MAX_RULESETS_PER_REPORT: usize = 1024;
/// Failures kept per ruleset entry; the counts stay exact.
pub const MAX_FAILURES: usize = 5;
/// Characters of an error message.
pub const MAX_MESSAGE_LEN: usize = 1024;
/// Rules listed with their would-be drops (the most first); totals stay exact.
pub const MAX_RULE_COUNTS: usize = 10;
/// Pods listed per ruleset entry; the counts stay exact.
pub const MAX_PODS: usize = 100;
/// Unprotected pods one report lists; the count stays exact.
pub const MAX_UNPROTECTED: usize = 100;
/// Bytes of a report's spec as JSON, at most: the API server stores
/// objects up to 1.5 MiB (etcd's default request limit), and a report's
/// `managedFields` (one server-side-apply manager; a key per entry) and
/// metadata take well under the remaining 0.5 MiB at 1,024 entries. The
/// per-field caps alone allow far more (1,024 entries of 100 pods each):
/// [`FirewallNodeReportSpec::fit`] cuts examples, then entries, to stay under.
pub const MAX_REPORT_BYTES: usize = 1 << 20;

/// How the FirewallRulesets selecting pods on one node are applied there.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "netfilter.linx.dev",
    version = "v1alpha1",
    kind = "FirewallNodeReport",
    plural = "firewallnodereports",
    shortname = "fwnr",
    category = "linx",
    doc = "Per-node report of the linx agent: how the FirewallRulesets selecting pods on this node are applied. Written by that node's agent only.",
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.nodeName"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.nodeName == oldSelf.nodeName", "message": "nodeName is immutable"}
]))]
pub struct FirewallNodeReportSpec {
    /// The node this report is about; equal to the object's name.
    #[schemars(length(min = 1, max = 253))]
    pub node_name: String,
    /// One entry per FirewallRuleset selecting at least one pod of the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RULESETS_PER_REPORT))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["namespace", "name"]))]
    pub rulesets: Vec<RulesetReport>,
    /// How the node's selected pods started, when the agent serves
    /// `linx-cni` (see `docs/cni.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_starts: Option<PodStarts>,
    /// Set when the report was cut to stay under its size cap (1 MiB of
    /// JSON): what was left out. The counts of the entries kept stay exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncation>,
}

/// What [`FirewallNodeReportSpec::fit`] left out of a report, in the order
/// it cuts: per-pod lists, then failures, would-be-drop rules and
/// messages, then unprotected pods listed, then whole entries (the last by
/// namespace and name).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Truncation {
    /// Entries whose `pods` list was left out.
    pub pod_lists: i32,
    /// Entries whose `failures`, `wouldDrop` and `message` were left out.
    pub details: i32,
    /// Pods left out of `podStarts.unprotected` (`unprotectedCount` stays exact).
    pub unprotected: i32,
    /// Entries left out whole: this node's pods are not counted for those
    /// rulesets.
    pub rulesets: i32,
}

/// How the pods of a node that some FirewallRuleset selects started:
/// whether their firewall was in their namespace before their first
/// container ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodStarts {
    /// Pods whose firewall `linx-cni` had the agent enforce before their
    /// sandbox was handed back to the runtime: protected from their first
    /// packet.
    pub protected: i32,
    /// Pods whose start `linx-cni` did not see (started before it was
    /// installed, or in an excluded namespace): protected since the agent
    /// found them, not from their start.
    pub unobserved: i32,
    /// Pods that `linx-cni` let start without their firewall (`failOpen`:
    /// the agent could not enforce it in time), as long as they run.
    pub unprotected_count: i32,
    /// Some of them (at most 100), by namespace and name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_UNPROTECTED))]
    pub unprotected: Vec<UnprotectedPod>,
}

/// A pod that started without its firewall.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct UnprotectedPod {
    #[schemars(length(max = 63))]
    pub namespace: String,
    #[schemars(length(max = 253))]
    pub name: String,
    /// Whether its firewall is in now (the agent has caught up since).
    pub enforced: bool,
    /// Why it was not in at start, as `linx-cni` saw it.
    #[schemars(length(max = MAX_MESSAGE_LEN))]
    pub reason: String,
}

/// The state of one FirewallRuleset on one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RulesetReport {
    /// Namespace of the FirewallRuleset.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the FirewallRuleset.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// UID of the FirewallRuleset, so a report about a deleted resource is
    /// never counted for a new one with the same name.
    #[schemars(length(max = 64))]
    pub uid: String,
    /// `metadata.generation` of the FirewallRuleset the agent acted on.
    pub generation: i64,
    /// Pods on this node the ruleset selects.
    pub matched_pods: i32,
    /// Of those, pods whose tables equal this generation's rules.
    pub applied_pods: i32,
    /// Of those, pods where applying this generation failed.
    pub failed_pods: i32,
    /// Set when the agent enforces another generation than `generation`
    /// (which does not compile): the last valid generation it knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced_generation: Option<i64>,
    /// Why `generation` is not the one enforced (it does not compile), and
    /// what is enforced instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_MESSAGE_LEN))]
    pub message: Option<String>,
    /// Some failures (at most 5), with the kernel's or the agent's error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_FAILURES))]
    pub failures: Vec<PodFailure>,
    /// In `Audit` mode: packets the enforced generation would have
    /// dropped on this node since the agent enforces it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub would_drop_total: u64,
    /// The rules that would have dropped the most on this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_RULE_COUNTS))]
    pub would_drop: Vec<RuleCount>,
    /// Each selected pod (at most 100, by name): what is applied there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_PODS))]
    pub pods: Vec<PodRuleset>,
    /// How long programming took for the applied pods: for each, from the
    /// agent learning of the last change to its desired rules (this
    /// ruleset's generation, another ruleset selecting it, its labels, the
    /// pod itself) to the kernel commit in the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_latency: Option<ProgramLatency>,
}

/// Percentiles of program latency over the pods of one entry, in
/// milliseconds (the agent's `linx_program_latency_seconds` histogram
/// holds every sample).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgramLatency {
    /// Median.
    #[schemars(range(min = 0))]
    pub p50_millis: i64,
    /// 99th percentile (nearest rank).
    #[schemars(range(min = 0))]
    pub p99_millis: i64,
}

impl ProgramLatency {
    /// The percentiles of `millis` (any order); `None` when empty.
    ///
    /// ```
    /// use linx_crds::report::ProgramLatency;
    /// let l = ProgramLatency::of(&mut [30, 10, 20]).unwrap();
    /// assert_eq!((l.p50_millis, l.p99_millis), (20, 30));
    /// ```
    pub fn of(millis: &mut [i64]) -> Option<Self> {
        if millis.is_empty() {
            return None;
        }
        millis.sort_unstable();
        // Nearest rank: the smallest value with at least p% at or below it.
        let rank = |p: usize| millis[(millis.len() * p).div_ceil(100).max(1) - 1];
        Some(ProgramLatency {
            p50_millis: rank(50),
            p99_millis: rank(99),
        })
    }
}

/// Packets counted for one rule of a FirewallRuleset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleCount {
    /// The rule in the pod's kernel: `inet fw input #2` (index in its
    /// chain, 0 first) or `inet fw input policy`.
    #[schemars(length(max = 256))]
    pub rule: String,
    /// Where it comes from in the resource: `line:column` of `spec.nft`,
    /// or the field (`spec.tables[0].chains[1].rules[2]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub source: Option<String>,
    pub count: u64,
}

/// One pod selected by a FirewallRuleset, as its node's agent sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodRuleset {
    /// Pod name (the ruleset's namespace).
    #[schemars(length(max = 253))]
    pub pod: String,
    /// `Applied`, `Pending`, `Failed`, `NotRunning` or `Skipped`.
    #[schemars(length(max = 32))]
    pub state: String,
    /// The ruleset generation the pod's kernel holds, when applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_generation: Option<i64>,
    /// In `Audit` mode: packets of this pod the ruleset would have dropped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub would_drop: u64,
}

/// For `skip_serializing_if`.
pub fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why applying failed in one pod.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct PodFailure {
    /// Node of the pod.
    #[serde(default)]
    #[schemars(length(max = 253))]
    pub node: String,
    /// Pod name.
    #[schemars(length(max = 253))]
    pub pod: String,
    /// The error.
    #[schemars(length(max = MAX_MESSAGE_LEN))]
    pub message: String,
}

impl FirewallNodeReport {
    /// The report for `node`, named after it.
    ///
    /// ```
    /// use linx_crds::{FirewallNodeReport, RulesetReport};
    /// let r = FirewallNodeReport::for_node("node-1", vec![RulesetReport {
    ///     namespace: "web".into(), name: "base".into(), uid: "u1".into(), generation: 3,
    ///     matched_pods: 2, applied_pods: 2, failed_pods: 0, ..Default::default()
    /// }]);
    /// assert_eq!(r.metadata.name.as_deref(), Some("node-1"));
    /// ```
    pub fn for_node(node: &str, rulesets: Vec<RulesetReport>) -> Self {
        FirewallNodeReport::new(
            node,
            FirewallNodeReportSpec {
                node_name: node.to_string(),
                rulesets,
                pod_starts: None,
                truncated: None,
            },
        )
    }

    /// Makes the Node the report's owner, so the garbage collector deletes
    /// the report with its node.
    ///
    /// ```
    /// use linx_crds::FirewallNodeReport;
    /// let r = FirewallNodeReport::for_node("node-1", vec![]).owned_by_node("6f1c-uid");
    /// let owner = &r.metadata.owner_references.as_ref().unwrap()[0];
    /// assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", "node-1"));
    /// ```
    pub fn owned_by_node(mut self, node_uid: &str) -> Self {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        self.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: self.spec.node_name.clone(),
            uid: node_uid.into(),
            ..Default::default()
        }]);
        self
    }
}

/// Bytes of `v` as JSON.
fn json_len<T: Serialize>(v: &T) -> usize {
    serde_json::to_vec(v).map_or(0, |b| b.len())
}

impl FirewallNodeReportSpec {
    /// Cuts the report until its JSON takes at most `max` bytes, and says
    /// what it cut in `truncated` (`None` when nothing was). Examples go
    /// first, from the largest entries: per-pod lists, then failures,
    /// would-be-drop rules and messages, then unprotected pods listed;
    /// counts stay exact. Only if that is not enough, whole entries go,
    /// the last first. Sizes are measured once per entry (a report of
    /// 1,024 entries is not serialized again per cut).
    ///
    /// ```
    /// use linx_crds::report::{FirewallNodeReportSpec, PodRuleset, RulesetReport};
    /// let pods = vec![PodRuleset { pod: "p".repeat(200), state: "Applied".into(), ..Default::default() }; 100];
    /// let entry = RulesetReport { namespace: "web".into(), name: "fw".into(), matched_pods: 100, pods, ..Default::default() };
    /// let mut spec = FirewallNodeReportSpec { node_name: "n1".into(), rulesets: vec![entry; 4], ..Default::default() };
    /// spec.fit(40_000);
    /// assert!(serde_json::to_vec(&spec).unwrap().len() <= 40_000);
    /// assert_eq!(spec.truncated.unwrap().pod_lists, 3);
    /// assert!(spec.rulesets.iter().all(|e| e.matched_pods == 100));
    /// ```
    pub fn fit(&mut self, max: usize) {
        self.truncated = None;
        let mut entries = std::mem::take(&mut self.rulesets);
        // An upper bound of the size: what is not an entry (with the
        // largest marker there could be), each entry, a comma each.
        let worst = Truncation {
            pod_lists: i32::MAX,
            details: i32::MAX,
            unprotected: i32::MAX,
            rulesets: i32::MAX,
        };
        let mut rest = self.clone();
        rest.truncated = Some(worst);
        let fixed = json_len(&rest) + r#","rulesets":[]"#.len();
        let mut sizes: Vec<usize> = entries.iter().map(|e| json_len(e) + 1).collect();
        let mut total = fixed + sizes.iter().sum::<usize>();
        let mut cut = Truncation::default();
        if total > max {
            // Largest entries first, the same order each time.
            let mut order: Vec<usize> = (0..entries.len()).collect();
            order.sort_by_key(|&i| (std::cmp::Reverse(sizes[i]), i));
            let strip_pods = |e: &mut RulesetReport| !std::mem::take(&mut e.pods).is_empty();
            let strip_details = |e: &mut RulesetReport| {
                let had = !e.failures.is_empty() || !e.would_drop.is_empty() || e.message.is_some();
                e.failures.clear();
                e.would_drop.clear();
                e.message = None;
                had
            };
            for (strip, count) in [
                (
                    &strip_pods as &dyn Fn(&mut RulesetReport) -> bool,
                    &mut cut.pod_lists,
                ),
                (&strip_details, &mut cut.details),
            ] {
                for &i in &order {
                    if total <= max {
                        break;
                    }
                    if strip(&mut entries[i]) {
                        let size = json_len(&entries[i]) + 1;
                        total -= sizes[i] - size;
                        sizes[i] = size;
                        *count += 1;
                    }
                }
            }
        }
        if let Some(starts) = self.pod_starts.as_mut() {
            while total > max {
                let Some(p) = starts.unprotected.pop() else {
                    break;
                };
                total -= json_len(&p);
                cut.unprotected += 1;
            }
        }
        while total > max {
            if entries.pop().is_none() {
                break;
            }
            total -= sizes.pop().unwrap_or(0);
            cut.rulesets += 1;
        }
        self.rulesets = entries;
        if cut != Truncation::default() {
            self.truncated = Some(cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry at its per-field caps: names at their maximum length,
    /// `MAX_PODS` pods, `MAX_FAILURES` failures, a message.
    fn full_entry(i: usize) -> RulesetReport {
        let long = |c: char, n: usize| c.to_string().repeat(n);
        RulesetReport {
            namespace: format!("{i:03}{}", long('n', 60)),
            name: long('r', 253),
            uid: long('u', 36),
            generation: 7,
            matched_pods: 1000,
            applied_pods: 990,
            failed_pods: 10,
            message: Some(long('m', MAX_MESSAGE_LEN)),
            failures: vec![
                PodFailure {
                    node: long('x', 253),
                    pod: long('p', 253),
                    message: long('e', MAX_MESSAGE_LEN),
                };
                MAX_FAILURES
            ],
            pods: vec![
                PodRuleset {
                    pod: long('p', 253),
                    state: "Applied".into(),
                    applied_generation: Some(7),
                    would_drop: 0,
                };
                MAX_PODS
            ],
            ..Default::default()
        }
    }

    fn spec(entries: usize, unprotected: usize) -> FirewallNodeReportSpec {
        FirewallNodeReportSpec {
            node_name: "n".repeat(253),
            rulesets: (0..entries).map(full_entry).collect(),
            pod_starts: Some(PodStarts {
                unprotected_count: unprotected as i32,
                unprotected: vec![
                    UnprotectedPod {
                        namespace: "n".repeat(63),
                        name: "p".repeat(253),
                        enforced: false,
                        reason: "e".repeat(MAX_MESSAGE_LEN),
                    };
                    unprotected
                ],
                ..Default::default()
            }),
            truncated: None,
        }
    }

    fn counts(s: &FirewallNodeReportSpec) -> Vec<(i32, i32, i32)> {
        s.rulesets
            .iter()
            .map(|e| (e.matched_pods, e.applied_pods, e.failed_pods))
            .collect()
    }

    #[test]
    fn a_report_under_its_cap_is_left_as_it_is() {
        let mut s = spec(2, 3);
        let before = s.clone();
        s.fit(MAX_REPORT_BYTES);
        assert_eq!(s, before);
    }

    #[test]
    fn every_field_at_its_cap_would_exceed_the_total_and_is_cut_to_it() {
        // 1,024 entries at their per-field caps: about 40 MB uncut.
        let mut s = spec(MAX_RULESETS_PER_REPORT, MAX_UNPROTECTED);
        assert!(json_len(&s) > 30 * MAX_REPORT_BYTES, "{}", json_len(&s));
        let exact = counts(&s);
        s.fit(MAX_REPORT_BYTES);
        let size = json_len(&s);
        assert!(size <= MAX_REPORT_BYTES, "{size}");
        // Examples went, every count stayed.
        assert_eq!(counts(&s), exact);
        let t = s.truncated.expect("marked");
        assert_eq!(t.pod_lists, MAX_RULESETS_PER_REPORT as i32);
        assert!(t.details > 0 && t.rulesets == 0, "{t:?}");
        assert_eq!(s.pod_starts.as_ref().unwrap().unprotected_count, 100);
    }

    #[test]
    fn cuts_go_in_order_and_the_marker_counts_them() {
        let without_pods = {
            let mut e = full_entry(0);
            e.pods.clear();
            json_len(&e) + 1
        };
        let bare = {
            let mut e = full_entry(0);
            e.pods.clear();
            e.failures.clear();
            e.message = None;
            json_len(&e) + 1
        };
        // What is not an entry, the marker and some slack: far less than
        // an entry's details.
        let rest = json_len(&spec(0, 2)) + 200 + 1_000;
        assert!(without_pods - bare > 4_000);
        // Room for one pod list less.
        let mut s = spec(4, 2);
        s.fit(json_len(&s) - 1);
        let t = s.truncated.unwrap();
        assert_eq!(
            (t.pod_lists, t.details, t.unprotected, t.rulesets),
            (1, 0, 0, 0)
        );
        // Room for two entries' details: every pod list goes, then two
        // entries' details; the unprotected pods stay.
        let mut s = spec(4, 2);
        s.fit(rest + 2 * without_pods + 2 * bare);
        let t = s.truncated.unwrap();
        assert_eq!(
            (t.pod_lists, t.details, t.unprotected, t.rulesets),
            (4, 2, 0, 0)
        );
        assert_eq!(s.pod_starts.as_ref().unwrap().unprotected.len(), 2);
        // Too small for the entries themselves: the last ones go whole.
        let mut s = spec(4, 2);
        s.fit(json_len(&spec(0, 0)) + 2 * bare);
        let t = s.truncated.unwrap();
        assert_eq!((t.pod_lists, t.details, t.unprotected), (4, 4, 2));
        assert!(t.rulesets >= 2, "{t:?}");
        assert_eq!(s.rulesets.len(), 4 - t.rulesets as usize);
        assert_eq!(s.rulesets[0].namespace, full_entry(0).namespace);
    }

    #[test]
    fn the_cut_report_never_exceeds_any_cap() {
        let full = spec(16, 20);
        for max in (0..json_len(&full)).step_by(997) {
            let mut s = full.clone();
            s.fit(max);
            let size = json_len(&s);
            assert!(size <= max || s.rulesets.is_empty(), "{size} > {max}");
            // Fitting again changes nothing but the marker.
            let mut again = s.clone();
            again.fit(max);
            assert_eq!(again.rulesets, s.rulesets);
        }
    }
}
