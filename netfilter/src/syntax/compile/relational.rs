//! Matches (`left op right`: comparisons, prefixes, ranges, flags, set
//! lookups) and assignments (`meta mark set ...`, payload writes).

use super::cx::{is_const, l3_name, RuleCx, REG1};
use super::emit;
use super::fields::{field, Load};
use super::lookup::object_ref;
use super::types::{self, *};
use super::values::{self, Val};
use crate::expr::Expr;
use crate::model::Family;
use crate::syntax::ast::{self, BinOp, Elem, RelOp};
use crate::syntax::diag::err;
use crate::syntax::diag::Span;
use crate::syntax::parser::parse_u64;
use crate::syntax::Result as R;
use crate::sys::*;

impl RuleCx<'_> {
    pub(super) fn relational(
        &mut self,
        left: &ast::Expr,
        op: RelOp,
        right: &ast::Expr,
        span: Span,
    ) -> R<()> {
        if op == RelOp::Not && matches!(left, ast::Expr::Binop(..)) {
            return err(span, "cannot combine negation with binary expression");
        }
        // `tcp flags & (syn | ack) syn`: after a mask, a bare value is an
        // equality, not a test of any of its flags.
        let op = match (left, op) {
            (ast::Expr::Binop(BinOp::And, ..), RelOp::Implicit) => RelOp::Eq,
            _ => op,
        };
        // nft matches a one-element anonymous set as that element (and
        // drops the element's statements).
        if let ast::Expr::Set(elems, _) = right {
            if let [e] = elems.as_slice() {
                if e.data.is_none()
                    && !matches!(left, ast::Expr::Concat(..))
                    && !matches!(e.key, ast::Expr::Concat(..) | ast::Expr::Wildcard(_))
                    && matches!(op, RelOp::Implicit | RelOp::Eq | RelOp::Ne)
                {
                    return self.relational(left, op, &e.key, span);
                }
            }
        }
        // `fib daddr oif exists`: a presence test of the lookup result.
        if let (ast::Expr::Sel(path, ps), ast::Expr::Word(w, _)) = (left, right) {
            if path.first().is_some_and(|h| h == "fib")
                && path.last().is_some_and(|l| l != "present")
                && (w == "exists" || w == "missing")
            {
                let mut p = path.clone();
                p.push("present".into());
                let sel = ast::Expr::Sel(p, *ps);
                return self.relational(&sel, op, right, span);
            }
        }
        // `x xor C == V` is `x == V xor C`, as nft folds it.
        if let ast::Expr::Binop(BinOp::Xor, l, c, _) = left {
            let single = |e: &ast::Expr| {
                is_const(e)
                    && !matches!(
                        e,
                        ast::Expr::Set(..) | ast::Expr::List(..) | ast::Expr::Range(..)
                    )
            };
            if matches!(**l, ast::Expr::Sel(..))
                && single(c)
                && single(right)
                && matches!(op, RelOp::Implicit | RelOp::Eq | RelOp::Ne)
            {
                let ld = self.load(l, REG1)?;
                if ld.mask.is_none() {
                    let a = self.value_bytes(right, &ld.dt, ld.len)?;
                    let b = self.value_bytes(c, &ld.dt, ld.len)?;
                    let v: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
                    self.exprs.push(emit::cmp(REG1, cmp_op(op, span)?, &v));
                    return Ok(());
                }
                return err(span, "cannot fold xor on a partial field");
            }
        }
        if let ast::Expr::Sel(path, _) = left {
            let p = super::fields::words(path);
            match p.as_slice() {
                ["meta", "l4proto"] | ["ip", "protocol"] | ["ip6", "nexthdr"] => {
                    self.l4_any = true;
                    // Several protocols: a later header of one of them conflicts.
                    if let ast::Expr::Set(elems, _) = right {
                        if elems.len() > 1 && self.l4.is_none() {
                            self.l4_set = true;
                        }
                    }
                }
                ["th", _] => self.l4_any = true,
                ["icmp" | "icmpv6", "type"]
                    if matches!(right, ast::Expr::Set(..) | ast::Expr::List(..)) =>
                {
                    self.icmp_type_set = true
                }
                ["meta", "nfproto"] if self.family != Family::Inet => {
                    return err(span, "meta nfproto is only useful in the inet family")
                }
                ["ct", _, "ip" | "ip6", _] => {
                    let want = if p[2] == "ip" { NFPROTO_IPV4 } else { NFPROTO_IPV6 };
                    if self.l3.is_some_and(|h| h != want) {
                        return err(
                            span,
                            format!(
                                "conflicting protocols specified: {} vs. {}",
                                l3_name(self.l3.unwrap_or(0)),
                                p[2]
                            ),
                        );
                    }
                }
                ["rt", "nexthop"] if self.family == Family::Inet && self.l3.is_none() => {
                    return err(span, "cannot determine ip protocol version, use \"ip nexthop\" or \"ip6 nexthop\" instead")
                }
                ["rt", "ip6", "nexthop"] if self.family == Family::Ip => {
                    return err(span, "ip6 nexthop will not match")
                }
                _ => {}
            }
        }
        // The key of an anonymous set the right side may make (copied only
        // then: most matches compare with a value).
        self.anon_key.clear();
        if matches!(
            right,
            ast::Expr::Set(..) | ast::Expr::SetRef(..) | ast::Expr::List(..)
        ) || matches!(left, ast::Expr::Concat(..))
        {
            self.anon_key = match left {
                ast::Expr::Concat(parts, _) => parts.clone(),
                e => vec![e.clone()],
            };
        }
        // Concatenations load into consecutive registers.
        if let ast::Expr::Concat(parts, _) = left {
            let (dts, lens) = self.load_concat(parts)?;
            return self.lookup_match(right, &dts, &lens, op, span);
        }
        let ld = self.load(left, REG1)?;
        let dt = ld.dt;
        let len = ld.len;
        match right {
            ast::Expr::Set(..) | ast::Expr::SetRef(..) => {
                let named = matches!(right, ast::Expr::SetRef(..));
                let len = self.key_mask(&ld, named, REG1);
                return self.lookup_match(right, &[dt], &[len], op, span);
            }
            ast::Expr::List(items, _) if dt.kind != Kind::Bitmask => {
                let set = ast::Expr::Set(
                    items
                        .iter()
                        .map(|k| Elem::new(k.clone(), k.span()))
                        .collect(),
                    right.span(),
                );
                return self.lookup_match(&set, &[dt], &[len], op, span);
            }
            _ => {}
        }
        let shift = ld.mask.as_ref().map(|m| m.1).unwrap_or(0);
        let wrapped = values::hour_wrap(right, &dt, self.table);
        let (right, op) = match &wrapped {
            Some(r) => (
                r,
                match op {
                    RelOp::Ne => RelOp::Eq,
                    _ => RelOp::Ne,
                },
            ),
            None => (right, op),
        };
        let val = values::value_shifted(right, &dt, len, shift, self.table)?;
        match val {
            Val::Bytes(v) => {
                if let ast::Expr::Sel(path, _) = left {
                    if matches!(op, RelOp::Implicit | RelOp::Eq) {
                        self.learn(path, &v);
                    }
                }
                if dt.kind == Kind::Bitmask
                    && matches!(op, RelOp::Implicit | RelOp::Not)
                    && !is_zero_literal(right)
                {
                    let zero = vec![0; len];
                    self.exprs.push(emit::bitwise(REG1, REG1, &v, &zero));
                    let cop = if op == RelOp::Not {
                        NFT_CMP_EQ
                    } else {
                        NFT_CMP_NEQ
                    };
                    self.exprs.push(emit::cmp(REG1, cop, &zero));
                    return Ok(());
                }
                if let Some((m, _)) = &ld.mask {
                    self.exprs.push(emit::bitwise(REG1, REG1, m, &vec![0; len]));
                }
                let cop = cmp_op(op, span)?;
                if !dt.be
                    && matches!(cop, NFT_CMP_LT | NFT_CMP_LTE | NFT_CMP_GT | NFT_CMP_GTE)
                    && len > 1
                {
                    self.exprs
                        .push(emit::byteorder(REG1, len as u32, len as u32));
                    let mut v = v;
                    v.reverse();
                    self.exprs.push(emit::cmp(REG1, cop, &v));
                } else {
                    self.exprs.push(emit::cmp(REG1, cop, &v));
                }
                Ok(())
            }
            Val::Prefix(v, plen) => {
                let full = len * 8;
                // `/0` keeps the whole load, masked to nothing.
                if plen as usize % 8 == 0
                    && plen != 0
                    && ld.mask.is_none()
                    && matches!(left, ast::Expr::Sel(..))
                {
                    // Whole bytes: load fewer bytes instead of masking.
                    let n = plen as usize / 8;
                    if let Some(Expr::Payload(_)) = self.exprs.last() {
                        let last = self.exprs.pop();
                        if let Some(Load::Payload { base, off, .. }) = self.sel_load(left) {
                            self.exprs
                                .push(emit::payload(REG1, base, off / 8, n as u32));
                        } else if let Some(l) = last {
                            self.exprs.push(l);
                        }
                    } else if n != len
                        && !(dt.be
                            && matches!(self.exprs.last(), Some(Expr::Ct(_) | Expr::Xfrm(_))))
                    {
                        // Network-order ct and ipsec (xfrm) addresses
                        // compare their first bytes only; anything else is
                        // masked.
                        let mask = values::prefix_mask_ordered(len, plen, dt.be);
                        self.exprs
                            .push(emit::bitwise(REG1, REG1, &mask, &vec![0; len]));
                        let cop = cmp_op(op, span)?;
                        self.exprs.push(emit::cmp(REG1, cop, &v));
                        return Ok(());
                    }
                    let cop = cmp_op(op, span)?;
                    self.exprs.push(emit::cmp(REG1, cop, &v[..n.min(v.len())]));
                    return Ok(());
                }
                let _ = full;
                let mask = values::prefix_mask_ordered(len, plen, dt.be);
                self.exprs
                    .push(emit::bitwise(REG1, REG1, &mask, &vec![0; len]));
                let cop = cmp_op(op, span)?;
                self.exprs.push(emit::cmp(REG1, cop, &v));
                Ok(())
            }
            Val::Range(lo, hi) => {
                if let Some((m, _)) = &ld.mask {
                    self.exprs.push(emit::bitwise(REG1, REG1, m, &vec![0; len]));
                }
                let (mut lo, mut hi) = (lo, hi);
                if !dt.be && len > 1 {
                    self.exprs
                        .push(emit::byteorder(REG1, len as u32, len as u32));
                    lo.reverse();
                    hi.reverse();
                }
                match op {
                    RelOp::Implicit | RelOp::Eq => {
                        self.exprs.push(emit::cmp(REG1, NFT_CMP_GTE, &lo));
                        self.exprs.push(emit::cmp(REG1, NFT_CMP_LTE, &hi));
                    }
                    RelOp::Ne => self.exprs.push(emit::range(REG1, NFT_RANGE_NEQ, &lo, &hi)),
                    _ => return err(span, "ranges support only == and !="),
                }
                Ok(())
            }
        }
    }

    pub(super) fn assign(&mut self, left: &ast::Expr, value: &ast::Expr, span: Span) -> R<()> {
        let ast::Expr::Sel(path, lspan) = left else {
            return err(left.span(), "cannot assign to this expression");
        };
        // `ct helper set "ftp"`: a reference to a named object.
        let p = super::fields::words(path);
        let obj = match p.as_slice() {
            ["ct", "helper"] => Some(NFT_OBJECT_CT_HELPER),
            ["ct", "timeout"] => Some(NFT_OBJECT_CT_TIMEOUT),
            ["ct", "expectation"] => Some(NFT_OBJECT_CT_EXPECT),
            _ => None,
        };
        if let Some(ty) = obj {
            return object_ref(self, ty, value);
        }
        let f = self.resolve(path, *lspan)?;
        match &f.load {
            Load::Meta(key) => {
                let len = f.dt.bytes();
                self.eval_into(value, &f.dt, len, REG1)?;
                self.exprs.push(emit::meta_set(*key, REG1));
                Ok(())
            }
            Load::Ct { key, dir } => {
                let len = f.dt.bytes();
                self.eval_into(value, &f.dt, len, REG1)?;
                self.exprs.push(emit::ct_set(*key, *dir, REG1));
                Ok(())
            }
            Load::Payload { base, off, len } => {
                self.dependency(f.proto, *lspan)?;
                let csum = payload_csum(*base, path);
                let (mut start, mut end) = (off / 8, (off + len).div_ceil(8));
                // Checksummed headers are rewritten in whole 16-bit words,
                // so the checksum can be updated incrementally.
                let inner = *base == NFT_PAYLOAD_INNER_HEADER;
                if inner || csum.is_some_and(|(t, _)| t == NFT_PAYLOAD_CSUM_INET) {
                    start &= !1;
                    end = end.div_ceil(2) * 2;
                }
                let n = (end - start) as usize;
                if off % 8 != 0
                    || len % 8 != 0
                    || off / 8 != start
                    || (off + len).div_ceil(8) != end
                {
                    let shift = end * 8 - (off + len);
                    let v = values::value_shifted(value, &f.dt, n, shift, self.table)?;
                    let Val::Bytes(v) = v else {
                        return err(value.span(), "expected a value");
                    };
                    let m: u128 = ((1u128 << len) - 1) << shift;
                    let mask = types::int_bytes(m, n, true).unwrap_or_default();
                    let inv: Vec<u8> = mask.iter().map(|x| !x).collect();
                    self.exprs.push(emit::payload(REG1, *base, start, n as u32));
                    self.exprs.push(emit::bitwise(REG1, REG1, &inv, &v));
                } else {
                    self.eval_into(value, &f.dt, n, REG1)?;
                }
                // Fields of the transport checksum's pseudo-header: nft
                // asks for that checksum to be updated too.
                let pseudo = inner
                    || matches!(
                        p.as_slice(),
                        ["ip", "saddr" | "daddr" | "protocol"]
                            | ["ip6", "saddr" | "daddr" | "nexthdr"]
                    );
                let flags = if pseudo {
                    NFT_PAYLOAD_L4CSUM_PSEUDOHDR
                } else {
                    0
                };
                self.exprs.push(emit::payload_write(
                    REG1, *base, start, n as u32, csum, flags,
                ));
                let _ = span;
                Ok(())
            }
            Load::Exthdr {
                op, ty, off, len, ..
            } if *op == NFT_EXTHDR_OP_TCPOPT && off % 8 == 0 && len % 8 == 0 => {
                let n = (len / 8) as usize;
                self.eval_into(value, &f.dt, n, REG1)?;
                // A host-order value (`rt mtu`) is written in network order.
                let host = match value {
                    ast::Expr::Sel(p, _) => field(p, self.family_l3()).is_some_and(|v| !v.dt.be),
                    _ => false,
                };
                if host && f.dt.be && n > 1 {
                    self.exprs.push(emit::byteorder(REG1, n as u32, n as u32));
                }
                self.exprs.push(emit::raw("exthdr", |w| {
                    w.put_u32_be(NFTA_EXTHDR_SREG, REG1);
                    w.put_u8(NFTA_EXTHDR_TYPE, *ty);
                    w.put_u32_be(NFTA_EXTHDR_OFFSET, off / 8);
                    w.put_u32_be(NFTA_EXTHDR_LEN, n as u32);
                    w.put_u32_be(NFTA_EXTHDR_FLAGS, 0);
                    w.put_u32_be(NFTA_EXTHDR_OP, *op);
                }));
                Ok(())
            }
            _ => err(*lspan, "cannot assign to this expression"),
        }
    }
}

fn payload_csum(base: u32, path: &[String]) -> Option<(u32, u32)> {
    let p = super::fields::words(path);
    match (base, p.first().copied()) {
        (NFT_PAYLOAD_NETWORK_HEADER, Some("ip")) => Some((NFT_PAYLOAD_CSUM_INET, 10)),
        (NFT_PAYLOAD_TRANSPORT_HEADER, Some("tcp")) => Some((NFT_PAYLOAD_CSUM_INET, 16)),
        (NFT_PAYLOAD_TRANSPORT_HEADER, Some("udp")) => Some((NFT_PAYLOAD_CSUM_INET, 6)),
        (NFT_PAYLOAD_TRANSPORT_HEADER, Some("icmp" | "icmpv6")) => Some((NFT_PAYLOAD_CSUM_INET, 2)),
        _ => None,
    }
}

fn is_zero_literal(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Word(w, _) if parse_u64(w) == Some(0))
}

fn cmp_op(op: RelOp, span: Span) -> R<u32> {
    Ok(match op {
        RelOp::Implicit | RelOp::Eq => NFT_CMP_EQ,
        RelOp::Ne => NFT_CMP_NEQ,
        RelOp::Lt => NFT_CMP_LT,
        RelOp::Gt => NFT_CMP_GT,
        RelOp::Le => NFT_CMP_LTE,
        RelOp::Ge => NFT_CMP_GTE,
        RelOp::Not => return err(span, "'!' applies only to flags"),
    })
}
