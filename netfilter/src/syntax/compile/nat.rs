//! NAT statements: snat, dnat, masquerade and redirect, with their
//! address and port ranges, flags and NAT maps.

use super::cx::{concat_reg, RuleCx};
use super::emit;
use super::types::*;
use crate::model::Family;
use crate::syntax::ast::{self, Arg};
use crate::syntax::diag::err;
use crate::syntax::diag::{Diagnostic, Span};
use crate::syntax::Result as R;
use crate::sys::*;

pub(super) fn nat(cx: &mut RuleCx<'_>, name: &str, args: &[Arg], span: Span) -> R<()> {
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
pub(super) fn nat_map(
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
pub(super) fn nat_bounds(
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
pub(super) fn split_addr_port(e: &ast::Expr, v6: bool) -> (Option<ast::Expr>, Option<ast::Expr>) {
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

// `NF_NAT_RANGE_*` (linux/netfilter/nf_nat.h), not in the generated set.
const NF_NAT_RANGE_MAP_IPS: u32 = 1 << 0;
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 1 << 1;
const NF_NAT_RANGE_PROTO_RANDOM: u32 = 1 << 2;
const NF_NAT_RANGE_PERSISTENT: u32 = 1 << 3;
const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 1 << 4;
const NF_NAT_RANGE_NETMAP: u32 = 1 << 6;
