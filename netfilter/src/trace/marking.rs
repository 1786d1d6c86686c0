//! What a trace marks: the table of a session, built from an nft match
//! (`matching` then `meta nftrace set 1`), and the check of such a match.
//! Needs no kernel: validation checks a FirewallTrace's match here.

use crate::error::Error;
use crate::expr::Expr;
use crate::model::{Chain, Family, Hook, Rule, Table};
use crate::syntax::{compile_rule, Diagnostics};
use crate::sys::*;

/// Why a session could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The match is not valid nft.
    #[error("--match: {0}")]
    Match(Diagnostics),
    /// The match holds a statement, not only matches.
    #[error("--match {matching:?}: holds a statement (kernel expression `{statement}`); only matches are allowed")]
    NotAMatch { matching: String, statement: String },
    #[error(transparent)]
    Netfilter(#[from] Error),
}

/// The earliest priority a hook has.
const FIRST: i32 = i32::MIN;

/// Checks `matching` as a trace session does, without a namespace: an
/// nft match the compiler accepts and that holds no statement.
///
/// ```
/// use linx_netfilter::trace::check_match;
/// assert!(check_match("tcp dport { 22, 80 }").is_ok());
/// assert!(check_match("tcp dport 22 accept").is_err());
/// ```
pub fn check_match(matching: &str) -> Result<(), TraceError> {
    marking_table("linx-trace-check", matching).map(drop)
}

/// The session's table: `matching` then `meta nftrace set 1`, in a chain
/// at the earliest priority of prerouting and of output.
pub(super) fn marking_table(name: &str, matching: &str) -> Result<Table, TraceError> {
    let mut table = Table::new(Family::Inet, name);
    table.flags = NFT_TABLE_F_OWNER;
    let set =
        compile_rule(Family::Inet, &table, "meta nftrace set 1").map_err(TraceError::Match)?;
    for (chain, hook) in [
        ("prerouting", NF_INET_PRE_ROUTING),
        ("output", NF_INET_LOCAL_OUT),
    ] {
        let mut rule = if matching.trim().is_empty() {
            Rule::new(Vec::new())
        } else {
            compile_rule(Family::Inet, &table, matching).map_err(TraceError::Match)?
        };
        if let Some(e) = rule.exprs.iter().find(|e| !is_match(e)) {
            return Err(TraceError::NotAMatch {
                matching: matching.to_owned(),
                statement: e.name().to_owned(),
            });
        }
        let mut exprs = rule.exprs.to_vec();
        exprs.extend(set.exprs.iter().cloned());
        rule.exprs = exprs.into();
        let mut c = Chain::new(chain);
        c.hook = Some(Hook {
            num: hook,
            priority: FIRST,
            devices: Vec::new(),
            device_list: false,
        });
        c.chain_type = Some("filter".into());
        c.policy = Some(NF_ACCEPT);
        c.rules = vec![rule].into();
        table.chains.push(c);
    }
    Ok(table)
}

/// Whether an expression only matches (reads the packet and compares),
/// as opposed to a statement (a verdict, a counter, a set, a log, ...).
fn is_match(e: &Expr) -> bool {
    match e {
        Expr::Payload(p) => p.sreg.is_none(),
        Expr::Meta(m) => m.sreg.is_none(),
        Expr::Ct(c) => c.sreg.is_none(),
        Expr::Exthdr(x) => x.sreg.is_none(),
        // A verdict map writes the verdict register (0).
        Expr::Lookup(l) => l.dreg != Some(0),
        Expr::Cmp(_)
        | Expr::Bitwise(_)
        | Expr::Byteorder(_)
        | Expr::Range(_)
        | Expr::Fib(_)
        | Expr::Rt(_)
        | Expr::Socket(_)
        | Expr::Osf(_)
        | Expr::Hash(_)
        | Expr::Numgen(_)
        | Expr::Xfrm(_)
        | Expr::Inner(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::print::PrintOptions;

    #[test]
    fn the_marking_rule_is_the_match_then_nftrace() {
        let t = marking_table("linx-trace-1", "tcp dport { 22, 80 }").unwrap();
        assert_eq!(t.flags, NFT_TABLE_F_OWNER);
        let text: Vec<String> = t
            .chains
            .iter()
            .map(|c| crate::print::rule(t.family, &t, &c.rules[0], &PrintOptions::default()))
            .collect();
        assert_eq!(
            text,
            [
                "tcp dport { 22, 80 } meta nftrace set 1",
                "tcp dport { 22, 80 } meta nftrace set 1"
            ]
        );
        assert_eq!(t.chains[0].hook.as_ref().unwrap().priority, i32::MIN);
    }

    #[test]
    fn statements_and_bad_text_are_refused() {
        for (m, bad) in [
            ("tcp dport 22 accept", "immediate"),
            ("counter", "counter"),
            ("tcp dport vmap { 22 : drop }", "lookup"),
            ("meta mark set 1", "immediate"),
        ] {
            match marking_table("t", m) {
                Err(TraceError::NotAMatch { statement, .. }) => assert_eq!(statement, bad, "{m}"),
                other => panic!("{m}: {other:?}"),
            }
        }
        assert!(matches!(
            marking_table("t", "tcp dport"),
            Err(TraceError::Match(_))
        ));
        assert!(marking_table("t", "").is_ok());
    }
}
