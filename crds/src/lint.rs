//! Warnings: things a valid spec says that are almost surely wrong,
//! decided on the compiled value (the admission webhook returns them as
//! `AdmissionResponse.warnings`; nothing is refused for them).
//!
//! * A filter base chain on `input`, `forward` or `output` with `policy
//!   drop` and no rule accepting by conntrack state (`ct state
//!   established,related accept`, or a `ct state vmap`), in the chain or a
//!   chain it jumps to: replies to the pod's own connections are dropped.
//! * A rule after one that ends every packet's path without matching
//!   anything (`drop`, `counter accept`, `reject`, `goto x`, `return`): it
//!   is never reached.

use linx_netfilter::expr::ct::CtKey;
use linx_netfilter::expr::{Expr, Verdict};
use linx_netfilter::sys::{NF_DROP, NF_INET_FORWARD, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT};
use linx_netfilter::{Chain, Family, Rule, Ruleset, Table};

use crate::diagnostic::Diagnostic;
use crate::references::{Place, Problem};
use crate::resource::FirewallRulesetSpec;

/// The warnings for `value`, compiled from `spec`, named like errors.
pub fn warnings(spec: &FirewallRulesetSpec, value: &Ruleset) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    for (ti, t) in value.tables.iter().enumerate() {
        for c in &t.chains {
            if drops_replies(t, c) {
                found.push(Problem {
                    table: ti,
                    place: Place::Chain {
                        chain: c.name.clone(),
                    },
                    message: "policy drop, and no rule accepts by conntrack state: replies to \
                              connections the pod opens are dropped too (add `ct state \
                              established,related accept`)"
                        .into(),
                });
            }
            if let Some(i) = c.rules.iter().position(ends_every_path) {
                if i + 1 < c.rules.len() {
                    found.push(Problem {
                        table: ti,
                        place: Place::Rule {
                            chain: c.name.clone(),
                            index: i + 1,
                        },
                        message: format!(
                            "unreachable: rule {i} above matches every packet and ends its path"
                        ),
                    });
                }
            }
        }
    }
    crate::convert::locate(spec, value, found)
}

/// A filter base chain whose policy drops, on a hook where replies pass,
/// without a conntrack-state accept in it or in a chain it jumps to.
fn drops_replies(t: &Table, c: &Chain) -> bool {
    let Some(hook) = &c.hook else { return false };
    let ip = matches!(t.family, Family::Inet | Family::Ip | Family::Ip6);
    let hooks = [NF_INET_LOCAL_IN, NF_INET_FORWARD, NF_INET_LOCAL_OUT];
    if !ip
        || !hooks.contains(&hook.num)
        || c.chain_type.as_deref() != Some("filter")
        || c.policy != Some(NF_DROP)
    {
        return false;
    }
    let accepts_state = |c: &Chain| c.rules.iter().any(accepts_by_state);
    if accepts_state(c) {
        return false;
    }
    let jumped = c.rules.iter().flat_map(|r| r.exprs.iter()).filter_map(|e| {
        let Expr::Immediate(i) = e else { return None };
        match i.data.as_ref()?.as_verdict()? {
            Verdict::Jump(to) | Verdict::Goto(to) => t.chain(to),
            _ => None,
        }
    });
    !jumped.into_iter().any(accepts_state)
}

/// A rule that reads the conntrack state and accepts (directly or through
/// a verdict map).
fn accepts_by_state(r: &Rule) -> bool {
    let reads_state = r
        .exprs
        .iter()
        .any(|e| matches!(e, Expr::Ct(ct) if ct.key == Some(CtKey::State) && ct.dreg.is_some()));
    let accepts = r.exprs.iter().any(|e| match e {
        Expr::Immediate(i) => i
            .data
            .as_ref()
            .and_then(|d| d.as_verdict())
            .is_some_and(|v| *v == Verdict::Accept),
        Expr::Lookup(l) => l.dreg == Some(linx_netfilter::sys::NFT_REG_VERDICT),
        _ => false,
    });
    reads_state && accepts
}

/// A rule that matches every packet and ends its path in this chain:
/// only statements that never stop a packet, then a final verdict.
fn ends_every_path(r: &Rule) -> bool {
    let Some((last, before)) = r.exprs.split_last() else {
        return false;
    };
    let ends = match last {
        Expr::Immediate(i) => matches!(
            i.data.as_ref().and_then(|d| d.as_verdict()),
            Some(Verdict::Accept | Verdict::Drop | Verdict::Return | Verdict::Goto(_))
        ),
        Expr::Reject(_) => true,
        _ => false,
    };
    ends && before
        .iter()
        .all(|e| matches!(e, Expr::Counter(_) | Expr::Log(_)))
}
