//! What `enforcement: Audit`, `logging.drops` and a rule's own `log`
//! statement compile into: rules that send packets to the node agent's
//! NFLOG group, each with a prefix naming the rule, so the agent knows
//! which rule of which FirewallRuleset saw the packet.
//!
//! * **Audit.** A rule ending in `drop` or `reject` ends instead in
//!   `log prefix "<tag>" group <G> counter accept`; a base chain's `policy
//!   drop` becomes `policy accept` after a last rule `log prefix "<tag>"
//!   group <G> counter`. The packet passes; the agent counts it for that
//!   rule; the rule's counter holds the kernel's own count. A `drop` inside
//!   a verdict map cannot be turned into a log, so Audit refuses it.
//! * **Drop logs** (`logging.drops`, Enforce). `log prefix "<tag>" group
//!   <G>` before each `drop`/`reject`, and a last rule `log prefix "<tag>"
//!   group <G>` in each `policy drop` chain: the packet is still dropped.
//! * **A rule's own `log` statement** without a `group`, when the
//!   resource asks for Audit or drop logs, goes to the agent too (in a
//!   pod's namespace the kernel log is off by default): its prefix becomes
//!   the tag and the written prefix is kept in the tag. Otherwise, and for
//!   a `log group N` the user chose, it is left alone: a file is applied
//!   exactly as written unless the resource asks for more.
//!
//! A tag is `linx:<kind>:<family>:<table>:<chain>:<rule>` (chain and rule
//! by index; `p` for the policy rule), or a hash of it when that would be
//! longer than the 127 bytes the kernel keeps. Tags are unique within a
//! pod, since tables are. Indices stay those of the spec's rules: only the
//! policy rule is added, after them, and its source is the chain's.

use std::collections::HashMap;

use linx_netfilter::expr::counter::Counter;
use linx_netfilter::expr::immediate::Immediate;
use linx_netfilter::expr::log::Log;
use linx_netfilter::expr::{Data, Expr, Verdict};
use linx_netfilter::sys::{NF_ACCEPT, NF_DROP};
use linx_netfilter::{Family, Rule, Ruleset, Set, Table};
use serde::Serialize;

use crate::origin::{Origins, RuleRef, Source};
use crate::resource::FirewallRulesetSpec;

/// How a resource's rules are instrumented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Instrumentation {
    /// The agent's NFLOG group.
    pub group: u16,
    /// `enforcement: Audit`.
    pub audit: bool,
    /// `logging.drops`.
    pub log_drops: bool,
}

impl Instrumentation {
    /// What `spec` asks for, with the agent's group.
    pub fn of(spec: &FirewallRulesetSpec, group: u16) -> Self {
        Instrumentation {
            group,
            audit: spec.audit(),
            log_drops: spec.log_drops(),
        }
    }
}

/// Why a rule logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    /// Audit: the rule would have dropped the packet, and accepted it.
    Audit,
    /// A drop log: the rule dropped (or rejected) the packet.
    Drop,
    /// The rule's own `log` statement.
    Log,
}

impl LogKind {
    fn letter(self) -> char {
        match self {
            LogKind::Audit => 'A',
            LogKind::Drop => 'D',
            LogKind::Log => 'L',
        }
    }
}

/// What a tag names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub kind: LogKind,
    pub rule: RuleRef,
    pub source: Option<Source>,
    /// The verdict the rule gives (or would give, in Audit): `drop`,
    /// `reject`, `accept`, `jump x`, `continue`.
    pub verdict: String,
    /// The prefix the user wrote, for a rule's own `log`.
    pub prefix: Option<String>,
}

/// The tags of one compiled resource, by prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tags {
    by_prefix: HashMap<String, Tag>,
}

impl Tags {
    pub fn get(&self, prefix: &str) -> Option<&Tag> {
        self.by_prefix.get(prefix)
    }
    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }
    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tag)> {
        self.by_prefix.iter()
    }
}

/// The kernel keeps a log prefix of at most this many bytes.
const PREFIX_MAX: usize = 127;

/// Instruments `rs` (compiled from a resource) as `how` says; `origins`
/// gains the added policy rules. `Err` names a rule Audit cannot make
/// harmless.
///
/// ```
/// use linx_crds::instrument::{instrument, Instrumentation};
/// use linx_crds::{origin::Origins, FirewallRulesetSpec};
/// let spec = FirewallRulesetSpec {
///     nft: Some("table inet fw { chain input { type filter hook input priority 0; policy drop; tcp dport 22 drop; } }".into()),
///     ..Default::default()
/// };
/// let mut rs = linx_crds::convert::to_ruleset(&spec).unwrap();
/// let mut origins = Origins::of(&spec, &rs);
/// let how = Instrumentation { group: 100, audit: true, log_drops: false };
/// let tags = instrument(&mut rs, &how, &mut origins).unwrap();
/// assert_eq!(tags.len(), 2, "the drop rule and the policy");
/// assert_eq!(rs.tables[0].chains[0].rules.len(), 2);
/// ```
pub fn instrument(
    rs: &mut Ruleset,
    how: &Instrumentation,
    origins: &mut Origins,
) -> Result<Tags, String> {
    let mut tags = Tags::default();
    for t in &mut rs.tables {
        let (family, table) = (t.family, t.name.clone());
        let named: Vec<Set> = t.sets.clone();
        for ci in 0..t.chains.len() {
            instrument_chain(t, ci, &named, how, origins, &mut tags)
                .map_err(|e| format!("table {} {table}: {e}", family.name()))?;
        }
    }
    Ok(tags)
}

fn instrument_chain(
    t: &mut Table,
    ci: usize,
    named: &[Set],
    how: &Instrumentation,
    origins: &mut Origins,
    tags: &mut Tags,
) -> Result<(), String> {
    let (family, table) = (t.family, t.name.clone());
    let chain = t.chains[ci].name.clone();
    let rule_ref = |index| RuleRef {
        family,
        table: table.clone(),
        chain: chain.clone(),
        index,
    };
    let mut changed: Vec<(usize, Rule)> = Vec::new();
    for (ri, rule) in t.chains[ci].rules.iter().enumerate() {
        let r = rule_ref(Some(ri));
        let source = origins.of_rule(&r).cloned();
        let ends = ending(rule);
        if how.audit && ends.is_none() {
            if let Some(set) = drops_in_map(rule, named) {
                return Err(format!(
                    "chain {chain}, rule {ri}{}: Audit cannot log a drop inside {set}",
                    source
                        .as_ref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                ));
            }
        }
        let verdict = verdict_text(rule);
        let mut exprs: Vec<Expr> = rule.exprs.to_vec();
        let mut touched = false;
        // The rule's own group-less logs go to the agent; the first one of
        // a logged drop is that drop's log.
        let mut own = 0;
        let mut drop_logged = false;
        for e in exprs.iter_mut() {
            let Expr::Log(l) = e else { continue };
            // Only when the resource asks for logs at the agent: otherwise
            // the file is applied exactly as written.
            if l.group.is_some() || !(how.audit || how.log_drops) {
                continue;
            }
            let kind = if ends.is_some() && how.log_drops && !how.audit && !drop_logged {
                drop_logged = true;
                LogKind::Drop
            } else {
                LogKind::Log
            };
            let prefix = tag_prefix(kind, family, &table, ci, &ri.to_string(), own);
            own += 1;
            tags.by_prefix.insert(
                prefix.clone(),
                Tag {
                    kind,
                    rule: r.clone(),
                    source: source.clone(),
                    verdict: verdict.clone(),
                    prefix: l.prefix.clone(),
                },
            );
            *l = nflog(&prefix, how.group);
            touched = true;
        }
        if let Some(end) = ends {
            let at = exprs.len() - 1;
            let kind = if how.audit {
                Some(LogKind::Audit)
            } else if how.log_drops && !drop_logged {
                Some(LogKind::Drop)
            } else {
                None
            };
            if let Some(kind) = kind {
                let prefix = tag_prefix(kind, family, &table, ci, &ri.to_string(), 0);
                tags.by_prefix.insert(
                    prefix.clone(),
                    Tag {
                        kind,
                        rule: r.clone(),
                        source: source.clone(),
                        verdict: end.to_owned(),
                        prefix: None,
                    },
                );
                if kind == LogKind::Audit {
                    exprs.truncate(at);
                    exprs.push(nflog(&prefix, how.group).into());
                    exprs.push(counter());
                    exprs.push(verdict_expr(Verdict::Accept));
                } else {
                    exprs.insert(at, nflog(&prefix, how.group).into());
                }
                touched = true;
            }
        }
        if touched {
            let mut r = rule.clone();
            r.exprs = exprs.into();
            changed.push((ri, r));
        }
    }
    let c = &mut t.chains[ci];
    if !changed.is_empty() {
        for (ri, r) in changed {
            c.rules[ri] = r;
        }
    }
    let policy_drop = c.hook.is_some() && c.policy == Some(NF_DROP);
    if policy_drop && (how.audit || how.log_drops) {
        let kind = if how.audit {
            LogKind::Audit
        } else {
            LogKind::Drop
        };
        let r = rule_ref(None);
        let source = origins.of_rule(&r).cloned();
        let prefix = tag_prefix(kind, family, &table, ci, "p", 0);
        let mut exprs: Vec<Expr> = vec![nflog(&prefix, how.group).into()];
        if how.audit {
            exprs.push(counter());
            c.policy = Some(NF_ACCEPT);
        }
        c.rules.push(Rule::new(exprs));
        origins.push_rule(family, &table, &chain, source.clone());
        tags.by_prefix.insert(
            prefix,
            Tag {
                kind,
                rule: r,
                source,
                verdict: "policy drop".into(),
                prefix: None,
            },
        );
    }
    Ok(())
}

/// `drop` or `reject` when the rule ends in one.
fn ending(r: &Rule) -> Option<&'static str> {
    match r.exprs.last()? {
        Expr::Immediate(i) if is_verdict(i, &Verdict::Drop) => Some("drop"),
        Expr::Reject(_) => Some("reject"),
        _ => None,
    }
}

fn is_verdict(i: &Immediate, v: &Verdict) -> bool {
    i.dreg == Some(0) && matches!(&i.data, Some(Data::Verdict(x)) if x == v)
}

/// The rule's verdict as nft writes it (`continue` when it has none).
fn verdict_text(r: &Rule) -> String {
    match r.exprs.last() {
        Some(Expr::Reject(_)) => "reject".into(),
        Some(Expr::Immediate(i)) if i.dreg == Some(0) => match &i.data {
            Some(Data::Verdict(v)) => linx_netfilter::print::verdict(v),
            _ => "continue".into(),
        },
        _ => "continue".into(),
    }
}

/// The verdict map of `r` holding a `drop`, if any.
fn drops_in_map(r: &Rule, named: &[Set]) -> Option<String> {
    r.exprs.iter().find_map(|e| {
        let Expr::Lookup(l) = e else { return None };
        if l.dreg != Some(0) {
            return None;
        }
        let name = l.set.as_deref()?;
        let set = r.sets.iter().chain(named.iter()).find(|s| s.name == name)?;
        set.elements
            .iter()
            .any(|el| matches!(&el.data, Some(Data::Verdict(Verdict::Drop))))
            .then(|| {
                if set.flags & linx_netfilter::sys::NFT_SET_ANONYMOUS != 0 {
                    "a verdict map".to_owned()
                } else {
                    format!("the verdict map {name}")
                }
            })
    })
}

fn tag_prefix(
    kind: LogKind,
    family: Family,
    table: &str,
    ci: usize,
    rule: &str,
    n: usize,
) -> String {
    let mut p = format!(
        "linx:{}:{}:{table}:{ci}:{rule}",
        kind.letter(),
        family.name()
    );
    if n > 0 {
        p.push_str(&format!("+{n}"));
    }
    if p.len() > PREFIX_MAX {
        p = format!("linx:{}:h{:016x}", kind.letter(), fnv1a(p.as_bytes()));
    }
    p
}

/// A stable 64-bit hash (FNV-1a): tags must be the same in every agent.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `log prefix "<prefix>" group <group>`, as nft sends it.
fn nflog(prefix: &str, group: u16) -> Log {
    Log {
        prefix: Some(prefix.to_owned()),
        group: Some(group),
        ..Default::default()
    }
}

/// `counter`, as nft sends it.
fn counter() -> Expr {
    Counter {
        bytes: Some(0),
        packets: Some(0),
        ..Default::default()
    }
    .into()
}

fn verdict_expr(v: Verdict) -> Expr {
    Immediate {
        dreg: Some(0),
        data: Some(Data::Verdict(v)),
        ..Default::default()
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use linx_netfilter::print::PrintOptions;

    fn spec(nft: &str) -> FirewallRulesetSpec {
        FirewallRulesetSpec {
            nft: Some(nft.into()),
            ..Default::default()
        }
    }

    const WEB: &str = "table inet fw {\n\
        \tchain input {\n\
        \t\ttype filter hook input priority 0; policy drop;\n\
        \t\tct state established,related accept\n\
        \t\ttcp dport 22 drop\n\
        \t\ttcp dport 23 reject\n\
        \t\ttcp dport 24 log prefix \"mine \" accept\n\
        \t\ttcp dport 80 accept\n\
        \t}\n\
        }\n";

    fn instrumented(how: Instrumentation) -> (Ruleset, Tags, Origins) {
        let s = spec(WEB);
        let mut rs = crate::convert::to_ruleset(&s).unwrap();
        let mut o = Origins::of(&s, &rs);
        let tags = instrument(&mut rs, &how, &mut o).unwrap();
        (rs, tags, o)
    }

    fn listing(rs: &Ruleset) -> Vec<String> {
        let t = &rs.tables[0];
        let c = &t.chains[0];
        let mut out: Vec<String> = c
            .rules
            .iter()
            .map(|r| {
                let opts = PrintOptions {
                    stateless: true,
                    ..Default::default()
                };
                linx_netfilter::print::rule(t.family, t, r, &opts)
            })
            .collect();
        out.push(format!("policy {:?}", c.policy));
        out
    }

    /// The instrumented rules are exactly what the compiler makes of the
    /// same text: what nft would send for it.
    fn compiled(rules: &[&str]) -> Vec<Rule> {
        let rs = crate::convert::to_ruleset(&spec(
            "table inet fw { chain input { type filter hook input priority 0; } }",
        ))
        .unwrap();
        rules
            .iter()
            .map(|r| linx_netfilter::syntax::compile_rule(Family::Inet, &rs.tables[0], r).unwrap())
            .collect()
    }

    #[test]
    fn audit_logs_counts_and_accepts_what_would_drop() {
        let how = Instrumentation {
            group: 100,
            audit: true,
            log_drops: false,
        };
        let (rs, tags, o) = instrumented(how);
        let want = [
            "ct state established,related accept",
            "tcp dport 22 log prefix \"linx:A:inet:fw:0:1\" group 100 counter accept",
            "tcp dport 23 log prefix \"linx:A:inet:fw:0:2\" group 100 counter accept",
            "tcp dport 24 log prefix \"linx:L:inet:fw:0:3\" group 100 accept",
            "tcp dport 80 accept",
            "log prefix \"linx:A:inet:fw:0:p\" group 100 counter",
        ];
        let got = listing(&rs);
        assert_eq!(got[..6], want);
        assert_eq!(got[6], format!("policy Some({NF_ACCEPT})"));
        let rules: Vec<Rule> = rs.tables[0].chains[0].rules.to_vec();
        let mut expect = compiled(&want);
        for (r, e) in rules.iter().zip(expect.iter_mut()) {
            e.sets.clone_from(&r.sets);
        }
        assert_eq!(rules, expect, "the bytecode nft makes of the same text");
        let t = tags.get("linx:A:inet:fw:0:2").unwrap();
        assert_eq!(
            (t.kind, t.rule.to_string(), t.verdict.as_str()),
            (LogKind::Audit, "inet fw input #2".into(), "reject")
        );
        assert_eq!(t.source.as_ref().unwrap().to_string(), "6:3");
        let own = tags.get("linx:L:inet:fw:0:3").unwrap();
        assert_eq!(
            (own.prefix.as_deref(), own.verdict.as_str()),
            (Some("mine "), "accept")
        );
        let policy = tags.get("linx:A:inet:fw:0:p").unwrap();
        assert_eq!(policy.rule.to_string(), "inet fw input policy");
        assert_eq!(policy.source.as_ref().unwrap().to_string(), "2:8");
        assert_eq!(
            o.rule(Family::Inet, "fw", "input", 5).unwrap().to_string(),
            "2:8",
            "the policy rule's source is the chain's"
        );
    }

    #[test]
    fn drop_logs_keep_the_drops() {
        let how = Instrumentation {
            group: 7,
            audit: false,
            log_drops: true,
        };
        let (rs, tags, _) = instrumented(how);
        let got = listing(&rs);
        assert_eq!(
            got,
            [
                "ct state established,related accept",
                "tcp dport 22 log prefix \"linx:D:inet:fw:0:1\" group 7 drop",
                "tcp dport 23 log prefix \"linx:D:inet:fw:0:2\" group 7 reject",
                "tcp dport 24 log prefix \"linx:L:inet:fw:0:3\" group 7 accept",
                "tcp dport 80 accept",
                "log prefix \"linx:D:inet:fw:0:p\" group 7",
                &format!("policy Some({NF_DROP})"),
            ]
        );
        assert_eq!(tags.len(), 4);
    }

    #[test]
    fn enforce_without_logging_changes_nothing() {
        let how = Instrumentation {
            group: 7,
            audit: false,
            log_drops: false,
        };
        let (rs, tags, _) = instrumented(how);
        let plain = crate::convert::to_ruleset(&spec(WEB)).unwrap();
        // The rule's own `log` stays as written: the file is applied exactly.
        assert_eq!(listing(&rs), listing(&plain));
        assert!(tags.is_empty());
    }

    #[test]
    fn audit_refuses_a_drop_in_a_verdict_map() {
        let s = spec(
            "table inet fw { chain input { type filter hook input priority 0; tcp dport vmap { 22 : drop, 80 : accept }; } }",
        );
        let mut rs = crate::convert::to_ruleset(&s).unwrap();
        let mut o = Origins::of(&s, &rs);
        let how = Instrumentation {
            group: 1,
            audit: true,
            log_drops: false,
        };
        let e = instrument(&mut rs, &how, &mut o).unwrap_err();
        assert_eq!(
            e,
            "table inet fw: chain input, rule 0 (1:66): Audit cannot log a drop inside a verdict map"
        );
    }

    #[test]
    fn long_names_hash_into_the_prefix() {
        let long = "t".repeat(120);
        let p = tag_prefix(LogKind::Drop, Family::Inet, &long, 0, "1", 0);
        assert!(p.len() <= PREFIX_MAX && p.starts_with("linx:D:h"), "{p}");
        assert_eq!(p, tag_prefix(LogKind::Drop, Family::Inet, &long, 0, "1", 0));
    }
}
