//! Statements that need the rule around them: reject (and the protocol
//! it depends on), fwd, dup, tproxy, tcp option reset, and the dispatch
//! of every keyword statement to its module.

use super::cx::RuleCx;
use super::dynset::meter;
use super::emit;
use super::fields::Proto;
use super::lookup::object_ref;
use super::nat::{nat, split_addr_port};
use super::plain::{self, arg_words};
use super::types::*;
use crate::expr::reject::Reject;
use crate::model::Family;
use crate::syntax::ast::{self, Arg};
use crate::syntax::diag::err;
use crate::syntax::diag::{Diagnostic, Span};
use crate::syntax::parser::parse_u64;
use crate::syntax::Result as R;
use crate::sys::*;

/// A keyword statement (`counter`, `reject`, `snat`, ...) into `cx`.
pub(super) fn keyword(cx: &mut RuleCx<'_>, name: &str, args: &[Arg], span: Span) -> R<()> {
    if let Some(e) = plain::keyword(name, args, span)? {
        cx.push(e);
        return Ok(());
    }
    // `counter name KEY map {...}` and friends.
    if let Some(e) = args.windows(2).find_map(|w| match w {
        [Arg::Word(k, _), Arg::Expr(e)] if k == "name" => Some(e),
        _ => None,
    }) {
        let ty = plain::object_type(name).unwrap_or_default();
        return object_ref(cx, ty, e);
    }
    match name {
        "reject" => reject(cx, &arg_words(args), span),
        "snat" | "dnat" | "masquerade" | "redirect" => nat(cx, name, args, span),
        "meter" => meter(cx, args, span),
        "fwd" | "dup" => fwd_dup(cx, name, args, span),
        "reset" => reset_option(cx, args, span),
        "tproxy" => tproxy(cx, args, span),
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
    cx.push(
        Reject {
            reject_type: Some(ty.into()),
            // A TCP reset has no code.
            icmp_code: (ty != NFT_REJECT_TCP_RST).then_some(code),
            ..Default::default()
        }
        .into(),
    );
    Ok(())
}
