//! The status a FirewallRuleset should have, computed from its validation,
//! the agents' reports and the table conflicts — a pure function, so every
//! case is tested without an API server.
//!
//! Beside our own conditions (`Valid`, `Applied`, `Conflicted`) the status
//! carries kstatus' (the convention Flux, cli-utils and `kubectl wait`
//! habits read): `Ready` (valid, no table lost, every selected pod runs
//! the current generation), `Reconciling` (agents still converging) and
//! `Stalled` (invalid, an apply failed, or a table is lost to an older
//! resource: nothing improves without an edit). All three are always
//! present, with `observedGeneration`.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::events::EventType;
use kube::ResourceExt;
use linx_crds::conflict::{resolve, selectors_may_overlap, Claim};
use linx_crds::validate::declared_tables;
use linx_crds::{FirewallRuleset, FirewallRulesetStatus, TableConflict, Validation};

use crate::aggregate::{Aggregate, MAX_STATUS_FAILURES};

/// Diagnostics named in the `Valid` condition's message.
pub const MAX_MESSAGE_ERRORS: usize = 3;
/// Length of a condition message (the API allows 32768; keep it readable).
pub const MAX_MESSAGE_LEN: usize = 2048;

/// How the compiler words features it does not handle yet.
pub const UNSUPPORTED_SUFFIX: &str = "not supported yet";

pub const VALID: &str = "Valid";
pub const APPLIED: &str = "Applied";
pub const CONFLICTED: &str = "Conflicted";
pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// A change users care about, published as a Kubernetes Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub type_: EventType,
    pub reason: &'static str,
    pub note: String,
}

/// Inputs describing one FirewallRuleset as observed now.
pub struct Observed<'a> {
    pub generation: i64,
    pub current: Option<&'a FirewallRulesetStatus>,
    pub validation: &'a Validation,
    pub reports: &'a Aggregate,
    pub conflicts: Vec<TableConflict>,
    /// Whether some pod (not on the host's network) matches the selector;
    /// asked only when no agent has reported on the resource (`None`:
    /// not asked or unknown).
    pub selects_pods: Option<bool>,
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// The message of a failed validation: the first errors, and how many more.
pub fn invalid_message(v: &Validation) -> String {
    let shown: Vec<String> = v
        .diagnostics
        .iter()
        .take(MAX_MESSAGE_ERRORS)
        .map(|d| d.to_string())
        .collect();
    let mut msg = shown.join("; ");
    let more = v.diagnostics.len().saturating_sub(MAX_MESSAGE_ERRORS);
    if more > 0 {
        msg.push_str(&format!("; and {more} more"));
    }
    truncate(msg)
}

fn valid_condition(v: &Validation) -> (&'static str, &'static str, String) {
    if v.is_valid() {
        (
            "True",
            "Valid",
            "structure, references and nft syntax are valid".into(),
        )
    } else if v
        .diagnostics
        .iter()
        .all(|d| d.message.ends_with(UNSUPPORTED_SUFFIX))
    {
        // Correct nft that linx cannot compile yet: say so, not "invalid".
        ("False", "Unsupported", invalid_message(v))
    } else {
        ("False", "Invalid", invalid_message(v))
    }
}

fn applied_condition(o: &Observed<'_>) -> Option<(&'static str, &'static str, String)> {
    let r = o.reports;
    if !r.reported() {
        return None;
    }
    let g = o.generation;
    Some(if !o.validation.is_valid() {
        (
            "False",
            "Invalid",
            "not applied: the spec is invalid".into(),
        )
    } else if r.failed > 0 {
        let first = r
            .failures
            .first()
            .map(|f| format!("; first: {}/{}: {}", f.node, f.pod, f.message))
            .unwrap_or_default();
        (
            "False",
            "ApplyFailed",
            truncate(format!(
                "{} of {} pods failed to apply generation {g}{first}",
                r.failed, r.matched
            )),
        )
    } else if r.stale_nodes > 0 || r.applied < r.matched {
        (
            "Unknown",
            "Pending",
            format!(
                "{} of {} pods run generation {g}; {} node(s) have not reported it yet",
                r.applied, r.matched, r.stale_nodes
            ),
        )
    } else {
        (
            "True",
            "Applied",
            format!("all {} selected pods run generation {g}", r.matched),
        )
    })
}

fn conflicted_condition(conflicts: &[TableConflict]) -> (&'static str, &'static str, String) {
    if conflicts.is_empty() {
        return (
            "False",
            "NoConflict",
            "no other FirewallRuleset claims these tables".into(),
        );
    }
    let lost = conflicts.iter().any(|c| !c.owned);
    let parts: Vec<String> = conflicts
        .iter()
        .map(|c| {
            if c.owned {
                format!(
                    "table {} is also claimed by {} (this resource is older and owns it)",
                    c.table, c.other
                )
            } else {
                format!(
                    "table {} is owned by {} (older); not applied from this resource",
                    c.table, c.other
                )
            }
        })
        .collect();
    (
        "True",
        if lost { "TableLost" } else { "TableOwned" },
        truncate(parts.join("; ")),
    )
}

/// The desired status and the changes since `o.current`.
pub fn desired(o: &Observed<'_>, now: &Time) -> (FirewallRulesetStatus, Vec<Change>) {
    let old = o
        .current
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let mut conditions = Vec::new();
    let mut changes = Vec::new();
    let mut add = |type_: &str, (status, reason, message): (&str, &'static str, String)| {
        let prev = old.iter().find(|c| c.type_ == type_);
        let transitioned = prev.is_none_or(|p| p.status != status);
        let last_transition_time = match prev {
            Some(p) if !transitioned => p.last_transition_time.clone(),
            _ => now.clone(),
        };
        let message_changed = prev.is_none_or(|p| p.message != message);
        if let Some(change) = event_for(
            type_,
            status,
            reason,
            &message,
            transitioned,
            message_changed,
            prev.is_none(),
        ) {
            changes.push(change);
        }
        conditions.push(Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            observed_generation: Some(o.generation),
            last_transition_time,
        });
    };
    add(VALID, valid_condition(o.validation));
    if let Some(c) = applied_condition(o) {
        add(APPLIED, c);
    }
    add(CONFLICTED, conflicted_condition(&o.conflicts));
    let (ready, reconciling, stalled) = kstatus(o);
    add(READY, ready);
    add(RECONCILING, reconciling);
    add(STALLED, stalled);
    let r = o.reports;
    let status = FirewallRulesetStatus {
        observed_generation: Some(o.generation),
        conditions,
        matched_pods: r.matched,
        applied_pods: r.applied,
        failed_pods: r.failed,
        conflicts: o.conflicts.clone(),
        failures: r
            .failures
            .iter()
            .take(MAX_STATUS_FAILURES)
            .cloned()
            .collect(),
        would_drop_total: r.would_drop_total,
        would_drop: r.would_drop.clone(),
        ..Default::default()
    };
    (status, changes)
}

type Cond = (&'static str, &'static str, String);

/// kstatus' `Ready`, `Reconciling` and `Stalled`, from what the other
/// conditions say.
fn kstatus(o: &Observed<'_>) -> (Cond, Cond, Cond) {
    let g = o.generation;
    let not = |reason: &'static str, msg: &str| ("False", reason, msg.to_string());
    let lost: Vec<&TableConflict> = o.conflicts.iter().filter(|c| !c.owned).collect();
    let stalled = if !o.validation.is_valid() {
        let (_, reason, msg) = valid_condition(o.validation);
        Some((reason, msg))
    } else if let Some(("False", "ApplyFailed", msg)) =
        applied_condition(o).as_ref().map(|(s, r, m)| (*s, *r, m))
    {
        Some(("ApplyFailed", msg.clone()))
    } else if !lost.is_empty() {
        let (_, _, msg) = conflicted_condition(&o.conflicts);
        Some(("TableLost", msg))
    } else {
        None
    };
    if let Some((reason, msg)) = stalled {
        return (
            (
                "False",
                reason,
                format!("generation {g} is not in force: {msg}"),
            ),
            not("Stalled", "not progressing: see the Stalled condition"),
            ("True", reason, msg),
        );
    }
    let r = o.reports;
    let progress = if r.reported() {
        match applied_condition(o) {
            Some(("True", _, msg)) => Ok(msg),
            Some((_, _, msg)) => Err(("AgentsApplying", msg)),
            None => Err(("AgentsApplying", String::new())),
        }
    } else {
        match o.selects_pods {
            Some(false) => Ok(format!("no pod selected; generation {g} is valid")),
            _ => Err((
                "WaitingForAgents",
                format!("no agent has reported generation {g} yet"),
            )),
        }
    };
    match progress {
        Ok(msg) => (
            ("True", "Ready", msg),
            not("Ready", "every selected pod runs the current generation"),
            not("Ready", "nothing blocks the current generation"),
        ),
        Err((reason, msg)) => (
            ("False", reason, msg.clone()),
            ("True", reason, msg),
            not("Progressing", "agents are applying the current generation"),
        ),
    }
}

/// Which condition changes become events: problems when they appear or
/// their message changes, recoveries when they happen.
fn event_for(
    type_: &str,
    status: &str,
    reason: &'static str,
    message: &str,
    transitioned: bool,
    message_changed: bool,
    first: bool,
) -> Option<Change> {
    let warn = |reason| {
        Some(Change {
            type_: EventType::Warning,
            reason,
            note: message.to_string(),
        })
    };
    let normal = |reason| {
        Some(Change {
            type_: EventType::Normal,
            reason,
            note: message.to_string(),
        })
    };
    match (type_, status) {
        (VALID, "False") if message_changed => warn(reason),
        (VALID, "True") if transitioned && !first => normal("Valid"),
        (APPLIED, "False") if reason == "ApplyFailed" && (transitioned || message_changed) => {
            warn("ApplyFailed")
        }
        (APPLIED, "True") if transitioned => normal("Applied"),
        (CONFLICTED, "True") if message_changed => warn(reason),
        (CONFLICTED, "False") if transitioned && !first => normal("ConflictResolved"),
        _ => None,
    }
}

/// Conflicts of `obj` with the rulesets of its namespace whose selectors
/// can pick a common pod.
pub fn conflicts_of(obj: &FirewallRuleset, all: &[Arc<FirewallRuleset>]) -> Vec<TableConflict> {
    let ns = obj.namespace();
    let name = obj.name_any();
    let claim = |r: &FirewallRuleset| Claim {
        name: r.name_any(),
        created: r.metadata.creation_timestamp.clone(),
        tables: declared_tables(&r.spec),
    };
    let mut claims = vec![claim(obj)];
    claims.extend(
        all.iter()
            .filter(|r| r.namespace() == ns && r.name_any() != name)
            .filter(|r| selectors_may_overlap(&obj.spec.pod_selector, &r.spec.pod_selector))
            .map(|r| claim(r)),
    );
    resolve(&claims).conflicts.remove(&name).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use linx_crds::{Diagnostic, PodFailure};

    fn t(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }
    fn valid() -> Validation {
        Validation {
            warnings: vec![],
            diagnostics: vec![],
        }
    }
    fn cond<'a>(s: &'a FirewallRulesetStatus, ty: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == ty).unwrap()
    }

    #[test]
    fn invalid_spec_names_first_errors_and_warns_once() {
        let v = Validation {
            warnings: vec![],
            diagnostics: (0..5)
                .map(|i| {
                    Diagnostic::new(format!("spec.tables[0].chains[0].rules[{i}]"), "bad")
                        .table("inet fw")
                        .chain("in")
                })
                .collect(),
        };
        let agg = Aggregate::default();
        let o = Observed {
            generation: 2,
            current: None,
            validation: &v,
            reports: &agg,
            conflicts: vec![],
            selects_pods: None,
        };
        let (s, changes) = desired(&o, &t(10));
        let c = cond(&s, VALID);
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "Invalid"));
        assert_eq!(
            c.message,
            "table inet fw, chain in: bad (spec.tables[0].chains[0].rules[0]); table inet fw, chain in: bad (spec.tables[0].chains[0].rules[1]); table inet fw, chain in: bad (spec.tables[0].chains[0].rules[2]); and 2 more"
        );
        assert!(s.conditions.iter().all(|c| c.type_ != APPLIED));
        assert_eq!(
            changes.iter().map(|c| c.reason).collect::<Vec<_>>(),
            ["Invalid"]
        );
        // Same state again: no event, transition time kept.
        let o2 = Observed {
            current: Some(&s),
            ..o
        };
        let (s2, changes2) = desired(&o2, &t(99));
        assert!(changes2.is_empty());
        assert_eq!(cond(&s2, VALID).last_transition_time, t(10));
        assert_eq!(s2, s);
    }

    #[test]
    fn features_the_compiler_lacks_are_unsupported_not_invalid() {
        let v = Validation {
            warnings: vec![],
            diagnostics: vec![Diagnostic::new(
                "spec.tables[0].sets[0]",
                "elements of named sets are not supported yet",
            )
            .table("inet fw")
            .item("set s")],
        };
        let agg = Aggregate::default();
        let o = Observed {
            generation: 1,
            current: None,
            validation: &v,
            reports: &agg,
            conflicts: vec![],
            selects_pods: None,
        };
        let (s, changes) = desired(&o, &t(1));
        assert_eq!(cond(&s, VALID).reason, "Unsupported");
        assert_eq!(
            cond(&s, VALID).message,
            "table inet fw, set s: elements of named sets are not supported yet (spec.tables[0].sets[0])"
        );
        assert_eq!(changes[0].reason, "Unsupported");
    }

    #[test]
    fn applied_follows_reports_of_the_current_generation() {
        let v = valid();
        let mut agg = Aggregate {
            nodes: 2,
            stale_nodes: 1,
            matched: 5,
            applied: 3,
            failed: 0,
            failures: vec![],
            ..Default::default()
        };
        let o = Observed {
            generation: 4,
            current: None,
            validation: &v,
            reports: &agg,
            conflicts: vec![],
            selects_pods: None,
        };
        let (s, _) = desired(&o, &t(1));
        assert_eq!(cond(&s, APPLIED).status, "Unknown");
        assert_eq!(
            cond(&s, APPLIED).message,
            "3 of 5 pods run generation 4; 1 node(s) have not reported it yet"
        );
        agg.stale_nodes = 0;
        agg.applied = 5;
        let o = Observed {
            generation: 4,
            current: Some(&s),
            validation: &v,
            reports: &agg,
            conflicts: vec![],
            selects_pods: None,
        };
        let (s2, changes) = desired(&o, &t(2));
        assert_eq!(
            (cond(&s2, APPLIED).status.as_str(), s2.applied_pods),
            ("True", 5)
        );
        assert_eq!(cond(&s2, APPLIED).last_transition_time, t(2));
        assert_eq!(
            changes,
            vec![Change {
                type_: EventType::Normal,
                reason: "Applied",
                note: "all 5 selected pods run generation 4".into()
            }]
        );
    }

    #[test]
    fn failures_are_named_in_applied() {
        let v = valid();
        let agg = Aggregate {
            nodes: 1,
            stale_nodes: 0,
            matched: 2,
            applied: 1,
            failed: 1,
            failures: vec![PodFailure {
                node: "n1".into(),
                pod: "web-0".into(),
                message: "EPERM".into(),
            }],
            ..Default::default()
        };
        let o = Observed {
            generation: 1,
            current: None,
            validation: &v,
            reports: &agg,
            conflicts: vec![],
            selects_pods: None,
        };
        let (s, changes) = desired(&o, &t(1));
        assert_eq!(
            cond(&s, APPLIED).message,
            "1 of 2 pods failed to apply generation 1; first: n1/web-0: EPERM"
        );
        assert_eq!(changes[0].reason, "ApplyFailed");
        assert_eq!(s.failures.len(), 1);
    }

    #[test]
    fn conflicts_are_reported() {
        let v = valid();
        let agg = Aggregate::default();
        let conflicts = vec![TableConflict {
            table: "inet fw".into(),
            other: "older".into(),
            owned: false,
        }];
        let o = Observed {
            generation: 1,
            current: None,
            validation: &v,
            reports: &agg,
            conflicts,
            selects_pods: None,
        };
        let (s, changes) = desired(&o, &t(1));
        let c = cond(&s, CONFLICTED);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "TableLost")
        );
        assert_eq!(
            c.message,
            "table inet fw is owned by older (older); not applied from this resource"
        );
        assert_eq!(changes[0].reason, "TableLost");
    }
}
