//! Compiler from parsed nft text to ruleset values: tables, chains,
//! sets and rules as the kernel will hold them.

// Layers, each using only those below it (no import circle):
// `types`, `values`, `emit`, `fields`, `merge` (values and expressions);
// `plain` (statements from their words), `sets`, `objects`;
// `cx` (a rule's context), `anon` (its anonymous sets), `deps`
// (protocol dependencies), `load` (selectors into registers), `lookup`
// (sets and maps), then `relational`, `nat`, `dynset`, `stmts` (the
// statements); `rule` (one rule), then this module (chains).
mod anon;
mod cx;
mod deps;
mod dynset;
mod emit;
pub mod fields;
mod load;
mod lookup;
mod merge;
mod nat;
pub(crate) mod objects;
mod plain;
mod relational;
pub(super) mod rule;
pub(super) mod sets;
mod stmts;
pub mod types;
mod values;

use std::borrow::Cow;

use super::ast;
use super::diag::{Diagnostic, Diagnostics, Span};
use super::parser;
use super::Result as R;
use crate::model::{Chain, Family, Hook, Rule, Table, Userdata, UDATA_COMMENT};
use crate::sys::*;

/// Compiles one rule in the context of `table` (its sets, chains, objects).
pub fn compile_rule(family: Family, table: &Table, rule: &str) -> Result<Rule, Diagnostics> {
    let ast = parser::parse_rule(rule).map_err(|d| Diagnostics::one(d).with_source(rule))?;
    let mut n = 0;
    rule::compile_rule_ast(family, table, &ast, &mut n)
        .map_err(|d| Diagnostics::one(d).with_source(rule))
}

/// Sets that rules add to or update become dynamic (maps do not), of
/// 65535 elements unless sized, as nft makes them.
pub(super) fn dynamic_sets(t: &mut Table, r: &Rule) {
    for e in &r.exprs {
        let crate::expr::Expr::Dynset(d) = e else {
            continue;
        };
        let Some(s) = t
            .sets
            .iter_mut()
            .find(|s| d.set_name.as_ref() == Some(&s.name))
        else {
            continue;
        };
        if !s.is_map() {
            s.flags |= NFT_SET_EVAL;
        }
        let desc = s.desc.get_or_insert_with(Default::default);
        desc.size.get_or_insert(65535);
    }
}

/// Moves the rules of each `jump { ... }` / `goto { ... }` of `rule` into
/// a new chain bound to it (flag `binding`, named `__chainN` as the
/// kernel names them), and returns the rule with plain verdicts to them.
pub(super) fn bind_chains<'r>(
    fam: Family,
    t: &mut Table,
    rule: &'r ast::RuleAst,
    n: &mut u32,
    bound: &mut u32,
) -> R<Cow<'r, ast::RuleAst>> {
    // Most rules bind none: no copy of those.
    if !rule
        .stmts
        .iter()
        .any(|s| matches!(s, ast::Stmt::Bound { .. }))
    {
        return Ok(Cow::Borrowed(rule));
    }
    let mut out = rule.clone();
    for s in &mut out.stmts {
        let ast::Stmt::Bound { goto, rules, span } = s else {
            continue;
        };
        let name = loop {
            let name = format!("__chain{bound}");
            *bound += 1;
            if t.chain(&name).is_none() {
                break name;
            }
        };
        // The chain exists before its rules, as nft creates it.
        let mut c = Chain::new(name.clone());
        c.flags = Some(NFT_CHAIN_BINDING);
        t.chains.push(c);
        let mut compiled = Vec::with_capacity(rules.len());
        for r in rules.iter() {
            let r = bind_chains(fam, t, r, n, bound)?;
            let r = rule::compile_rule_ast(fam, t, &r, n)?;
            dynamic_sets(t, &r);
            compiled.push(r);
        }
        if let Some(c) = t.chains.iter_mut().find(|c| c.name == name) {
            c.rules = compiled.into();
        }
        let v = if *goto {
            ast::Verdict::Goto(name)
        } else {
            ast::Verdict::Jump(name)
        };
        *s = ast::Stmt::Verdict(v, *span);
    }
    Ok(Cow::Owned(out))
}

fn hook_num(fam: Family, hook: &str, span: Span) -> R<u32> {
    Ok(match (fam, hook) {
        (Family::Netdev, "ingress") => NF_NETDEV_INGRESS,
        (Family::Netdev, "egress") => 1,
        (Family::Arp, "input") => 0,
        (Family::Arp, "output") => 1,
        (Family::Arp, "forward") => 2,
        (Family::Inet, "ingress") => 5,
        (Family::Netdev | Family::Arp, _) => return Err(unknown_hook(fam, hook, span)),
        (_, "prerouting") => NF_INET_PRE_ROUTING,
        (_, "input") => NF_INET_LOCAL_IN,
        (_, "forward") => NF_INET_FORWARD,
        (_, "output") => NF_INET_LOCAL_OUT,
        (_, "postrouting") => NF_INET_POST_ROUTING,
        _ => return Err(unknown_hook(fam, hook, span)),
    })
}

fn unknown_hook(fam: Family, hook: &str, span: Span) -> Diagnostic {
    let valid: &[&str] = match fam {
        Family::Netdev => &["ingress", "egress"],
        Family::Arp => &["input", "output", "forward"],
        Family::Inet => &[
            "prerouting",
            "input",
            "forward",
            "output",
            "postrouting",
            "ingress",
        ],
        _ => &["prerouting", "input", "forward", "output", "postrouting"],
    };
    let d = Diagnostic::new(
        span,
        format!("unknown chain hook '{hook}' for a {} table", fam.name()),
    );
    match super::suggest::closest(hook, valid.iter().copied()) {
        Some(s) => d.help(format!("did you mean '{s}'?")),
        None => d.help(format!("valid hooks: {}", valid.join(", "))),
    }
}

/// A priority name's value on this hook, as nft allows it there.
fn priority(fam: Family, hook: u32, hook_name: &str, name: &str, span: Span) -> R<i32> {
    let names = super::vocab::priority_names(fam, hook);
    match names.iter().find(|(n, _)| *n == name) {
        Some((_, v)) => Ok(*v),
        None => {
            let valid: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            let d = Diagnostic::new(
                span,
                format!("invalid priority expression value in this context: '{name}' on hook {hook_name} of a {} table", fam.name()),
            );
            Err(match super::suggest::closest(name, valid.iter().copied()) {
                Some(s) => d.help(format!("did you mean '{s}'?")),
                None => d.help(format!("valid here: {}, or a number", valid.join(", "))),
            })
        }
    }
}

pub(super) fn chain(fam: Family, d: &ast::ChainDecl) -> R<Chain> {
    let mut c = Chain::new(d.name.clone());
    if let Some(h) = &d.hook {
        let (pname, off, pspan) = d
            .priority
            .clone()
            .ok_or_else(|| Diagnostic::new(d.span, "base chain needs a priority"))?;
        let num = hook_num(fam, h, d.span)?;
        let base = match pname {
            Some(n) => priority(fam, num, h, &n, pspan)?,
            None => 0,
        };
        let ty = d.chain_type.clone().unwrap_or_else(|| "filter".into());
        if !matches!(ty.as_str(), "filter" | "nat" | "route") {
            return Err(
                Diagnostic::new(d.span, format!("unknown chain type '{ty}'"))
                    .suggest(&ty, ["filter", "nat", "route"]),
            );
        }
        c.hook = Some(Hook {
            num,
            priority: (base as i64 + off).clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            devices: d.devices.clone(),
            // The kernel reports devices as a list, even a single one.
            device_list: !d.devices.is_empty(),
        });
        c.chain_type = Some(ty);
        c.policy = Some(match d.policy.as_deref() {
            None | Some("accept") => NF_ACCEPT,
            Some("drop") => NF_DROP,
            Some(p) => {
                return Err(Diagnostic::new(d.span, format!("unknown policy '{p}'"))
                    .suggest(p, ["accept", "drop"]))
            }
        });
    } else if d.policy.is_some() {
        return Err(Diagnostic::new(d.span, "only base chains have a policy"));
    }
    if let Some(cm) = &d.comment {
        c.userdata = Some(Userdata::with_comment(UDATA_COMMENT, cm));
    }
    Ok(c)
}
