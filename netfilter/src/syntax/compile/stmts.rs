//! Keyword statements: counter, log, limit, quota, reject, NAT, notrack,
//! ct count, and set updates from the packet path (dynset).

use super::emit;
use super::fields::Proto;
use super::rule::{arg_words, concat_reg, RuleCx};
use super::types::*;
use crate::expr::Expr;
use crate::model::{Family, Table};
use crate::syntax::ast::{self, Arg, Stmt};
use crate::syntax::diag::{Diagnostic, Span};
use crate::syntax::parser::parse_u64;
use crate::sys::*;

type R<T> = Result<T, Diagnostic>;

fn err<T>(span: Span, msg: impl Into<String>) -> R<T> {
    Err(Diagnostic::new(span, msg))
}

fn num(w: Option<&(String, Span)>, span: Span, what: &str) -> R<u64> {
    match w {
        Some((s, sp)) => {
            parse_u64(s).ok_or_else(|| Diagnostic::new(*sp, format!("expected {what}, got '{s}'")))
        }
        None => err(span, format!("expected {what}")),
    }
}

/// `name "x"` / `name KEY map { K : "x", ... }` after a stateful statement:
/// a reference to a named object, or an object map chosen by `KEY`.
pub fn object_ref(cx: &mut RuleCx<'_>, ty: u32, value: &ast::Expr) -> R<()> {
    match value {
        ast::Expr::Word(n, _) | ast::Expr::Str(n, _) => {
            cx.push(objref(ty, n));
            Ok(())
        }
        ast::Expr::Map(key, map, _) => {
            let (dts, lens) = cx.load_key(key)?;
            let name = match &**map {
                ast::Expr::Set(elems, _) => {
                    cx.anon_set(elems, &dts, &lens, Some(&super::sets::MapData::Object))?;
                    cx.make_objmap(ty).unwrap_or_default()
                }
                ast::Expr::SetRef(n, s) => {
                    let ok = cx.table().set(n).is_some_and(|m| m.obj_type == Some(ty));
                    if !ok {
                        return err(*s, format!("@{n} is not a map of such objects"));
                    }
                    n.clone()
                }
                other => return err(other.span(), "expected an object map"),
            };
            cx.push(emit::raw("objref", |w| {
                w.put_u32_be(NFTA_OBJREF_SET_SREG, NFT_REG_1);
                w.put_str(NFTA_OBJREF_SET_NAME, &name);
            }));
            Ok(())
        }
        other => err(other.span(), "expected an object name or map"),
    }
}

pub fn keyword(cx: &mut RuleCx<'_>, name: &str, args: &[Arg], span: Span) -> R<()> {
    // `counter name KEY map {...}` and friends.
    if let Some(e) = args.windows(2).find_map(|w| match w {
        [Arg::Word(k, _), Arg::Expr(e)] if k == "name" => Some(e),
        _ => None,
    }) {
        let ty = match name {
            "counter" => NFT_OBJECT_COUNTER,
            "quota" => NFT_OBJECT_QUOTA,
            "limit" => NFT_OBJECT_LIMIT,
            "synproxy" => NFT_OBJECT_SYNPROXY,
            _ => return err(span, format!("'{name}' has no named objects")),
        };
        return object_ref(cx, ty, e);
    }
    let words = arg_words(args);
    let mut it = words.iter().peekable();
    match name {
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
                        cx.push(objref(NFT_OBJECT_COUNTER, n));
                        return Ok(());
                    }
                    _ => return err(*s, format!("unexpected '{w}' in counter")),
                }
            }
            cx.push(emit::counter(p, b));
            Ok(())
        }
        "notrack" => {
            if let Some((w, s)) = it.next() {
                return err(*s, format!("unexpected '{w}'"));
            }
            cx.push(emit::raw("notrack", |_| {}));
            Ok(())
        }
        "log" => log(cx, &words, span),
        "limit" => limit(cx, &words, span),
        "quota" => quota(cx, &words, span),
        "reject" => reject(cx, &words, span),
        "snat" | "dnat" | "masquerade" | "redirect" => nat(cx, name, args, span),
        "meter" => meter(cx, args, span),
        "ct count" => {
            let over = words.first().is_some_and(|w| w.0 == "over");
            let n = num(words.last(), span, "a count")?;
            cx.push(emit::raw("connlimit", |w| {
                w.put_u32_be(NFTA_CONNLIMIT_COUNT, n as u32);
                // The kernel keeps (and dumps) flags only when inverted.
                if over {
                    w.put_u32_be(NFTA_CONNLIMIT_FLAGS, 1);
                }
            }));
            Ok(())
        }
        "fwd" | "dup" => fwd_dup(cx, name, args, span),
        "reset" => reset_option(cx, args, span),
        "tproxy" => tproxy(cx, args, span),
        "synproxy" if words.first().is_some_and(|w| w.0 == "name") => {
            let n = words
                .get(1)
                .ok_or_else(|| Diagnostic::new(span, "expected a name"))?;
            cx.push(objref(NFT_OBJECT_SYNPROXY, &n.0));
            Ok(())
        }
        "synproxy" => {
            let sp = super::objects::synproxy(&words)?;
            cx.push(emit::raw("synproxy", |w| {
                w.put_u16_be(NFTA_SYNPROXY_MSS, sp.mss.unwrap_or(0));
                w.put_u8(NFTA_SYNPROXY_WSCALE, sp.wscale.unwrap_or(0));
                w.put_u32_be(NFTA_SYNPROXY_FLAGS, sp.flags.unwrap_or(0));
            }));
            Ok(())
        }
        _ => err(span, format!("'{name}' is not supported yet")),
    }
}

/// `ip`/`ip6` before `to`, or the table's family: the address family of
/// a statement's address.
fn addr_family(cx: &RuleCx<'_>, args: &[Arg]) -> Option<(u32, Dtype, usize)> {
    let kw = args.iter().find_map(|a| match a {
        Arg::Word(w, _) if w == "ip" || w == "ip6" => Some(w.as_str()),
        _ => None,
    });
    match (kw, cx.family()) {
        (Some("ip6"), _) | (None, Family::Ip6) => Some((NFPROTO_IPV6, IPV6, 16)),
        (Some(_), _) | (None, Family::Ip) => Some((NFPROTO_IPV4, IPV4, 4)),
        _ => None,
    }
}

/// The expression after keyword `kw` (`to`, `device`).
fn arg_after<'a>(args: &'a [Arg], kw: &str) -> Option<&'a ast::Expr> {
    args.windows(2).find_map(|w| match w {
        [Arg::Word(k, _), Arg::Expr(e)] if k == kw => Some(e),
        _ => None,
    })
}

/// `fwd [ip|ip6] to ADDR device DEV`, `fwd to DEV`, `dup to ADDR [device DEV]`.
fn fwd_dup(cx: &mut RuleCx<'_>, name: &str, args: &[Arg], span: Span) -> R<()> {
    let to = arg_after(args, "to").ok_or_else(|| Diagnostic::new(span, "expected 'to'"))?;
    let device = arg_after(args, "device");
    let fam = addr_family(cx, args);
    if name == "fwd" {
        let Some(dev) = device else {
            // `fwd to DEV`: the device only.
            cx.eval_into(to, &IFINDEX, 4, NFT_REG_1)?;
            cx.push(emit::raw("fwd", |w| {
                w.put_u32_be(NFTA_FWD_SREG_DEV, NFT_REG_1)
            }));
            return Ok(());
        };
        let (nfproto, dt, len) =
            fam.ok_or_else(|| Diagnostic::new(span, "specify ip or ip6 to forward to an address"))?;
        cx.eval_into(dev, &IFINDEX, 4, NFT_REG_1)?;
        cx.eval_into(to, &dt, len, NFT_REG_1 + 1)?;
        cx.push(emit::raw("fwd", |w| {
            w.put_u32_be(NFTA_FWD_SREG_DEV, NFT_REG_1);
            w.put_u32_be(NFTA_FWD_SREG_ADDR, NFT_REG_1 + 1);
            w.put_u32_be(NFTA_FWD_NFPROTO, nfproto);
        }));
        return Ok(());
    }
    if fam.is_none() && device.is_none() && cx.family() == Family::Netdev {
        // `dup to DEV` in netdev: a copy out of the device only.
        cx.eval_into(to, &IFINDEX, 4, NFT_REG_1)?;
        cx.push(emit::raw("dup", |w| {
            w.put_u32_be(NFTA_DUP_SREG_DEV, NFT_REG_1)
        }));
        return Ok(());
    }
    let (_, dt, len) =
        fam.ok_or_else(|| Diagnostic::new(span, "specify ip or ip6 to duplicate to an address"))?;
    cx.eval_into(to, &dt, len, NFT_REG_1)?;
    if let Some(dev) = device {
        cx.eval_into(dev, &IFINDEX, 4, NFT_REG_1 + 1)?;
    }
    cx.push(emit::raw("dup", |w| {
        w.put_u32_be(NFTA_DUP_SREG_ADDR, NFT_REG_1);
        if device.is_some() {
            w.put_u32_be(NFTA_DUP_SREG_DEV, NFT_REG_1 + 1);
        }
    }));
    Ok(())
}

/// `tproxy [ip|ip6] to [ADDR][:PORT]`.
fn tproxy(cx: &mut RuleCx<'_>, args: &[Arg], span: Span) -> R<()> {
    let to = arg_after(args, "to").ok_or_else(|| Diagnostic::new(span, "expected 'to'"))?;
    let explicit = args
        .iter()
        .any(|a| matches!(a, Arg::Word(w, _) if w == "ip" || w == "ip6"));
    let fam = addr_family(cx, args);
    let v6 = fam.is_some_and(|f| f.0 == NFPROTO_IPV6);
    // `to ADDR : EXPR` (the parser split `1.2.3.4:symhash ...`).
    let computed_port = args.windows(3).find_map(|w| match w {
        [Arg::Expr(a), Arg::Punct(":", _), Arg::Expr(p)] if std::ptr::eq(a, to) => Some(p),
        _ => None,
    });
    let (addr, port) = match computed_port {
        Some(p) => (Some(to.clone()), Some(p.clone())),
        None => split_addr_port(to, v6),
    };
    if cx.l4().is_none() {
        return err(
            span,
            "transparent proxy support requires transport protocol match",
        );
    }
    if let (Some((want, _, _)), Some(have)) = (fam, cx.l3_known()) {
        if explicit && want != have {
            let n = |p| if p == NFPROTO_IPV6 { "ip6" } else { "ip" };
            return err(
                span,
                format!(
                    "conflicting protocols specified: {} vs. {}. You must specify ip or ip6 family in tproxy statement",
                    n(have),
                    n(want)
                ),
            );
        }
    }
    let mut reg = NFT_REG_1;
    let mut areg = None;
    if let Some(a) = &addr {
        let (_, dt, len) = fam.ok_or_else(|| {
            Diagnostic::new(
                span,
                "ip or ip6 must be specified with address for inet tables.",
            )
        })?;
        cx.eval_into(a, &dt, len, reg)?;
        areg = Some(reg);
        reg += 1;
    }
    if let Some(p) = &port {
        cx.eval_into(p, &INET_SERVICE, 2, reg)?;
    }
    let family = match (explicit || cx.family() != Family::Inet, fam) {
        (true, Some((f, _, _))) => Some(f),
        _ => None,
    };
    cx.push(emit::raw("tproxy", |w| {
        // Required by the kernel; 0 (unspecified) for either family.
        w.put_u32_be(NFTA_TPROXY_FAMILY, family.unwrap_or(NFPROTO_UNSPEC));
        if let Some(r) = areg {
            w.put_u32_be(NFTA_TPROXY_REG_ADDR, r);
        }
        if port.is_some() {
            w.put_u32_be(NFTA_TPROXY_REG_PORT, reg);
        }
    }));
    Ok(())
}

/// `reset tcp option NAME|N`: strips the option from the packet.
fn reset_option(cx: &mut RuleCx<'_>, args: &[Arg], span: Span) -> R<()> {
    let ty = match args {
        [Arg::Expr(ast::Expr::Sel(path, ps))] if path.len() == 3 => {
            match super::fields::field(path, None).map(|f| f.load) {
                Some(super::fields::Load::Exthdr { op, ty, flags, .. })
                    if op == NFT_EXTHDR_OP_TCPOPT && flags == NFT_EXTHDR_F_PRESENT =>
                {
                    ty
                }
                _ => return err(*ps, "expected a TCP option"),
            }
        }
        _ => return err(span, "expected 'tcp option NAME'"),
    };
    cx.push(emit::raw("exthdr", |w| {
        w.put_u8(NFTA_EXTHDR_TYPE, ty);
        w.put_u32_be(NFTA_EXTHDR_OFFSET, 0);
        w.put_u32_be(NFTA_EXTHDR_LEN, 0);
        w.put_u32_be(NFTA_EXTHDR_FLAGS, 0);
        w.put_u32_be(NFTA_EXTHDR_OP, NFT_EXTHDR_OP_TCPOPT);
    }));
    Ok(())
}

fn objref(ty: u32, name: &str) -> crate::expr::Expr {
    emit::raw("objref", |w| {
        w.put_u32_be(NFTA_OBJREF_IMM_TYPE, ty);
        w.put_str(NFTA_OBJREF_IMM_NAME, name);
    })
}

fn log(cx: &mut RuleCx<'_>, words: &[(String, Span)], span: Span) -> R<()> {
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
    cx.push(emit::raw("log", |w| {
        if let Some(p) = &prefix {
            w.put_str(NFTA_LOG_PREFIX, p);
        }
        if let Some(g) = group {
            w.put_u16_be(NFTA_LOG_GROUP, g as u16);
            if let Some(s) = snaplen {
                w.put_u32_be(NFTA_LOG_SNAPLEN, s as u32);
            }
            if let Some(q) = qthr {
                w.put_u16_be(NFTA_LOG_QTHRESHOLD, q as u16);
            }
        } else {
            w.put_u32_be(NFTA_LOG_LEVEL, level.unwrap_or(4));
            if flags != 0 {
                w.put_u32_be(NFTA_LOG_FLAGS, flags);
            }
        }
    }));
    Ok(())
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

fn limit(cx: &mut RuleCx<'_>, words: &[(String, Span)], span: Span) -> R<()> {
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
                cx.push(objref(NFT_OBJECT_LIMIT, &n.0));
                return Ok(());
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
    cx.push(emit::raw("limit", |w| {
        w.put_u64_be(NFTA_LIMIT_RATE, rate);
        w.put_u64_be(NFTA_LIMIT_UNIT, unit);
        w.put_u32_be(NFTA_LIMIT_BURST, burst as u32);
        w.put_u32_be(
            NFTA_LIMIT_TYPE,
            if bytes {
                NFT_LIMIT_PKT_BYTES
            } else {
                NFT_LIMIT_PKTS
            },
        );
        w.put_u32_be(NFTA_LIMIT_FLAGS, over as u32);
    }));
    Ok(())
}

fn quota(cx: &mut RuleCx<'_>, words: &[(String, Span)], span: Span) -> R<()> {
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
                cx.push(objref(NFT_OBJECT_QUOTA, &n.0));
                return Ok(());
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
    cx.push(emit::raw("quota", |w| {
        w.put_u64_be(NFTA_QUOTA_BYTES, bytes);
        w.put_u64_be(NFTA_QUOTA_CONSUMED, used);
        w.put_u32_be(NFTA_QUOTA_FLAGS, over as u32);
    }));
    Ok(())
}

fn reject(cx: &mut RuleCx<'_>, words: &[(String, Span)], span: Span) -> R<()> {
    let fam = cx.family();
    if fam == Family::Bridge && cx.l3_known() == Some(NFPROTO_ARP) {
        return err(span, "cannot reject this network family");
    }
    // nft puts what reject depends on at the start of the rule.
    let start = cx.exprs.len();
    let (ty, code) = match words
        .iter()
        .map(|w| w.0.as_str())
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => match (fam, cx.l3_known()) {
            (Family::Ip, _) | (_, Some(NFPROTO_IPV4)) => (NFT_REJECT_ICMP_UNREACH, 3),
            (Family::Ip6, _) | (_, Some(NFPROTO_IPV6)) => (NFT_REJECT_ICMP_UNREACH, 4),
            _ => (NFT_REJECT_ICMPX_UNREACH, 1),
        },
        ["with", "tcp", "reset"] => {
            cx.dep(Proto::L4(6, None), span)?;
            (NFT_REJECT_TCP_RST, 0)
        }
        ["with", kind @ ("icmp" | "icmpv6" | "icmpx"), rest @ ..] => {
            let code = match rest {
                ["type", c] | [c] => *c,
                _ => return err(span, "expected a reject code"),
            };
            let dt = match *kind {
                "icmp" => ICMP_CODE,
                "icmpv6" => ICMPV6_CODE,
                _ => ICMPX_CODE,
            };
            let v = dt
                .syms
                .iter()
                .find(|s| s.name == code)
                .map(|s| s.value)
                .or_else(|| parse_u64(code))
                .ok_or_else(|| Diagnostic::new(span, format!("unknown {kind} code '{code}'")))?;
            match (*kind, fam) {
                ("icmpx", _) => (NFT_REJECT_ICMPX_UNREACH, v as u8),
                ("icmp", Family::Ip6) | ("icmpv6", Family::Ip) => {
                    return err(span, "conflicting protocols specified")
                }
                ("icmp", Family::Inet | Family::Bridge | Family::Netdev) => {
                    cx.dep(Proto::Ip, span)?;
                    (NFT_REJECT_ICMP_UNREACH, v as u8)
                }
                ("icmpv6", Family::Inet | Family::Bridge | Family::Netdev) => {
                    cx.dep(Proto::Ip6, span)?;
                    (NFT_REJECT_ICMP_UNREACH, v as u8)
                }
                _ => (NFT_REJECT_ICMP_UNREACH, v as u8),
            }
        }
        _ => {
            return err(
                span,
                "expected 'with icmp|icmpv6|icmpx CODE' or 'with tcp reset'",
            )
        }
    };
    let added = cx.exprs.len() - start;
    cx.exprs.rotate_right(added);
    cx.push(emit::raw("reject", |w| {
        w.put_u32_be(NFTA_REJECT_TYPE, ty);
        // A TCP reset has no code.
        if ty != NFT_REJECT_TCP_RST {
            w.put_u8(NFTA_REJECT_ICMP_CODE, code);
        }
    }));
    Ok(())
}

fn nat(cx: &mut RuleCx<'_>, name: &str, args: &[Arg], span: Span) -> R<()> {
    let mut flags = 0u32;
    let mut fam_kw = None;
    let mut to = None;
    for a in args {
        match a {
            Arg::Word(w, s) => match w.as_str() {
                "random" => flags |= NF_NAT_RANGE_PROTO_RANDOM,
                "fully-random" => flags |= NF_NAT_RANGE_PROTO_RANDOM_FULLY,
                "persistent" => flags |= NF_NAT_RANGE_PERSISTENT,
                "prefix" if to.is_none() => flags |= NF_NAT_RANGE_NETMAP,
                "ip" | "ip6" if to.is_none() => fam_kw = Some(w.as_str()),
                // Flags come after the target, never before.
                "to" if flags & !NF_NAT_RANGE_NETMAP != 0 => {
                    return err(*s, "unexpected 'to' after flags")
                }
                "to" | "," => {}
                _ => return err(*s, format!("unexpected '{w}'")),
            },
            Arg::Expr(e) => to = Some(e),
            Arg::Punct(",", _) => {}
            other => return err(other.span(), "unexpected argument"),
        }
    }
    if fam_kw.is_none()
        && cx.family() == Family::Inet
        && cx.l3_known().is_none()
        && matches!(name, "snat" | "dnat")
        && to.is_some_and(|e| !matches!(e, ast::Expr::Map(..)))
    {
        let (addr, _) = split_addr_port(to.unwrap_or_else(|| unreachable!()), false);
        if addr.is_some() {
            return err(
                span,
                "ip or ip6 must be specified with address for inet tables.",
            );
        }
    }
    let l3 = match (fam_kw, cx.family(), cx.l3_known()) {
        (Some("ip6"), _, _) | (None, Family::Ip6, _) => NFPROTO_IPV6,
        (None, Family::Inet, Some(NFPROTO_IPV6)) => NFPROTO_IPV6,
        // A port alone in an inet table: either family.
        (None, Family::Inet, None) => NFPROTO_INET,
        _ => NFPROTO_IPV4,
    };
    let (adt, alen) = if l3 == NFPROTO_IPV6 {
        (IPV6, 16)
    } else {
        (IPV4, 4)
    };
    let mut regs = (None, None, None, None);
    let ranged_map = match to {
        Some(ast::Expr::Map(key, m, s)) => nat_map(cx, key, m, &adt, alen, *s)?,
        _ => None,
    };
    if let Some(r) = ranged_map {
        regs = r;
    } else if let Some(e) = to {
        // Split `addr:port` forms; redirect and masquerade take a port.
        let (addr, port) = match e {
            ast::Expr::Word(w, _)
                if matches!(name, "redirect" | "masquerade") && !w.starts_with(':') =>
            {
                (None, Some(e.clone()))
            }
            _ => split_addr_port(e, l3 == NFPROTO_IPV6),
        };
        if let Some(a) = addr {
            regs.0 = Some(NFT_REG_1);
            // A range or prefix of addresses: its first and last.
            match nat_bounds(cx.table(), &a, &adt, alen) {
                Ok((lo, hi)) if lo != hi => {
                    cx.push(emit::immediate(NFT_REG_1, &lo));
                    cx.push(emit::immediate(NFT_REG_1 + 1, &hi));
                    regs.1 = Some(NFT_REG_1 + 1);
                }
                _ => cx.eval_into(&a, &adt, alen, NFT_REG_1)?,
            }
        }
        if let Some(p) = port {
            if cx.l4().is_none() {
                return err(
                    p.span(),
                    "transport protocol mapping is only valid after transport protocol match",
                );
            }
            let preg = if regs.1.is_some() {
                NFT_REG_1 + 2
            } else if regs.0.is_some() {
                NFT_REG_1 + 1
            } else {
                NFT_REG_1
            };
            match &p {
                ast::Expr::Word(w, s) if w.contains('-') => {
                    let (lo, hi) = w.split_once('-').unwrap_or((w, w));
                    let lo = super::values::word(lo, &INET_SERVICE, 2, 0)
                        .ok_or_else(|| Diagnostic::new(*s, "invalid port"))?;
                    let hi = super::values::word(hi, &INET_SERVICE, 2, 0)
                        .ok_or_else(|| Diagnostic::new(*s, "invalid port"))?;
                    cx.push(emit::immediate(preg, &lo));
                    cx.push(emit::immediate(preg + 1, &hi));
                    regs.2 = Some(preg);
                    regs.3 = Some(preg + 1);
                }
                other => {
                    cx.eval_into(other, &INET_SERVICE, 2, preg)?;
                    regs.2 = Some(preg);
                }
            }
        }
    }
    match name {
        "snat" | "dnat" => {
            if regs.0.is_some() && regs.1.is_none() {
                regs.1 = None;
            }
            cx.push(emit::raw("nat", |w| {
                w.put_u32_be(
                    NFTA_NAT_TYPE,
                    if name == "snat" {
                        NFT_NAT_SNAT
                    } else {
                        NFT_NAT_DNAT
                    },
                );
                w.put_u32_be(NFTA_NAT_FAMILY, l3);
                if let Some(r) = regs.0 {
                    w.put_u32_be(NFTA_NAT_REG_ADDR_MIN, r);
                    w.put_u32_be(NFTA_NAT_REG_ADDR_MAX, regs.1.unwrap_or(r));
                }
                if let Some(r) = regs.2 {
                    w.put_u32_be(NFTA_NAT_REG_PROTO_MIN, r);
                    w.put_u32_be(NFTA_NAT_REG_PROTO_MAX, regs.3.unwrap_or(r));
                }
                let f = flags
                    | if regs.0.is_some() {
                        NF_NAT_RANGE_MAP_IPS
                    } else {
                        0
                    }
                    | if regs.2.is_some() {
                        NF_NAT_RANGE_PROTO_SPECIFIED
                    } else {
                        0
                    };
                if f != 0 {
                    w.put_u32_be(NFTA_NAT_FLAGS, f);
                }
            }));
        }
        _ => {
            let f = flags
                | if regs.2.is_some() {
                    NF_NAT_RANGE_PROTO_SPECIFIED
                } else {
                    0
                };
            let f = (f != 0).then_some(f);
            let (min, max) = (regs.2, regs.2.map(|r| regs.3.unwrap_or(r)));
            // masq and redir number the same attributes differently.
            cx.push(if name == "masquerade" {
                crate::expr::Expr::Masq(crate::expr::masq::Masq {
                    flags: f,
                    reg_proto_min: min,
                    reg_proto_max: max,
                    ..Default::default()
                })
            } else {
                crate::expr::Expr::Redir(crate::expr::redir::Redir {
                    reg_proto_min: min,
                    reg_proto_max: max,
                    flags: f,
                    ..Default::default()
                })
            });
        }
    }
    Ok(())
}

/// NAT registers: address min and max, port min and max.
type NatRegs = (Option<u32>, Option<u32>, Option<u32>, Option<u32>);

/// `KEY map { K : ADDR . PORT }` and maps to address or port ranges: nft
/// stores each value as its first address and port, then (for ranges)
/// its last address and port, each field padded to 32 bits, and points
/// the NAT registers at the fields. `None` for maps to single addresses.
fn nat_map(
    cx: &mut RuleCx<'_>,
    key: &ast::Expr,
    map: &ast::Expr,
    adt: &Dtype,
    alen: usize,
    span: Span,
) -> R<Option<NatRegs>> {
    let apad = alen.div_ceil(4) * 4;
    let (port, ranged) = match map {
        ast::Expr::Set(elems, _) => {
            let (mut port, mut ranged) = (false, false);
            for d in elems.iter().filter_map(|e| e.data.as_ref()) {
                let (a, p) = match d {
                    ast::Expr::Concat(p, _) if p.len() == 2 => (&p[0], Some(&p[1])),
                    d => (d, None),
                };
                let a = nat_bounds(cx.table(), a, adt, alen)?;
                let p = p
                    .map(|p| nat_bounds(cx.table(), p, &INET_SERVICE, 2))
                    .transpose()?;
                port |= p.is_some();
                ranged |= a.0 != a.1 || p.as_ref().is_some_and(|p| p.0 != p.1);
            }
            (port, ranged)
        }
        // A named map: its value type says (`interval ipv4_addr . inet_service`).
        ast::Expr::SetRef(name, _) => match cx.table().set(name) {
            Some(s) => {
                let port = s.data_type.is_some_and(|t| t >> 6 != 0);
                let one = if port { apad + 4 } else { apad };
                (port, s.data_len == Some(2 * one as u32))
            }
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    if !port && !ranged {
        return Ok(None);
    }
    let (mut dts, mut lens) = (vec![*adt], vec![alen]);
    if port {
        dts.push(INET_SERVICE);
        lens.push(2);
    }
    let md = if ranged {
        super::sets::MapData::Interval(dts, lens)
    } else {
        super::sets::MapData::Concat(dts, lens)
    };
    cx.map_lookup_data(key, map, md, NFT_REG_1, span)?;
    // The key may be the transport match (`tcp dport map { ... }`), or
    // name the protocol itself (`meta l4proto . th dport map @m`).
    let keyed_by_protocol = match key {
        ast::Expr::Concat(parts, _) => parts
            .iter()
            .any(|p| matches!(p, ast::Expr::Sel(path, _) if path == &["meta", "l4proto"])),
        _ => false,
    };
    if port && cx.l4().is_none() && !keyed_by_protocol {
        return err(
            span,
            "transport protocol mapping is only valid after transport protocol match",
        );
    }
    // Field offsets: address, [port], [last address, [last port]].
    let after_first = if port { apad + 4 } else { apad };
    Ok(Some((
        Some(NFT_REG_1),
        ranged.then(|| concat_reg(after_first)),
        port.then(|| concat_reg(apad)),
        (port && ranged).then(|| concat_reg(after_first + apad)),
    )))
}

/// The first and last value of a NAT map value part (single, range or
/// prefix).
fn nat_bounds(
    t: &crate::model::Table,
    e: &ast::Expr,
    dt: &Dtype,
    len: usize,
) -> R<(Vec<u8>, Vec<u8>)> {
    Ok(match super::values::value(e, dt, len, t)? {
        super::values::Val::Bytes(v) => (v.clone(), v),
        super::values::Val::Range(a, z) => (a, z),
        super::values::Val::Prefix(v, pl) => super::values::prefix_range(&v, pl),
    })
}

/// `1.2.3.4:80`, `[::1]:80`, `:80`, `1.2.3.4`, or a non-constant expression.
fn split_addr_port(e: &ast::Expr, v6: bool) -> (Option<ast::Expr>, Option<ast::Expr>) {
    if let ast::Expr::Word(w, s) = e {
        // `:80` is a port alone; `::1` an address.
        if let Some(p) = w.strip_prefix(':').filter(|p| !p.starts_with(':')) {
            return (None, Some(ast::Expr::Word(p.to_owned(), *s)));
        }
        if v6 {
            if let Some(rest) = w.strip_prefix('[') {
                // `[a]:p`, `[a]-[b]:p`, `[a]/64`: brackets off the address.
                let (a, p) = match rest.rsplit_once("]:") {
                    Some((a, p)) => (a, Some(p)),
                    None => (rest, None),
                };
                let a = a.replace("]-[", "-").replace("]/", "/");
                return (
                    Some(ast::Expr::Word(a.trim_end_matches(']').to_owned(), *s)),
                    p.map(|p| ast::Expr::Word(p.to_owned(), *s)),
                );
            }
            return (Some(e.clone()), None);
        }
        if let Some((a, p)) = w.rsplit_once(':') {
            return (
                Some(ast::Expr::Word(a.to_owned(), *s)),
                Some(ast::Expr::Word(p.to_owned(), *s)),
            );
        }
    }
    (Some(e.clone()), None)
}

pub fn dynset(
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
        .ok_or_else(|| crate::syntax::refuse::unknown_set(cx.table(), set, span))?
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
pub fn meter(cx: &mut RuleCx<'_>, args: &[Arg], span: Span) -> R<()> {
    let mut name = None;
    let mut size = None;
    let mut elem = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a {
            Arg::Word(w, s) if w == "size" => {
                let n = match it.next() {
                    Some(Arg::Word(n, _)) => super::super::parser::parse_u64(n),
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
fn emit_dynset(
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
            other => {
                let mut sub = Vec::new();
                std::mem::swap(&mut sub, &mut cx.exprs);
                cx.stmt_pub(other)?;
                std::mem::swap(&mut sub, &mut cx.exprs);
                exprs.extend(sub);
            }
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

// `NF_LOG_*` (linux/netfilter/nf_log.h), not in the generated set.
const NF_LOG_TCPSEQ: u32 = 0x01;
const NF_LOG_TCPOPT: u32 = 0x02;
const NF_LOG_IPOPT: u32 = 0x04;
const NF_LOG_UID: u32 = 0x08;
const NF_LOG_MACDECODE: u32 = 0x20;
const NF_LOG_MASK: u32 = 0x2f;
/// The expressions of the stateful statements a set or an element
/// carries (`limit`, `counter`, `quota`, `ct count`, `last`).
pub fn set_stmts(t: &Table, stmts: &[Stmt]) -> R<Vec<Expr>> {
    let Some(first) = stmts.first() else {
        return Ok(Vec::new());
    };
    let rule = ast::RuleAst {
        stmts: stmts.to_vec(),
        comment: None,
        span: super::rule::stmt_span(first),
    };
    Ok(super::rule::compile_rule_ast(t.family, t, &rule, &mut 0)?
        .exprs
        .into_vec())
}

// `NF_NAT_RANGE_*` (linux/netfilter/nf_nat.h), not in the generated set.
const NF_NAT_RANGE_MAP_IPS: u32 = 1 << 0;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 1 << 1;
const NF_NAT_RANGE_PROTO_RANDOM: u32 = 1 << 2;
const NF_NAT_RANGE_PERSISTENT: u32 = 1 << 3;
const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 1 << 4;
const NF_NAT_RANGE_NETMAP: u32 = 1 << 6;
