//! Statements compiled from their own words, needing nothing of the rule
//! around them: counter, limit, quota, log, ct count, notrack, synproxy
//! and references to named objects. Rules, set elements, dynset
//! statements and object declarations all compile these here.

use super::emit;
use crate::expr::connlimit::Connlimit;
use crate::expr::limit::Limit;
use crate::expr::log::Log;
use crate::expr::objref::Objref;
use crate::expr::quota::Quota;
use crate::expr::synproxy::Synproxy;
use crate::expr::Expr;
use crate::syntax::ast::{self, Arg, Stmt};
use crate::syntax::diag::err;
use crate::syntax::diag::{Diagnostic, Span};
use crate::syntax::parser::parse_u64;
use crate::syntax::Result as R;
use crate::sys::*;

/// The number in `w` (for `what` after the word at `span`).
pub(super) fn num(w: Option<&(String, Span)>, span: Span, what: &str) -> R<u64> {
    match w {
        Some((s, sp)) => {
            parse_u64(s).ok_or_else(|| Diagnostic::new(*sp, format!("expected {what}, got '{s}'")))
        }
        None => err(span, format!("expected {what}")),
    }
}

/// A statement's words, strings and punctuation, with their spans.
pub(super) fn arg_words(args: &[Arg]) -> Vec<(String, Span)> {
    args.iter()
        .filter_map(|a| match a {
            Arg::Word(w, s) | Arg::Str(w, s) => Some((w.clone(), *s)),
            Arg::Punct(p, s) => Some((p.to_string(), *s)),
            Arg::Expr(_) => None,
        })
        .collect()
}

/// The expression of the plain statement `name` (see the module's
/// documentation); `None` when `name` needs the rule around it.
pub(super) fn keyword(name: &str, args: &[Arg], span: Span) -> R<Option<Expr>> {
    // `counter name "x"`; `counter name KEY map {...}` needs the rule.
    if let Some(e) = args.windows(2).find_map(|w| match w {
        [Arg::Word(k, _), Arg::Expr(e)] if k == "name" => Some(e),
        _ => None,
    }) {
        let ty = object_type(name)
            .ok_or_else(|| Diagnostic::new(span, format!("'{name}' has no named objects")))?;
        return Ok(match e {
            ast::Expr::Word(n, _) | ast::Expr::Str(n, _) => Some(objref(ty, n)),
            _ => None,
        });
    }
    let words = arg_words(args);
    let mut it = words.iter();
    Ok(Some(match name {
        "counter" => {
            let (mut p, mut b) = (0, 0);
            while let Some((w, s)) = it.next() {
                match w.as_str() {
                    "packets" => p = num(it.next(), *s, "a packet count")?,
                    "bytes" => b = num(it.next(), *s, "a byte count")?,
                    "name" => {
                        let (n, _) = it
                            .next()
                            .ok_or_else(|| Diagnostic::new(*s, "expected a counter name"))?;
                        return Ok(Some(objref(NFT_OBJECT_COUNTER, n)));
                    }
                    _ => return err(*s, format!("unexpected '{w}' in counter")),
                }
            }
            emit::counter(p, b)
        }
        "notrack" => {
            if let Some((w, s)) = it.next() {
                return err(*s, format!("unexpected '{w}'"));
            }
            emit::raw("notrack", |_| {})
        }
        "log" => log(&words, span)?,
        "limit" => limit(&words, span)?,
        "quota" => quota(&words, span)?,
        "ct count" => {
            let over = words.first().is_some_and(|w| w.0 == "over");
            let n = num(words.last(), span, "a count")? as u32;
            Connlimit {
                count: Some(n),
                // The kernel keeps (and dumps) flags only when inverted.
                flags: over.then_some(1),
                ..Default::default()
            }
            .into()
        }
        "synproxy" if words.first().is_some_and(|w| w.0 == "name") => {
            let n = words
                .get(1)
                .ok_or_else(|| Diagnostic::new(span, "expected a name"))?;
            objref(NFT_OBJECT_SYNPROXY, &n.0)
        }
        "synproxy" => {
            let sp = synproxy(&words)?;
            emit::raw("synproxy", |w| {
                w.put_u16_be(NFTA_SYNPROXY_MSS, sp.mss.unwrap_or(0));
                w.put_u8(NFTA_SYNPROXY_WSCALE, sp.wscale.unwrap_or(0));
                w.put_u32_be(NFTA_SYNPROXY_FLAGS, sp.flags.unwrap_or(0));
            })
        }
        _ => return Ok(None),
    }))
}

/// The expressions of the stateful statements a set, an element or a
/// set update carries (`counter`, `limit`, `quota`, `ct count`).
pub(super) fn stateful(stmts: &[Stmt]) -> R<Vec<Expr>> {
    stmts
        .iter()
        .map(|s| {
            let (name, args, span) = match s {
                Stmt::Keyword { name, args, span } => (name, args, *span),
                other => return err(other.span(), "expected a stateful statement here"),
            };
            match keyword(name, args, span)? {
                Some(e) if STATEFUL.contains(&e.name()) => Ok(e),
                _ => err(span, format!("'{name}' is not a stateful statement")),
            }
        })
        .collect()
}

/// Expressions the kernel accepts in sets and set updates.
const STATEFUL: &[&str] = &["counter", "limit", "quota", "connlimit", "objref"];

/// `synproxy`'s options (`mss N wscale N timestamp sack-perm`), as the
/// statement and the named object take them.
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

/// The type of the named objects a statement can refer to.
pub(super) fn object_type(statement: &str) -> Option<u32> {
    Some(match statement {
        "counter" => NFT_OBJECT_COUNTER,
        "quota" => NFT_OBJECT_QUOTA,
        "limit" => NFT_OBJECT_LIMIT,
        "synproxy" => NFT_OBJECT_SYNPROXY,
        _ => return None,
    })
}

/// A reference to the named object `name` of type `ty`.
pub(super) fn objref(ty: u32, name: &str) -> Expr {
    Objref {
        imm_name: Some(name.to_owned()),
        imm_type: Some(ty),
        ..Default::default()
    }
    .into()
}

/// `log [prefix P] [group G [snaplen N] [queue-threshold Q]] [level L] [flags F]`.
fn log(words: &[(String, Span)], span: Span) -> R<Expr> {
    let (mut prefix, mut group, mut snaplen, mut qthr, mut level, mut flags) =
        (None, None, None, None, None, 0u32);
    let mut i = 0;
    while i < words.len() {
        let (w, s) = &words[i];
        let next = words.get(i + 1);
        match w.as_str() {
            "prefix" => {
                prefix = Some(
                    next.ok_or_else(|| Diagnostic::new(*s, "expected a prefix"))?
                        .0
                        .clone(),
                )
            }
            "group" => group = Some(num(next, *s, "a group")?),
            "snaplen" => snaplen = Some(num(next, *s, "a length")?),
            "queue-threshold" => qthr = Some(num(next, *s, "a threshold")?),
            "level" => {
                let l = next.map(|n| n.0.as_str()).unwrap_or("");
                level = Some(match l {
                    "emerg" => 0,
                    "alert" => 1,
                    "crit" => 2,
                    "err" => 3,
                    "warn" => 4,
                    "notice" => 5,
                    "info" => 6,
                    "debug" => 7,
                    "audit" => 8,
                    _ => {
                        return err(
                            next.map(|n| n.1).unwrap_or(*s),
                            format!("invalid log level '{l}'"),
                        )
                    }
                });
            }
            "flags" => {
                i += 1;
                // `flags tcp sequence,options`, `flags ip options`, `flags all`
                while let Some((f, fs)) = words.get(i) {
                    match f.as_str() {
                        "all" => flags |= NF_LOG_MASK,
                        "tcp" | "ip" | "," => {}
                        "sequence" => flags |= NF_LOG_TCPSEQ,
                        "options" => {
                            let prev = words[..i]
                                .iter()
                                .rev()
                                .find(|p| p.0 == "tcp" || p.0 == "ip")
                                .map(|p| p.0.as_str());
                            flags |= if prev == Some("ip") {
                                NF_LOG_IPOPT
                            } else {
                                NF_LOG_TCPOPT
                            };
                        }
                        "skuid" => flags |= NF_LOG_UID,
                        "ether" => flags |= NF_LOG_MACDECODE,
                        _ => {
                            let _ = fs;
                            break;
                        }
                    }
                    i += 1;
                }
                continue;
            }
            _ => return err(*s, format!("unexpected '{w}' in log")),
        }
        i += 2;
    }
    if group.is_none() && (snaplen.is_some() || qthr.is_some()) {
        return err(span, "snaplen and queue-threshold need a log group");
    }
    if group.is_some() && (level.is_some() || flags != 0) {
        return err(span, "log group and log level/flags are mutually exclusive");
    }
    if level == Some(8) && (prefix.is_some() || flags != 0) {
        return err(span, "log level audit takes no prefix or flags");
    }
    let mut log = Log {
        prefix,
        ..Default::default()
    };
    if let Some(g) = group {
        log.group = Some(g as u16);
        log.snaplen = snaplen.map(|s| s as u32);
        log.qthreshold = qthr.map(|q| q as u16);
    } else {
        log.level = Some(level.unwrap_or(4));
        log.flags = (flags != 0).then_some(flags);
    }
    Ok(log.into())
}

fn unit_secs(u: &str) -> Option<u64> {
    Some(match u {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86400,
        "week" => 604800,
        _ => return None,
    })
}

fn bytes_unit(u: &str) -> Option<u64> {
    Some(match u {
        "bytes" => 1,
        "kbytes" => 1024,
        "mbytes" => 1024 * 1024,
        _ => return None,
    })
}

/// `limit rate [over] N[/unit] [burst B [unit]]` and byte rates.
fn limit(words: &[(String, Span)], span: Span) -> R<Expr> {
    // Flatten `400/minute`, `1 kbytes / second` into tokens.
    let mut toks: Vec<(String, Span)> = Vec::new();
    for (w, s) in words {
        for (i, part) in w.split('/').enumerate() {
            if i > 0 {
                toks.push(("/".into(), *s));
            }
            if !part.is_empty() {
                toks.push((part.to_owned(), *s));
            }
        }
    }
    let mut i = 0;
    let mut over = false;
    let (mut rate, mut unit, mut burst, mut bytes) = (None, 1, None, false);
    while i < toks.len() {
        let (w, s) = &toks[i];
        match w.as_str() {
            "rate" => {}
            "over" => over = true,
            "until" => {}
            "name" => {
                let n = toks
                    .get(i + 1)
                    .ok_or_else(|| Diagnostic::new(*s, "expected a name"))?;
                return Ok(objref(NFT_OBJECT_LIMIT, &n.0));
            }
            "burst" => {
                let n = num(toks.get(i + 1), *s, "a burst")?;
                i += 2;
                let mult = toks.get(i).and_then(|u| {
                    if u.0 == "packets" {
                        Some(1)
                    } else {
                        bytes_unit(&u.0)
                    }
                });
                if let Some(m) = mult {
                    // The burst is counted in the rate's unit.
                    let is_bytes = toks[i].0 != "packets";
                    if is_bytes != bytes {
                        return err(toks[i].1, "burst unit must match the rate's unit");
                    }
                    i += 1;
                    burst = Some(n * m);
                } else {
                    burst = Some(n);
                }
                continue;
            }
            _ => {
                let n = num(Some(&toks[i]), *s, "a rate")?;
                i += 1;
                let mut mult = 1;
                if let Some(m) = toks.get(i).and_then(|u| bytes_unit(&u.0)) {
                    mult = m;
                    bytes = true;
                    i += 1;
                }
                if toks.get(i).is_some_and(|t| t.0 == "/") {
                    i += 1;
                    unit = toks
                        .get(i)
                        .and_then(|u| unit_secs(&u.0))
                        .ok_or_else(|| Diagnostic::new(*s, "expected a time unit"))?;
                    i += 1;
                }
                rate = Some(n * mult);
                continue;
            }
        }
        i += 1;
    }
    let rate = rate.ok_or_else(|| Diagnostic::new(span, "expected a rate"))?;
    let burst = burst.unwrap_or(if bytes { 0 } else { 5 });
    let limit_type = if bytes {
        NFT_LIMIT_PKT_BYTES
    } else {
        NFT_LIMIT_PKTS
    };
    Ok(Limit {
        rate: Some(rate),
        unit: Some(unit),
        burst: Some(burst as u32),
        limit_type: Some(limit_type.into()),
        flags: Some(over as u32),
        ..Default::default()
    }
    .into())
}

/// `quota [over|until] N unit [used N unit]`.
fn quota(words: &[(String, Span)], span: Span) -> R<Expr> {
    let (mut over, mut bytes, mut used) = (false, None, 0);
    let mut i = 0;
    while i < words.len() {
        let (w, s) = &words[i];
        match w.as_str() {
            "over" => over = true,
            "until" => {}
            "name" => {
                let n = words
                    .get(i + 1)
                    .ok_or_else(|| Diagnostic::new(*s, "expected a name"))?;
                return Ok(objref(NFT_OBJECT_QUOTA, &n.0));
            }
            "used" => {
                let n = num(words.get(i + 1), *s, "a size")?;
                let m = words
                    .get(i + 2)
                    .and_then(|u| bytes_unit(&u.0))
                    .ok_or_else(|| Diagnostic::new(*s, "expected a unit"))?;
                used = n * m;
                i += 3;
                continue;
            }
            _ => {
                let n = num(Some(&words[i]), *s, "a size")?;
                let m = words
                    .get(i + 1)
                    .and_then(|u| bytes_unit(&u.0))
                    .ok_or_else(|| Diagnostic::new(*s, "expected bytes, kbytes or mbytes"))?;
                bytes = Some(n * m);
                i += 2;
                continue;
            }
        }
        i += 1;
    }
    let bytes = bytes.ok_or_else(|| Diagnostic::new(span, "expected a quota size"))?;
    Ok(Quota {
        bytes: Some(bytes),
        consumed: Some(used),
        flags: Some(over as u32),
        ..Default::default()
    }
    .into())
}

// `NF_LOG_*` (linux/netfilter/nf_log.h), not in the generated set.
const NF_LOG_TCPSEQ: u32 = 0x01;
const NF_LOG_TCPOPT: u32 = 0x02;
const NF_LOG_IPOPT: u32 = 0x04;
const NF_LOG_UID: u32 = 0x08;
const NF_LOG_MACDECODE: u32 = 0x20;
const NF_LOG_MASK: u32 = 0x2f;

// `NF_SYNPROXY_OPT_*` (linux/netfilter/nf_synproxy.h).
const NF_SYNPROXY_OPT_MSS: u32 = 0x01;
const NF_SYNPROXY_OPT_WSCALE: u32 = 0x02;
const NF_SYNPROXY_OPT_SACK_PERM: u32 = 0x04;
const NF_SYNPROXY_OPT_TIMESTAMP: u32 = 0x08;
