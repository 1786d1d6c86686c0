//! Named stateful objects: counter, quota, limit, synproxy, secmark and
//! the conntrack helper, timeout and expectation objects.

use super::plain::{self, synproxy};
use super::types::{self, INET_PROTO, INET_SERVICE};
use super::values::word;
use crate::expr::Expr;
use crate::model::{Family, Object, Userdata, UDATA_COMMENT};
use crate::object::{CtExpect, CtHelper, CtTimeout, ObjectData, Secmark, TimeoutPolicy};
use crate::syntax::ast::{Arg, ObjDecl};
use crate::syntax::diag::{Diagnostic, Span};
use crate::syntax::lexer::Tok;
use crate::sys::*;

use crate::syntax::diag::err;
use crate::syntax::Result as R;

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
pub fn object(fam: Family, d: &ObjDecl) -> R<Object> {
    let stmts = statements(d);
    let words: Vec<(String, Span)> = stmts.iter().flatten().cloned().collect();
    let (obj_type, data) = match d.kind.as_str() {
        "counter" | "quota" | "limit" => {
            let e = as_statement(&d.kind, &words, d.span)?;
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
fn as_statement(kind: &str, words: &[(String, Span)], span: Span) -> R<Expr> {
    let args: Vec<Arg> = words
        .iter()
        .map(|(w, s)| Arg::Word(w.clone(), *s))
        .collect();
    match plain::keyword(kind, &args, span)? {
        Some(e) => Ok(e),
        None => err(span, format!("invalid {kind} object")),
    }
}

fn num(w: Option<&(String, Span)>, span: Span, what: &str) -> R<u64> {
    let (w, s) = w.ok_or_else(|| Diagnostic::new(span, format!("expected {what}")))?;
    crate::syntax::parser::parse_u64(w)
        .ok_or_else(|| Diagnostic::new(*s, format!("expected {what}, not '{w}'")))
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
    let states = crate::proto::keys::ct_timeout_states(l4);
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
