//! Named stateful objects: counter, quota, limit, synproxy, secmark and
//! the conntrack helper, timeout and expectation objects.

use super::rule;
use super::types::{self, INET_PROTO, INET_SERVICE};
use super::values::word;
use crate::expr::synproxy::Synproxy;
use crate::expr::Expr;
use crate::model::{Family, Object, Table, Userdata, UDATA_COMMENT};
use crate::object::{CtExpect, CtHelper, CtTimeout, ObjectData, Secmark, TimeoutPolicy};
use crate::syntax::ast::{self, Arg, ObjDecl, Stmt};
use crate::syntax::diag::{Diagnostic, Span};
use crate::syntax::lexer::Tok;
use crate::sys::*;

type R<T> = Result<T, Diagnostic>;

// `NF_SYNPROXY_OPT_*` (linux/netfilter/nf_synproxy.h).
const NF_SYNPROXY_OPT_MSS: u32 = 0x01;
const NF_SYNPROXY_OPT_WSCALE: u32 = 0x02;
const NF_SYNPROXY_OPT_SACK_PERM: u32 = 0x04;
const NF_SYNPROXY_OPT_TIMESTAMP: u32 = 0x08;

fn err<T>(span: Span, msg: impl Into<String>) -> R<T> {
    Err(Diagnostic::new(span, msg))
}

/// The object's arguments split into statements (at `;` and line ends),
/// each a list of words and strings with their spans; `{ } : , =` are
/// kept as words so block bodies (`policy = { ... }`) stay readable.
fn statements(d: &ObjDecl) -> Vec<Vec<(String, Span)>> {
    let mut out: Vec<Vec<(String, Span)>> = vec![vec![]];
    let mut depth = 0;
    for t in &d.args {
        match &t.tok {
            Tok::Newline if depth == 0 => out.push(vec![]),
            Tok::Punct(";") if depth == 0 => out.push(vec![]),
            Tok::Newline => {}
            Tok::Punct(p) => {
                if *p == "{" {
                    depth += 1;
                } else if *p == "}" {
                    depth -= 1;
                }
                out.last_mut().unwrap().push((p.to_string(), t.span))
            }
            // `established:122` is one word; split it around the colon.
            Tok::Word(w) if w.contains(':') && depth > 0 => {
                let cur = out.last_mut().unwrap();
                for (i, part) in w.split(':').enumerate() {
                    if i > 0 {
                        cur.push((":".into(), t.span));
                    }
                    if !part.is_empty() {
                        cur.push((part.to_owned(), t.span));
                    }
                }
            }
            Tok::Word(w) | Tok::Str(w) | Tok::Var(w) | Tok::At(w) => {
                out.last_mut().unwrap().push((w.clone(), t.span))
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// An object as declared (`counter x { packets 1 bytes 2 }`, `quota q 25 mbytes`).
pub fn object(fam: Family, t: &Table, d: &ObjDecl) -> R<Object> {
    let stmts = statements(d);
    let words: Vec<(String, Span)> = stmts.iter().flatten().cloned().collect();
    let (obj_type, data) = match d.kind.as_str() {
        "counter" | "quota" | "limit" => {
            let e = as_statement(fam, t, &d.kind, &words, d.span)?;
            match e {
                Expr::Counter(c) => (NFT_OBJECT_COUNTER, ObjectData::Counter(c)),
                Expr::Quota(q) => (NFT_OBJECT_QUOTA, ObjectData::Quota(q)),
                Expr::Limit(l) => (NFT_OBJECT_LIMIT, ObjectData::Limit(l)),
                _ => return err(d.span, format!("invalid {} object", d.kind)),
            }
        }
        "synproxy" => (NFT_OBJECT_SYNPROXY, ObjectData::Synproxy(synproxy(&words)?)),
        "secmark" => match words.as_slice() {
            [(ctx, _)] => (
                NFT_OBJECT_SECMARK,
                ObjectData::Secmark(Secmark {
                    ctx: Some(ctx.clone()),
                    ..Default::default()
                }),
            ),
            _ => return err(d.span, "secmark needs one context string"),
        },
        "ct helper" => (
            NFT_OBJECT_CT_HELPER,
            ObjectData::CtHelper(helper(fam, &stmts, d.span)?),
        ),
        "ct timeout" => (
            NFT_OBJECT_CT_TIMEOUT,
            ObjectData::CtTimeout(timeout(fam, &stmts, d.span)?),
        ),
        "ct expectation" => (
            NFT_OBJECT_CT_EXPECT,
            ObjectData::CtExpect(expectation(fam, &stmts, d.span)?),
        ),
        k => return err(d.span, format!("named {k} objects are not supported")),
    };
    Ok(Object {
        name: d.name.clone(),
        obj_type,
        data,
        userdata: d
            .comment
            .as_ref()
            .map(|c| Userdata::with_comment(UDATA_COMMENT, c)),
        handle: None,
        use_count: None,
        unknown: vec![],
    })
}

/// Counter, quota and limit objects take the arguments of the statement.
fn as_statement(
    fam: Family,
    t: &Table,
    kind: &str,
    words: &[(String, Span)],
    span: Span,
) -> R<Expr> {
    let args = words
        .iter()
        .map(|(w, s)| Arg::Word(w.clone(), *s))
        .collect();
    let ast = ast::RuleAst {
        stmts: vec![Stmt::Keyword {
            name: kind.to_owned(),
            args,
            span,
        }],
        comment: None,
        span,
    };
    let mut n = 0;
    let mut r = rule::compile_rule_ast(fam, t, &ast, &mut n)?;
    match r.exprs.len() {
        1 => Ok(r.exprs.remove(0)),
        _ => err(span, format!("invalid {kind} object")),
    }
}

fn num(w: Option<&(String, Span)>, span: Span, what: &str) -> R<u64> {
    let (w, s) = w.ok_or_else(|| Diagnostic::new(span, format!("expected {what}")))?;
    crate::syntax::parser::parse_u64(w)
        .ok_or_else(|| Diagnostic::new(*s, format!("expected {what}, not '{w}'")))
}

pub(super) fn synproxy(words: &[(String, Span)]) -> R<Synproxy> {
    let mut sp = Synproxy::default();
    let mut flags = 0;
    let mut it = words.iter();
    while let Some((w, s)) = it.next() {
        match w.as_str() {
            "mss" => {
                sp.mss = Some(num(it.next(), *s, "an MSS")?.min(u16::MAX as u64) as u16);
                flags |= NF_SYNPROXY_OPT_MSS;
            }
            "wscale" => {
                sp.wscale = Some(num(it.next(), *s, "a window scale")?.min(u8::MAX as u64) as u8);
                flags |= NF_SYNPROXY_OPT_WSCALE;
            }
            "timestamp" => flags |= NF_SYNPROXY_OPT_TIMESTAMP,
            "sack-perm" => flags |= NF_SYNPROXY_OPT_SACK_PERM,
            _ => return err(*s, format!("unexpected '{w}' in synproxy")),
        }
    }
    sp.flags = Some(flags);
    Ok(sp)
}

/// `l3proto ip|ip6|inet`, defaulting to the table's family.
fn l3proto(fam: Family, stmts: &[Vec<(String, Span)>]) -> R<u16> {
    for s in stmts {
        if let [(k, _), (v, vs)] = s.as_slice() {
            if k == "l3proto" {
                return Ok(match v.as_str() {
                    "ip" => NFPROTO_IPV4,
                    "ip6" => NFPROTO_IPV6,
                    "inet" => NFPROTO_INET,
                    _ => return err(*vs, format!("unknown l3proto '{v}'")),
                } as u16);
            }
        }
    }
    Ok(match fam {
        Family::Ip6 => NFPROTO_IPV6,
        Family::Ip => NFPROTO_IPV4,
        _ => NFPROTO_INET,
    } as u16)
}

fn l4proto(w: &(String, Span)) -> R<u8> {
    word(&w.0, &INET_PROTO, 1, 0)
        .map(|v| v[0])
        .ok_or_else(|| Diagnostic::new(w.1, format!("unknown protocol '{}'", w.0)))
}

fn helper(fam: Family, stmts: &[Vec<(String, Span)>], span: Span) -> R<CtHelper> {
    let mut h = CtHelper::default();
    for s in stmts {
        match s.as_slice() {
            [(k, _), name, (p, _), proto] if k == "type" && p == "protocol" => {
                h.name = Some(name.0.clone());
                h.l4proto = Some(l4proto(proto)?);
            }
            [(k, _), ..] if k == "l3proto" => {}
            [(k, ks), ..] => return err(*ks, format!("unexpected '{k}' in ct helper")),
            [] => {}
        }
    }
    if h.name.is_none() {
        return err(span, "ct helper needs 'type \"name\" protocol p'");
    }
    h.l3proto = Some(l3proto(fam, stmts)?);
    Ok(h)
}

/// Conntrack states of a protocol, in kernel attribute order (type - 1),
/// with the kernel's default timeout in seconds (measured: what a new
/// timeout object holds for the states it does not set; nft lists only
/// the states set to something else).
pub(crate) fn timeout_states(l4: u8) -> &'static [(&'static str, u32)] {
    match l4 {
        6 => &[
            ("syn_sent", 120),
            ("syn_recv", 60),
            ("established", 432000),
            ("fin_wait", 120),
            ("close_wait", 60),
            ("last_ack", 30),
            ("time_wait", 120),
            ("close", 10),
            ("syn_sent2", 120),
            ("retrans", 300),
            ("unack", 300),
        ],
        17 => &[("unreplied", 30), ("replied", 120)],
        _ => &[],
    }
}

fn timeout(fam: Family, stmts: &[Vec<(String, Span)>], span: Span) -> R<CtTimeout> {
    let mut to = CtTimeout::default();
    let mut policy = Vec::new();
    for s in stmts {
        match s.as_slice() {
            [(k, _), proto] if k == "protocol" => to.l4proto = Some(l4proto(proto)?),
            [(k, _), ..] if k == "l3proto" => {}
            [(k, _), rest @ ..] if k == "policy" => policy = rest.to_vec(),
            [(k, ks), ..] => return err(*ks, format!("unexpected '{k}' in ct timeout")),
            [] => {}
        }
    }
    let l4 = to
        .l4proto
        .ok_or_else(|| Diagnostic::new(span, "ct timeout needs a protocol"))?;
    let states = timeout_states(l4);
    let mut entries = Vec::new();
    // `= { state : secs , ... }`
    let toks: Vec<&(String, Span)> = policy
        .iter()
        .filter(|(w, _)| !matches!(w.as_str(), "=" | "{" | "}" | ","))
        .collect();
    for pair in toks.chunks(3) {
        let [(st, ss), (colon, cs), v] = pair else {
            return err(span, "expected 'state : timeout' pairs in the policy");
        };
        if colon != ":" {
            return err(*cs, "expected ':'");
        }
        let i = states.iter().position(|(x, _)| x == st).ok_or_else(|| {
            Diagnostic::new(*ss, format!("invalid state '{st}' for this protocol"))
                .suggest(st, states.iter().map(|(n, _)| *n))
        })?;
        let secs = types::parse_duration_ms(&v.0)
            .map(|ms| ms / 1000)
            .ok_or_else(|| Diagnostic::new(v.1, format!("invalid timeout '{}'", v.0)))?;
        entries.push((i as u16 + 1, secs.min(u32::MAX as u64) as u32));
    }
    entries.sort();
    to.policy = Some(TimeoutPolicy(entries));
    to.l3proto = Some(l3proto(fam, stmts)?);
    Ok(to)
}

fn expectation(fam: Family, stmts: &[Vec<(String, Span)>], span: Span) -> R<CtExpect> {
    let mut e = CtExpect::default();
    for s in stmts {
        match s.as_slice() {
            [(k, _), proto] if k == "protocol" => e.l4proto = Some(l4proto(proto)?),
            [(k, _), (v, vs)] if k == "dport" => {
                let p = word(v, &INET_SERVICE, 2, 0)
                    .ok_or_else(|| Diagnostic::new(*vs, format!("invalid port '{v}'")))?;
                e.dport = Some(u16::from_be_bytes([p[0], p[1]]));
            }
            [(k, _), (v, vs)] if k == "timeout" => {
                let ms = types::parse_duration_ms(v)
                    .ok_or_else(|| Diagnostic::new(*vs, format!("invalid timeout '{v}'")))?;
                // The kernel reads this one attribute in host byte order.
                let ms = ms.min(u32::MAX as u64) as u32;
                e.timeout = Some(u32::from_be_bytes(ms.to_ne_bytes()));
            }
            [(k, ks), v] if k == "size" => {
                e.size = Some(num(Some(v), *ks, "a size")?.min(u8::MAX as u64) as u8)
            }
            [(k, _), ..] if k == "l3proto" => {}
            [(k, ks), ..] => return err(*ks, format!("unexpected '{k}' in ct expectation")),
            [] => {}
        }
    }
    if e.l4proto.is_none() {
        return err(span, "ct expectation needs a protocol");
    }
    e.l3proto = Some(l3proto(fam, stmts)?);
    Ok(e)
}
