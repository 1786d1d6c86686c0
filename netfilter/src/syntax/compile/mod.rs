//! Compiler from parsed nft text to ruleset values: tables, chains,
//! sets and rules as the kernel will hold them.

mod emit;
pub mod fields;
mod merge;
mod objects;
mod rule;
mod sets;
mod stmts;
pub mod types;
mod values;

use super::ast::{self, Object as AObj, Op};
use super::diag::{Diagnostic, Diagnostics, Span};
use super::parser;
use crate::model::{Chain, Family, Hook, Rule, Ruleset, Table, Userdata, UDATA_COMMENT};
use crate::sys::*;
use sets::SetLayout;
use std::collections::HashMap;

type R<T> = Result<T, Diagnostic>;

/// Compiles one rule in the context of `table` (its sets, chains, objects).
pub fn compile_rule(family: Family, table: &Table, rule: &str) -> Result<Rule, Diagnostics> {
    let ast = parser::parse_rule(rule).map_err(|d| Diagnostics::one(d).with_source(rule))?;
    let mut n = 0;
    rule::compile_rule_ast(family, table, &ast, &mut n)
        .map_err(|d| Diagnostics::one(d).with_source(rule))
}

/// Compiles a declarative nft script (table blocks, `add` commands) into
/// the ruleset it describes.
pub fn compile(src: &str) -> Result<Ruleset, Diagnostics> {
    let script = parser::parse_script(src).map_err(|d| Diagnostics::one(d).with_source(src))?;
    let mut st = State::default();
    let mut errors = Vec::new();
    for cmd in &script.commands {
        if let Err(d) = apply(&mut st, cmd) {
            errors.push(d.with_source(src));
        }
    }
    if errors.is_empty() {
        Ok(st.rs)
    } else {
        Err(Diagnostics(errors))
    }
}

fn family(name: &str, span: Span) -> R<Family> {
    Family::from_name(name).ok_or_else(|| Diagnostic::new(span, format!("unknown family '{name}'")))
}

fn table_mut<'a>(rs: &'a mut Ruleset, fam: Family, name: &str, span: Span) -> R<&'a mut Table> {
    rs.tables
        .iter_mut()
        .find(|t| t.family == fam && t.name == name)
        .ok_or_else(|| Diagnostic::new(span, format!("unknown table {} {name}", fam.name())))
}

/// The ruleset being built, and what is needed to add to it later.
#[derive(Default)]
struct State {
    rs: Ruleset,
    /// Element layouts of named sets, by (family, table, set).
    layouts: HashMap<(Family, String, String), SetLayout>,
    /// Anonymous sets made so far.
    n: u32,
    /// Bound (anonymous) chains made so far.
    bound: u32,
}

fn apply(st: &mut State, cmd: &ast::Command) -> R<()> {
    let span = cmd.span;
    let State {
        rs,
        layouts,
        n,
        bound,
    } = st;
    if let AObj::Ruleset = cmd.object {
        if cmd.op == Op::Flush {
            rs.tables.clear();
        }
        return Ok(());
    }
    let fam = family(&cmd.family, span)?;
    if matches!(cmd.op, Op::Delete | Op::Destroy | Op::Flush) {
        return delete(rs, fam, cmd);
    }
    match &cmd.object {
        AObj::Table { flags, comment } => {
            let exists = rs
                .tables
                .iter()
                .any(|t| t.family == fam && t.name == cmd.table);
            if exists && cmd.op == Op::Create {
                return Err(Diagnostic::new(
                    span,
                    format!("table {} {} exists", fam.name(), cmd.table),
                ));
            }
            if !exists {
                rs.tables.push(Table::new(fam, cmd.table.clone()));
            }
            let t = table_mut(rs, fam, &cmd.table, span)?;
            for f in flags {
                t.flags |= match f.as_str() {
                    "dormant" => NFT_TABLE_F_DORMANT,
                    "owner" => NFT_TABLE_F_OWNER,
                    "persist" => 4,
                    _ => return Err(Diagnostic::new(span, format!("unknown table flag '{f}'"))),
                };
            }
            if let Some(c) = comment {
                t.userdata = Some(Userdata::with_comment(UDATA_COMMENT, c));
            }
            Ok(())
        }
        AObj::Chain(decl) => {
            let chain = chain(fam, decl)?;
            let t = table_mut(rs, fam, &cmd.table, span)?;
            match t.chains.iter_mut().find(|c| c.name == chain.name) {
                Some(_) if cmd.op == Op::Create => Err(Diagnostic::new(
                    span,
                    format!("chain {} exists", chain.name),
                )),
                Some(c) => {
                    if chain.hook.is_some() {
                        c.hook = chain.hook;
                        c.chain_type = chain.chain_type;
                        c.policy = chain.policy;
                    }
                    if chain.userdata.is_some() {
                        c.userdata = chain.userdata;
                    }
                    Ok(())
                }
                None => {
                    t.chains.push(chain);
                    Ok(())
                }
            }
        }
        AObj::Rule {
            chain,
            position,
            rule,
        } => {
            let t = table_mut(rs, fam, &cmd.table, span)?;
            let rule = bind_chains(fam, t, rule, n, bound)?;
            let r = rule::compile_rule_ast(fam, t, &rule, n)?;
            dynamic_sets(t, &r);
            let c = t
                .chains
                .iter_mut()
                .find(|c| &c.name == chain)
                .ok_or_else(|| Diagnostic::new(span, format!("unknown chain {chain}")))?;
            match (cmd.op, position) {
                (Op::Insert, None) => c.rules.insert(0, r),
                (_, Some((_, _))) => {
                    return Err(Diagnostic::new(
                        span,
                        "rule positions (handle/index) are not supported in declarative files",
                    ))
                }
                _ => c.rules.push(r),
            }
            Ok(())
        }
        AObj::Set(decl) => {
            let t = table_mut(rs, fam, &cmd.table, span)?;
            let (set, layout) = sets::named_set(fam, t, decl)?;
            match t.sets.iter_mut().find(|s| s.name == set.name) {
                Some(_) if cmd.op == Op::Create => {
                    Err(Diagnostic::new(span, format!("set {} exists", set.name)))
                }
                Some(_) => {
                    add_elements(t, layouts, fam, &cmd.table, &set.name, &decl.elements, span)
                }
                None => {
                    layouts.insert((fam, cmd.table.clone(), set.name.clone()), layout);
                    t.sets.push(set);
                    Ok(())
                }
            }
        }
        AObj::Elements { set, elements } => {
            let t = table_mut(rs, fam, &cmd.table, span)?;
            add_elements(t, layouts, fam, &cmd.table, set, elements, span)
        }
        AObj::Obj(decl) => {
            let t = table_mut(rs, fam, &cmd.table, span)?;
            let o = objects::object(fam, t, decl)?;
            match t
                .objects
                .iter_mut()
                .find(|x| x.name == o.name && x.obj_type == o.obj_type)
            {
                Some(_) if cmd.op == Op::Create => Err(Diagnostic::new(
                    span,
                    format!("{} {} exists", decl.kind, o.name),
                )),
                Some(x) => {
                    *x = o;
                    Ok(())
                }
                None => {
                    t.objects.push(o);
                    Ok(())
                }
            }
        }
        AObj::Ruleset => Ok(()),
    }
}

/// Sets that rules add to or update become dynamic (maps do not), of
/// 65535 elements unless sized, as nft makes them.
fn dynamic_sets(t: &mut Table, r: &Rule) {
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
fn bind_chains(
    fam: Family,
    t: &mut Table,
    rule: &ast::RuleAst,
    n: &mut u32,
    bound: &mut u32,
) -> R<ast::RuleAst> {
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
    Ok(out)
}

fn add_elements(
    t: &mut Table,
    layouts: &mut HashMap<(Family, String, String), SetLayout>,
    fam: Family,
    table: &str,
    set: &str,
    elements: &[ast::Elem],
    span: Span,
) -> R<()> {
    let unknown = || Diagnostic::new(span, format!("unknown set @{set}"));
    let layout = layouts
        .get_mut(&(fam, table.to_owned(), set.to_owned()))
        .ok_or_else(unknown)?;
    let mut s = t.set(set).ok_or_else(unknown)?.clone();
    sets::add_elements(t, &mut s, layout, elements)?;
    if let Some(x) = t.sets.iter_mut().find(|x| x.name == set) {
        *x = s;
    }
    Ok(())
}

fn delete(rs: &mut Ruleset, fam: Family, cmd: &ast::Command) -> R<()> {
    let span = cmd.span;
    let must = cmd.op == Op::Delete;
    match &cmd.object {
        AObj::Table { .. } => {
            let before = rs.tables.len();
            if cmd.op == Op::Flush {
                if let Ok(t) = table_mut(rs, fam, &cmd.table, span) {
                    t.chains.iter_mut().for_each(|c| c.rules.clear());
                }
                return Ok(());
            }
            rs.tables
                .retain(|t| !(t.family == fam && t.name == cmd.table));
            if must && before == rs.tables.len() {
                return Err(Diagnostic::new(
                    span,
                    format!("unknown table {}", cmd.table),
                ));
            }
            Ok(())
        }
        AObj::Chain(decl) => {
            let t = table_mut(rs, fam, &cmd.table, span)?;
            if cmd.op == Op::Flush {
                t.chains
                    .iter_mut()
                    .filter(|c| c.name == decl.name)
                    .for_each(|c| c.rules.clear());
            } else {
                t.chains.retain(|c| c.name != decl.name);
            }
            Ok(())
        }
        AObj::Set(decl) => {
            let t = table_mut(rs, fam, &cmd.table, span)?;
            if cmd.op == Op::Flush {
                t.sets
                    .iter_mut()
                    .filter(|s| s.name == decl.name)
                    .for_each(|s| s.elements.clear());
            } else {
                t.sets.retain(|s| s.name != decl.name);
            }
            Ok(())
        }
        _ => Err(Diagnostic::new(
            span,
            "this delete is not supported in declarative files",
        )),
    }
}

fn hook_num(fam: Family, hook: &str, span: Span) -> R<u32> {
    Ok(match (fam, hook) {
        (Family::Netdev, "ingress") => NF_NETDEV_INGRESS,
        (Family::Netdev, "egress") => 1,
        (Family::Arp, "input") => 0,
        (Family::Arp, "output") => 1,
        (Family::Arp, "forward") => 2,
        (Family::Inet, "ingress") => 5,
        (Family::Netdev | Family::Arp, _) => {
            return Err(Diagnostic::new(
                span,
                format!("hook {hook} is not valid in {} tables", fam.name()),
            ))
        }
        (_, "prerouting") => NF_INET_PRE_ROUTING,
        (_, "input") => NF_INET_LOCAL_IN,
        (_, "forward") => NF_INET_FORWARD,
        (_, "output") => NF_INET_LOCAL_OUT,
        (_, "postrouting") => NF_INET_POST_ROUTING,
        _ => return Err(Diagnostic::new(span, format!("unknown hook '{hook}'"))),
    })
}

fn priority(fam: Family, name: &str, span: Span) -> R<i32> {
    Ok(match (fam, name) {
        (Family::Bridge, "dstnat") => -300,
        (Family::Bridge, "filter") => -200,
        (Family::Bridge, "out") => 100,
        (Family::Bridge, "srcnat") => 300,
        (_, "raw") => -300,
        (_, "mangle") => -150,
        (_, "dstnat") => -100,
        (_, "filter") => 0,
        (_, "security") => 50,
        (_, "srcnat") => 100,
        _ => {
            return Err(Diagnostic::new(
                span,
                format!("unknown priority name '{name}'"),
            ))
        }
    })
}

fn chain(fam: Family, d: &ast::ChainDecl) -> R<Chain> {
    let mut c = Chain::new(d.name.clone());
    if let Some(h) = &d.hook {
        let (pname, off, pspan) = d
            .priority
            .clone()
            .ok_or_else(|| Diagnostic::new(d.span, "base chain needs a priority"))?;
        let base = match pname {
            Some(n) => priority(fam, &n, pspan)?,
            None => 0,
        };
        let ty = d.chain_type.clone().unwrap_or_else(|| "filter".into());
        if !matches!(ty.as_str(), "filter" | "nat" | "route") {
            return Err(Diagnostic::new(
                d.span,
                format!("unknown chain type '{ty}'"),
            ));
        }
        c.hook = Some(Hook {
            num: hook_num(fam, h, d.span)?,
            priority: (base as i64 + off).clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            devices: d.devices.clone(),
            // The kernel reports devices as a list, even a single one.
            device_list: !d.devices.is_empty(),
        });
        c.chain_type = Some(ty);
        c.policy = Some(match d.policy.as_deref() {
            None | Some("accept") => NF_ACCEPT,
            Some("drop") => NF_DROP,
            Some(p) => return Err(Diagnostic::new(d.span, format!("unknown policy '{p}'"))),
        });
    } else if d.policy.is_some() {
        return Err(Diagnostic::new(d.span, "only base chains have a policy"));
    }
    if let Some(cm) = &d.comment {
        c.userdata = Some(Userdata::with_comment(UDATA_COMMENT, cm));
    }
    Ok(c)
}
