//! The `FirewallTrace` resource: "what does the firewall do to these
//! packets of this pod", answered by the agent on the pod's node with the
//! engine's trace session, in the pod's network namespace, and written to
//! `status` step by step — each step naming the FirewallRuleset, table,
//! chain, rule index and the rule's line:column in the resource.
//!
//! Sizes are bounded ([`limits`]): at most 20 packets of at most 32 steps,
//! rule texts cut at 256 characters, so a trace's status stays small.
//! The operator deletes a finished trace after `ttlSecondsAfterFinished`.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Bounds of a trace.
pub mod limits {
    /// Packets traced (and kept in the status).
    pub const PACKETS: u32 = 20;
    /// Steps kept per packet; further ones are counted in `stepsOmitted`.
    pub const STEPS: usize = 32;
    /// Characters of a rule's text in a step.
    pub const TEXT_LEN: usize = 256;
    /// Characters of `spec.match`.
    pub const MATCH_LEN: usize = 1024;
    /// Longest trace, seconds.
    pub const TIMEOUT_SECONDS: u32 = 300;
    /// Longest time a finished trace is kept, seconds.
    pub const TTL_SECONDS: u32 = 86_400;
}

/// Defaults of the optional fields.
pub mod defaults {
    pub const COUNT: u32 = 1;
    pub const TIMEOUT_SECONDS: u32 = 10;
    pub const TTL_SECONDS: u32 = 600;
}

/// Traces the packets of one pod that match an nft expression: each
/// packet's path through the pod's firewall, rule by rule, with where each
/// rule is written. Creating one needs the `create` verb on
/// `firewalltraces` in the pod's namespace (ClusterRole `linx-tracer`).
// `type_ = "string"` repeats across printcolumns by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "netfilter.linx.dev",
    version = "v1alpha1",
    kind = "FirewallTrace",
    plural = "firewalltraces",
    shortname = "fwt",
    category = "linx",
    namespaced,
    status = "FirewallTraceStatus",
    doc = "Traces a pod's packets through its firewall: each packet's path, rule by rule, with the FirewallRuleset line of each rule.",
    printcolumn(name = "Pod", type_ = "string", json_path = ".spec.pod"),
    printcolumn(name = "Match", type_ = "string", json_path = ".spec.match"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Packets", type_ = "integer", json_path = ".status.packetCount"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FirewallTraceSpec {
    /// The pod, by name, in this trace's namespace. (`NAMESPACE/NAME` is
    /// understood, and refused for any namespace but this one.)
    #[schemars(length(min = 1, max = 317))]
    pub pod: String,
    /// The packets to trace, as an nft match (`tcp dport 5432`, `ip saddr
    /// 10.0.0.0/8 udp dport 53`): what may stand before a statement in a
    /// rule. Empty: every packet.
    #[serde(default, rename = "match")]
    #[schemars(length(max = limits::MATCH_LEN))]
    pub matching: String,
    /// Packets to trace (1 to 20; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = limits::PACKETS))]
    pub count: Option<u32>,
    /// Longest the trace runs, seconds (1 to 300; default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = limits::TIMEOUT_SECONDS))]
    pub timeout_seconds: Option<u32>,
    /// How long the finished trace is kept before the operator deletes
    /// it, seconds (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = limits::TTL_SECONDS))]
    pub ttl_seconds_after_finished: Option<u32>,
}

impl FirewallTraceSpec {
    pub fn count(&self) -> u32 {
        self.count
            .unwrap_or(defaults::COUNT)
            .clamp(1, limits::PACKETS)
    }
    pub fn timeout_seconds(&self) -> u32 {
        self.timeout_seconds
            .unwrap_or(defaults::TIMEOUT_SECONDS)
            .clamp(1, limits::TIMEOUT_SECONDS)
    }
    pub fn ttl_seconds(&self) -> u32 {
        self.ttl_seconds_after_finished
            .unwrap_or(defaults::TTL_SECONDS)
            .min(limits::TTL_SECONDS)
    }

    /// Checks `match` as the agent's trace session will: an nft match
    /// (no statement) the engine's compiler accepts.
    pub fn check_match(&self) -> Result<(), String> {
        linx_netfilter::trace::check_match(&self.matching).map_err(|e| e.to_string())
    }

    /// The pod's namespace (when written `NAMESPACE/NAME`) and name.
    pub fn pod_ref(&self) -> (Option<&str>, &str) {
        match self.pod.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, &self.pod),
        }
    }
}

/// Where a trace stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TracePhase {
    /// The agent on the pod's node is tracing.
    Running,
    /// The count was reached, or the timeout.
    Completed,
    /// Refused or broken; the `Failed` condition says why.
    Failed,
}

impl TracePhase {
    pub fn is_finished(self) -> bool {
        self != TracePhase::Running
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TracePhase::Running => "Running",
            TracePhase::Completed => "Completed",
            TracePhase::Failed => "Failed",
        }
    }
}

/// Condition types of a trace: one per phase, the current one `True`.
pub const CONDITIONS: [&str; 3] = ["Running", "Completed", "Failed"];

/// Reasons of the `Failed` condition.
pub mod reasons {
    /// `spec.pod` names a pod of another namespace.
    pub const OTHER_NAMESPACE: &str = "OtherNamespace";
    /// The pod shares its node's network namespace: never traced.
    pub const HOST_NETWORK: &str = "HostNetwork";
    /// `spec.match` is not an nft match.
    pub const INVALID_MATCH: &str = "InvalidMatch";
    /// No process of the pod runs (not started, or gone).
    pub const POD_NOT_RUNNING: &str = "PodNotRunning";
    /// The kernel refused the trace, or reading it failed.
    pub const TRACE_FAILED: &str = "TraceFailed";
    /// The agent restarted while tracing.
    pub const AGENT_RESTARTED: &str = "AgentRestarted";
    /// No agent took the trace (set by the operator).
    pub const NOT_PICKED_UP: &str = "NotPickedUp";
    /// Running past its timeout with no word from the agent (set by the operator).
    pub const AGENT_LOST: &str = "AgentLost";
    /// Completed: `count` packets traced.
    pub const COUNT_REACHED: &str = "CountReached";
    /// Completed: the timeout ended the trace.
    pub const TIMED_OUT: &str = "TimedOut";
}

/// What the agent found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirewallTraceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TracePhase>,
    /// `Running`, `Completed`, `Failed` (with reason and message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The node whose agent ran the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Packets traced so far.
    #[serde(default)]
    pub packet_count: u32,
    /// Each packet's path, in the order they came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::PACKETS))]
    pub packets: Vec<TracedPacket>,
}

impl FirewallTraceStatus {
    /// The current condition (the one that is `True`).
    pub fn current(&self) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.status == "True")
    }

    /// Enters `phase`: its condition `True` with `reason` and `message`,
    /// the others `False`; a finished phase sets the completion time.
    pub fn enter(&mut self, phase: TracePhase, reason: &str, message: String, now: &Time) {
        self.phase = Some(phase);
        self.conditions = CONDITIONS
            .iter()
            .map(|ty| {
                let on = *ty == phase.as_str();
                Condition {
                    type_: (*ty).to_owned(),
                    status: if on { "True" } else { "False" }.to_owned(),
                    reason: if on { reason } else { phase.as_str() }.to_owned(),
                    message: if on { message.clone() } else { String::new() },
                    observed_generation: None,
                    last_transition_time: now.clone(),
                }
            })
            .collect();
        if phase.is_finished() {
            self.completion_time = Some(now.clone());
        }
    }
}

/// One packet's path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TracedPacket {
    /// The packet as nft prints one: interfaces, addresses, ports, flags.
    #[schemars(length(max = 1024))]
    pub packet: String,
    /// The final verdict (`accept`, `drop`), if one was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The step that gave the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::STEPS))]
    pub steps: Vec<TraceStep>,
    /// Steps beyond the first 32, not kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub steps_omitted: u32,
    /// Trace messages were lost: steps may be missing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a step is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// A rule matched.
    #[default]
    Rule,
    /// The end of a chain jumped to.
    Return,
    /// A base chain's policy decided.
    Policy,
}

/// One step of a path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceStep {
    pub kind: StepKind,
    /// The FirewallRuleset that owns the table in this pod (none for a
    /// table Linx does not manage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruleset: Option<String>,
    /// `family name` of the table.
    pub table: String,
    pub chain: String,
    /// The rule's index in its chain, 0 first (rule steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<u32>,
    /// Where the rule (or, for a policy, the chain) is written in the
    /// FirewallRuleset: `line:column` of `spec.nft`, or the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The rule as nft lists it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The rule's verdict (`accept`, `drop`, `jump x`), or the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

impl TraceStep {
    /// `FirewallRuleset web: inet linx input rule 2 (6:3): tcp dport 22 drop`.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = &self.ruleset {
            write!(f, "FirewallRuleset {r}: ")?;
        }
        write!(f, "{} {}", self.table, self.chain)?;
        match self.kind {
            StepKind::Rule => {
                match self.rule {
                    Some(i) => write!(f, " rule {i}")?,
                    None => write!(f, " rule ?")?,
                }
                if let Some(s) = &self.source {
                    write!(f, " ({s})")?;
                }
                if let Some(t) = &self.text {
                    write!(f, ": {t}")?;
                }
            }
            StepKind::Return => write!(f, " return (end of chain)")?,
            StepKind::Policy => {
                write!(f, " policy {}", self.verdict.as_deref().unwrap_or("?"))?;
                if let Some(s) = &self.source {
                    write!(f, " ({s})")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for TracedPacket {
    /// The packet, one line per step, and the verdict with the step that
    /// gave it:
    ///
    /// ```text
    /// iif "eth0" ip saddr 10.0.0.1 ip daddr 10.0.0.2 ... tcp dport 22 ...
    ///   FirewallRuleset web: inet linx input rule 1 (5:3): tcp dport 22 drop (verdict drop)
    /// DROP by FirewallRuleset web: inet linx input rule 1 (5:3): tcp dport 22 drop
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.packet)?;
        for s in &self.steps {
            write!(f, "  ")?;
            s.describe(f)?;
            match (s.kind, &s.verdict) {
                (StepKind::Rule, Some(v)) => writeln!(f, " (verdict {v})")?,
                _ => writeln!(f)?,
            }
        }
        if self.steps_omitted > 0 {
            writeln!(f, "  ... {} more step(s)", self.steps_omitted)?;
        }
        if self.incomplete {
            writeln!(f, "  (trace messages were lost: steps may be missing)")?;
        }
        let decided = self.decided_by.and_then(|i| self.steps.get(i as usize));
        match (&self.verdict, decided) {
            (Some(v), Some(s)) => {
                write!(f, "{} by ", v.to_uppercase())?;
                s.describe(f)
            }
            (Some(v), None) => write!(f, "{}", v.to_uppercase()),
            _ => write!(f, "NO VERDICT seen"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_prints_its_steps_and_the_deciding_rule() {
        let p = TracedPacket {
            packet: "iif \"eth0\" ip saddr 10.0.0.1 ip daddr 10.0.0.2 tcp dport 22".into(),
            verdict: Some("drop".into()),
            decided_by: Some(1),
            steps: vec![
                TraceStep {
                    kind: StepKind::Rule,
                    ruleset: Some("web".into()),
                    table: "inet linx".into(),
                    chain: "input".into(),
                    rule: Some(0),
                    source: Some("4:3".into()),
                    text: Some("tcp dport 22 jump admin".into()),
                    verdict: Some("jump admin".into()),
                },
                TraceStep {
                    kind: StepKind::Policy,
                    ruleset: Some("web".into()),
                    table: "inet linx".into(),
                    chain: "input".into(),
                    source: Some("2:8".into()),
                    verdict: Some("drop".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            p.to_string(),
            "iif \"eth0\" ip saddr 10.0.0.1 ip daddr 10.0.0.2 tcp dport 22\n\
             \x20 FirewallRuleset web: inet linx input rule 0 (4:3): tcp dport 22 jump admin (verdict jump admin)\n\
             \x20 FirewallRuleset web: inet linx input policy drop (2:8)\n\
             DROP by FirewallRuleset web: inet linx input policy drop (2:8)"
        );
    }

    #[test]
    fn bounds_apply_to_the_optional_fields() {
        let s = FirewallTraceSpec {
            pod: "other/web-0".into(),
            count: Some(500),
            timeout_seconds: Some(0),
            ..Default::default()
        };
        assert_eq!(
            (s.count(), s.timeout_seconds(), s.ttl_seconds()),
            (20, 1, 600)
        );
        assert_eq!(s.pod_ref(), (Some("other"), "web-0"));
    }
}
