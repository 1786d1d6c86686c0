//! Compiler from parsed nft text to ruleset values: tables, chains,
//! sets and rules as the kernel will hold them.

mod emit;
pub mod fields;
mod rule;
mod stmts;
pub mod types;
mod values;

use super::ast::{self, KeySpec, Object as AObj, Op};
use super::diag::{Diagnostic, Diagnostics, Span};
use super::parser;
use crate::model::{
    Chain, Family, Hook, Rule, Ruleset, Set, Table, Userdata, UDATA_COMMENT, UDATA_SET_COMMENT,
};
use crate::sys::*;
use types::Dtype;

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
    let mut rs = Ruleset::default();
    let mut errors = Vec::new();
    let mut n = 0;
    for cmd in &script.commands {
        if let Err(d) = apply(&mut rs, cmd, &mut n) {
            errors.push(d.with_source(src));
        }
    }
    if errors.is_empty() {
        Ok(rs)
    } else {
        Err(Diagnostics(errors))
    }
}

fn family(name: &str, span: Span) -> R<Family> {
    Ok(match name {
        "ip" => Family::Ip,
        "ip6" => Family::Ip6,
        "inet" => Family::Inet,
        "arp" => Family::Arp,
        "bridge" => Family::Bridge,
        "netdev" => Family::Netdev,
        _ => return Err(Diagnostic::new(span, format!("unknown family '{name}'"))),
    })
}

fn table_mut<'a>(rs: &'a mut Ruleset, fam: Family, name: &str, span: Span) -> R<&'a mut Table> {
    rs.tables
        .iter_mut()
        .find(|t| t.family == fam && t.name == name)
        .ok_or_else(|| Diagnostic::new(span, format!("unknown table {} {name}", fam.name())))
}

fn apply(rs: &mut Ruleset, cmd: &ast::Command, n: &mut u32) -> R<()> {
    let span = cmd.span;
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
            let r = rule::compile_rule_ast(fam, t, rule, n)?;
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
            let set = named_set(fam, t, decl)?;
            match t.sets.iter_mut().find(|s| s.name == set.name) {
                Some(_) if cmd.op == Op::Create => {
                    Err(Diagnostic::new(span, format!("set {} exists", set.name)))
                }
                Some(s) => {
                    s.elements.extend(set.elements);
                    Ok(())
                }
                None => {
                    t.sets.push(set);
                    Ok(())
                }
            }
        }
        AObj::Elements { set, elements } => {
            let t = table_mut(rs, fam, &cmd.table, span)?;
            let s = t
                .set(set)
                .ok_or_else(|| Diagnostic::new(span, format!("unknown set @{set}")))?
                .clone();
            let elems = set_elements(fam, t, &s, elements, span)?;
            if let Some(s) = t.sets.iter_mut().find(|x| &x.name == set) {
                s.elements.extend(elems);
            }
            Ok(())
        }
        AObj::Obj(decl) => Err(Diagnostic::new(
            decl.span,
            format!("named {} objects are not supported yet", decl.kind),
        )),
        AObj::Ruleset => Ok(()),
    }
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
            device_list: false,
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

/// Types of a key or data spec: datatypes and register lengths.
fn key_types(fam: Family, spec: &KeySpec, span: Span) -> R<(Vec<Dtype>, Vec<usize>)> {
    let mut dts = Vec::new();
    match spec {
        KeySpec::Types(names) => {
            for n in names {
                dts.push(
                    types::by_name(n)
                        .ok_or_else(|| Diagnostic::new(span, format!("unknown datatype '{n}'")))?,
                );
            }
        }
        KeySpec::Typeof(exprs) => {
            let l3 = match fam {
                Family::Ip6 => Some(fields::L3::Ip6),
                _ => Some(fields::L3::Ip),
            };
            for e in exprs {
                let ast::Expr::Sel(p, s) = e else {
                    return Err(Diagnostic::new(e.span(), "expected an expression"));
                };
                let f = fields::field(p, l3).ok_or_else(|| {
                    Diagnostic::new(*s, format!("unknown expression '{}'", p.join(" ")))
                })?;
                let mut dt = f.dt;
                if let fields::Load::Payload { off, len, .. } = f.load {
                    let n = ((off + len).div_ceil(8) - off / 8) * 8;
                    dt.bits = dt.bits.max(n.min(dt.bits.max(len)));
                }
                dts.push(dt);
            }
        }
        _ => return Err(Diagnostic::new(span, "set needs a type")),
    }
    let lens = dts.iter().map(|d| d.bytes()).collect();
    Ok((dts, lens))
}

fn named_set(fam: Family, t: &Table, d: &ast::SetDecl) -> R<Set> {
    let (dts, lens) = key_types(fam, &d.key, d.span)?;
    let concat = dts.len() > 1;
    let mut flags = 0;
    for f in &d.flags {
        flags |= match f.as_str() {
            "constant" => NFT_SET_CONSTANT,
            "interval" => NFT_SET_INTERVAL,
            "timeout" => NFT_SET_TIMEOUT,
            "dynamic" => NFT_SET_EVAL,
            _ => return Err(Diagnostic::new(d.span, format!("unknown set flag '{f}'"))),
        };
    }
    let (mut data_type, mut data_len, mut obj_type) = (None, None, None);
    if d.is_map {
        match &d.data {
            Some(KeySpec::Object(o)) => {
                flags |= NFT_SET_OBJECT;
                obj_type = Some(match o.as_str() {
                    "counter" => NFT_OBJECT_COUNTER,
                    "quota" => NFT_OBJECT_QUOTA,
                    "limit" => NFT_OBJECT_LIMIT,
                    "ct helper" => NFT_OBJECT_CT_HELPER,
                    "ct timeout" => NFT_OBJECT_CT_TIMEOUT,
                    "ct expectation" => NFT_OBJECT_CT_EXPECT,
                    "secmark" => NFT_OBJECT_SECMARK,
                    "synproxy" => NFT_OBJECT_SYNPROXY,
                    _ => {
                        return Err(Diagnostic::new(
                            d.span,
                            format!("unknown object type '{o}'"),
                        ))
                    }
                });
            }
            Some(spec @ KeySpec::Types(n)) if n.len() == 1 && n[0] == "verdict" => {
                let _ = spec;
                flags |= NFT_SET_MAP;
                data_type = Some(NFT_DATA_VERDICT);
                data_len = Some(0);
            }
            Some(spec) => {
                flags |= NFT_SET_MAP;
                let (ddts, dlens) = key_types(fam, spec, d.span)?;
                let cat = ddts.len() > 1;
                data_type = Some(
                    ddts.iter()
                        .fold(0, |a, x| if cat { (a << 6) | x.id } else { x.id }),
                );
                data_len = Some(if cat {
                    dlens.iter().map(|l| l.div_ceil(4) * 4).sum::<usize>()
                } else {
                    dlens[0]
                } as u32);
            }
            None => return Err(Diagnostic::new(d.span, "map needs a value type")),
        }
    } else if d.data.is_some() {
        return Err(Diagnostic::new(
            d.span,
            "a set has no value type; use a map",
        ));
    }
    if concat && flags & NFT_SET_INTERVAL != 0 {
        flags |= NFT_SET_CONCAT;
    }
    let key_type = dts
        .iter()
        .fold(0, |a, x| if concat { (a << 6) | x.id } else { x.id });
    let key_len = if concat {
        lens.iter().map(|l| l.div_ceil(4) * 4).sum::<usize>()
    } else {
        lens[0]
    } as u32;
    let timeout = match &d.timeout {
        Some(w) => Some(
            types::parse_duration_ms(w)
                .ok_or_else(|| Diagnostic::new(d.span, format!("invalid timeout '{w}'")))?,
        ),
        None => None,
    };
    let mut set = Set {
        name: d.name.clone(),
        flags,
        key_type,
        key_len,
        data_type,
        data_len,
        obj_type,
        policy: None,
        desc: None,
        timeout,
        gc_interval: None,
        userdata: d
            .comment
            .as_ref()
            .map(|c| Userdata::with_comment(UDATA_SET_COMMENT, c)),
        exprs: vec![],
        elements: vec![],
        handle: None,
        unknown: vec![],
    };
    if !d.elements.is_empty() {
        set.elements = set_elements(fam, t, &set, &d.elements, d.span)?;
    }
    Ok(set)
}

/// Encodes elements for named set `s` (same encoding as anonymous sets).
fn set_elements(
    fam: Family,
    t: &Table,
    s: &Set,
    elements: &[ast::Elem],
    span: Span,
) -> R<Vec<crate::model::Element>> {
    let _ = (fam, t, s, elements);
    Err(Diagnostic::new(
        span,
        "elements of named sets are not supported yet",
    ))
}
