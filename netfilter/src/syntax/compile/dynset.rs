//! Set updates from the packet path: `add`/`update`/`delete @set { ... }`
//! and the older `meter`, each a dynset expression with its statements.

use super::cx::{concat_reg, RuleCx};
use super::emit;
use super::plain::{self, arg_words};
use super::types::*;
use crate::syntax::ast::{self, Arg, Stmt};
use crate::syntax::diag::err;
use crate::syntax::diag::{Diagnostic, Span};
use crate::syntax::Result as R;
use crate::sys::*;

pub(super) fn dynset(
    cx: &mut RuleCx<'_>,
    op: &str,
    set: &str,
    key: &ast::Expr,
    data: Option<&ast::Expr>,
    stmts: &[Stmt],
    span: Span,
) -> R<()> {
    let s = cx
        .table()
        .set(set)
        .ok_or_else(|| super::sets::unknown_set(cx.table(), set, span))?
        .clone();
    // Key and value dependencies come before the key is loaded.
    let flat = |e: Option<&ast::Expr>| match e {
        Some(ast::Expr::Concat(p, _)) => p.clone(),
        Some(e) => vec![e.clone()],
        None => Vec::new(),
    };
    let mut sels = flat(Some(key));
    sels.extend(flat(data));
    cx.hoist_dependencies(&sels)?;
    match key {
        ast::Expr::Concat(parts, _) => {
            // Constant parts take their type from the set's key.
            let types: Vec<Dtype> = crate::proto::datatype::split_concat(s.key_type, parts.len())
                .map(|t| t.into_iter().map(from_proto).collect())
                .unwrap_or_default();
            cx.load_concat_typed(parts, &types)?;
        }
        // A selector is masked as lookups mask it.
        k @ ast::Expr::Sel(..) => cx.load_set_key(k)?,
        k => {
            let dt = crate::proto::datatype::by_id(s.key_type)
                .map(from_proto)
                .filter(|d| d.bytes() == s.key_len as usize)
                .unwrap_or(BE_INT);
            cx.eval_into(k, &dt, s.key_len as usize, NFT_REG_1)?
        }
    }
    // A map's value goes in the 16-byte register after the key's.
    let data_reg = match data {
        None => None,
        Some(d) => {
            if !s.is_map() {
                return err(d.span(), format!("@{set} is not a map"));
            }
            let data_off = (s.key_len as usize).div_ceil(16) * 16;
            let first = concat_reg(data_off);
            let len = s.data_len.unwrap_or(4) as usize;
            let dt = s
                .data_type
                .and_then(crate::proto::datatype::by_id)
                .map(from_proto)
                .filter(|d| d.kind != Kind::Int || d.bits != 0)
                .unwrap_or(BE_INT);
            let dt = if dt.kind == Kind::Int {
                dt.bits(len as u32 * 8)
            } else {
                dt
            };
            match d {
                ast::Expr::Concat(parts, _) => {
                    let types = s
                        .data_type
                        .and_then(|id| crate::proto::datatype::split_concat(id, parts.len()))
                        .ok_or_else(|| Diagnostic::new(d.span(), "value does not fit the map"))?;
                    let mut off = data_off;
                    for (p, t) in parts.iter().zip(types) {
                        let pdt = from_proto(t);
                        let plen = pdt.bytes().max(1);
                        cx.eval_into(p, &pdt, plen, concat_reg(off))?;
                        off += plen.div_ceil(4) * 4;
                    }
                }
                v => cx.eval_into(v, &dt, len, first)?,
            }
            Some(first)
        }
    };
    let op = match op {
        "add" => NFT_DYNSET_OP_ADD,
        "update" => NFT_DYNSET_OP_UPDATE,
        _ => NFT_DYNSET_OP_DELETE,
    };
    emit_dynset(cx, op, set, data_reg, stmts)
}

/// `meter NAME [size N] { KEY [timeout T] STMT… }`: nft's older form of
/// `add @NAME { … }` on a set of its own, bound to the rule (anonymous,
/// dynamic, 65535 elements unless sized), which nft lists as a meter.
pub(super) fn meter(cx: &mut RuleCx<'_>, args: &[Arg], span: Span) -> R<()> {
    let mut name = None;
    let mut size = None;
    let mut elem = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a {
            Arg::Word(w, s) if w == "size" => {
                let n = match it.next() {
                    Some(Arg::Word(n, _)) => crate::syntax::parser::parse_u64(n),
                    _ => None,
                };
                size = Some(n.ok_or_else(|| Diagnostic::new(*s, "expected a size"))?);
            }
            Arg::Word(w, _) if name.is_none() => name = Some(w.clone()),
            Arg::Expr(ast::Expr::Set(elems, s)) => match elems.as_slice() {
                [e] => elem = Some(e),
                _ => return err(*s, "a meter takes one key and its statements"),
            },
            other => return err(other.span(), "unexpected argument of meter"),
        }
    }
    let (Some(name), Some(elem)) = (name, elem) else {
        return err(span, "expected 'meter NAME { KEY STATEMENT }'");
    };
    let size = size.unwrap_or(65535).min(u32::MAX as u64) as u32;
    cx.meter_set(&name, &elem.key, size, elem.timeout.is_some())?;
    let mut stmts = Vec::new();
    if let Some(t) = &elem.timeout {
        stmts.push(Stmt::Keyword {
            name: "timeout".into(),
            args: vec![Arg::Word(t.clone(), elem.span)],
            span: elem.span,
        });
    }
    if elem.counter.is_some() {
        stmts.push(Stmt::Keyword {
            name: "counter".into(),
            args: Vec::new(),
            span: elem.span,
        });
    }
    stmts.extend(elem.stmts.iter().cloned());
    // nft refreshes an element's timeout on each packet (`update`).
    let op = if elem.timeout.is_some() {
        NFT_DYNSET_OP_UPDATE
    } else {
        NFT_DYNSET_OP_ADD
    };
    emit_dynset(cx, op, &name, None, &stmts)
}

/// The dynset expression: a set operation with the key in register 1.
pub(super) fn emit_dynset(
    cx: &mut RuleCx<'_>,
    op: u32,
    set: &str,
    data_reg: Option<u32>,
    stmts: &[Stmt],
) -> R<()> {
    let mut timeout = None;
    let mut exprs = Vec::new();
    for st in stmts {
        match st {
            Stmt::Keyword { name, args, span } if name == "timeout" => {
                let w = arg_words(args);
                let t = w
                    .first()
                    .and_then(|(t, _)| parse_duration_ms(t))
                    .ok_or_else(|| Diagnostic::new(*span, "invalid timeout"))?;
                timeout = Some(t);
            }
            other => exprs.extend(plain::stateful(std::slice::from_ref(other))?),
        }
    }
    // A set that declares its statements (`counter`) applies them itself:
    // nft sends a dynset repeating them without (the kernel refuses others).
    if cx
        .table()
        .set(set)
        .is_some_and(|s| !s.exprs.is_empty() && s.exprs == exprs)
    {
        exprs.clear();
    }
    cx.push(emit::raw("dynset", |w| {
        w.put_u32_be(NFTA_DYNSET_SREG_KEY, NFT_REG_1);
        w.put_str(NFTA_DYNSET_SET_NAME, set);
        w.put_u32_be(NFTA_DYNSET_OP, op);
        if let Some(r) = data_reg {
            w.put_u32_be(NFTA_DYNSET_SREG_DATA, r);
        }
        // The kernel keeps (and dumps) a timeout always, 0 for none.
        w.put_u64_be(NFTA_DYNSET_TIMEOUT, timeout.unwrap_or(0));
        w.put_u32_be(NFTA_DYNSET_FLAGS, 0);
        if exprs.len() == 1 {
            w.nest(NFTA_DYNSET_EXPR, |w| exprs[0].encode_body(w));
        } else if !exprs.is_empty() {
            w.nest(NFTA_DYNSET_EXPRESSIONS, |w| {
                crate::expr::encode_list(&exprs, w)
            });
        }
    }));
    Ok(())
}
