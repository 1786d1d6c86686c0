//! Loading selectors into registers: payload and extension header
//! fields (masked and shifted when narrower than a byte), meta, ct, rt,
//! socket, fib, osf, numgen, xfrm, hashes, binary operations and
//! concatenations over consecutive registers.

use super::cx::{concat_reg, is_const, is_jhash, Loaded, RuleCx, REG1};
use super::emit;
use super::fields::{Field, Load, Proto};
use super::types::{self, *};
use crate::expr::Expr;
use crate::syntax::ast::{self, BinOp};
use crate::syntax::diag::{err, Diagnostic, Span};
use crate::syntax::parser::parse_u64;
use crate::syntax::Result as R;
use crate::sys::*;

impl RuleCx<'_> {
    /// Emits what loads `e` into `reg`; returns its type and length.
    pub(super) fn load(&mut self, e: &ast::Expr, reg: u32) -> R<Loaded> {
        match e {
            ast::Expr::Sel(path, span) if path[0] == "symhash" => {
                self.load_hash(&path[1..], None, reg, *span)
            }
            ast::Expr::Map(h, key, _) if is_jhash(e) => match &**h {
                ast::Expr::Sel(path, span) => self.load_hash(&path[1..], Some(key), reg, *span),
                _ => err(h.span(), "expected jhash"),
            },
            ast::Expr::Sel(path, span) => {
                // `ct original saddr` names no address family: nft takes it
                // from the table or a match before, else refuses.
                if path.len() == 3
                    && path[0] == "ct"
                    && matches!(path[2].as_str(), "saddr" | "daddr")
                    && self.l3.is_none()
                {
                    return err(
                        *span,
                        format!("cannot determine ip protocol version, use \"ct {} ip {}\" or \"ct {} ip6 {}\" instead", path[1], path[2], path[1], path[2]),
                    );
                }
                let f = self.resolve(path, *span)?;
                self.dependency(f.proto, *span)?;
                let f = self.in_vlan(f);
                self.icmp_type_dependency(path, *span)?;
                self.load_field(&f, reg)
            }
            ast::Expr::Binop(op, l, r, span) => {
                let left = self.load(l, reg)?;
                let len = left.len;
                match op {
                    BinOp::Shl | BinOp::Shr => {
                        let n = self.const_u64(r)? as u32;
                        let bop = if *op == BinOp::Shl {
                            NFT_BITWISE_LSHIFT
                        } else {
                            NFT_BITWISE_RSHIFT
                        };
                        self.exprs.push(emit::shift(reg, reg, len as u32, bop, n));
                    }
                    _ => {
                        let v = self.value_bytes(r, &left.dt, len)?;
                        let (mut mask, mut xor) = match op {
                            BinOp::And => (v, vec![0; len]),
                            BinOp::Or => (v.iter().map(|x| !x).collect(), v),
                            _ => (vec![0xff; len], v),
                        };
                        // nft folds a chain of these on one value into one
                        // bitwise: `(x & m1) ^ k1`, then `& m2 ^ k2`, is
                        // `x & (m1 & m2) ^ ((k1 & m2) ^ k2)`.
                        let chained = matches!(
                            &**l,
                            ast::Expr::Binop(BinOp::And | BinOp::Or | BinOp::Xor, ..)
                        );
                        if let Some(Expr::Bitwise(b)) = self.exprs.last().filter(|_| chained) {
                            use crate::expr::Data;
                            if let (Some(Data::Value(m1)), Some(Data::Value(k1))) =
                                (&b.mask, &b.xor)
                            {
                                if m1.0.len() == len && k1.0.len() == len {
                                    let (m1, k1) = (m1.0.to_vec(), k1.0.to_vec());
                                    xor = (0..len).map(|i| (k1[i] & mask[i]) ^ xor[i]).collect();
                                    mask = (0..len).map(|i| m1[i] & mask[i]).collect();
                                    self.exprs.pop();
                                }
                            }
                        }
                        self.exprs.push(emit::bitwise(reg, reg, &mask, &xor));
                    }
                }
                let _ = span;
                Ok(Loaded { mask: None, ..left })
            }
            other => err(
                other.span(),
                "expected an expression such as 'tcp dport' here",
            ),
        }
    }

    /// `jhash KEY mod N [seed S] [offset O]` (the key loaded from register
    /// 2 on, as nft does) or `symhash mod N [offset O]`, into `reg`.
    pub(super) fn load_hash(
        &mut self,
        args: &[String],
        key: Option<&ast::Expr>,
        reg: u32,
        span: Span,
    ) -> R<Loaded> {
        // The kernel dumps a seed only when one was given, an offset only
        // when not 0.
        let (mut modulus, mut seed, mut offset) = (None, None, 0u64);
        for kv in args.chunks(2) {
            let n = kv.get(1).and_then(|n| parse_u64(n));
            match (kv[0].as_str(), n) {
                ("mod", Some(n)) => modulus = Some(n),
                ("seed", Some(n)) => seed = Some(n),
                ("offset", Some(n)) => offset = n,
                _ => return err(span, format!("unexpected '{}' in hash", kv[0])),
            }
        }
        let modulus = modulus
            .filter(|m| (1..=u32::MAX as u64).contains(m))
            .ok_or_else(|| Diagnostic::new(span, "hash needs 'mod N' (1 to 2^32-1)"))?;
        let (seed, offset) = match (seed.map(u32::try_from).transpose(), u32::try_from(offset)) {
            (Ok(s), Ok(o)) => (s, o),
            _ => return err(span, "hash seed and offset are 32-bit"),
        };
        let Some(key) = key else {
            self.exprs.push(emit::raw("hash", |w| {
                w.put_u32_be(NFTA_HASH_DREG, reg);
                w.put_u32_be(NFTA_HASH_MODULUS, modulus as u32);
                if offset != 0 {
                    w.put_u32_be(NFTA_HASH_OFFSET, offset);
                }
                w.put_u32_be(NFTA_HASH_TYPE, NFT_HASH_SYM);
            }));
            return Ok(Loaded {
                dt: INTEGER,
                len: 4,
                mask: None,
            });
        };
        let parts = match key {
            ast::Expr::Concat(parts, _) => parts.as_slice(),
            k => std::slice::from_ref(k),
        };
        let (_, lens) = self.load_concat_from(parts, NFT_REG_2)?;
        let len: usize = match lens.as_slice() {
            [one] => *one,
            all => all.iter().map(|l| l.div_ceil(4) * 4).sum(),
        };
        self.exprs.push(emit::raw("hash", |w| {
            w.put_u32_be(NFTA_HASH_SREG, NFT_REG_2);
            w.put_u32_be(NFTA_HASH_DREG, reg);
            w.put_u32_be(NFTA_HASH_LEN, len as u32);
            w.put_u32_be(NFTA_HASH_MODULUS, modulus as u32);
            if let Some(seed) = seed {
                w.put_u32_be(NFTA_HASH_SEED, seed);
            }
            if offset != 0 {
                w.put_u32_be(NFTA_HASH_OFFSET, offset);
            }
            w.put_u32_be(NFTA_HASH_TYPE, NFT_HASH_JENKINS);
        }));
        Ok(Loaded {
            dt: INTEGER,
            len: 4,
            mask: None,
        })
    }

    pub(super) fn load_field(&mut self, f: &Field, reg: u32) -> R<Loaded> {
        let dt = f.dt;
        match &f.load {
            Load::Payload { base, off, len } => {
                let (start, nbytes, mask) = bit_window(*off, *len);
                self.exprs
                    .push(emit::payload(reg, *base, start, nbytes as u32));
                Ok(Loaded {
                    dt,
                    len: nbytes,
                    mask,
                })
            }
            Load::Exthdr {
                op,
                ty,
                off,
                len,
                flags,
            } => {
                let (start, nbytes, mask) = bit_window(*off, *len);
                self.exprs.push(emit::raw("exthdr", |w| {
                    w.put_u32_be(NFTA_EXTHDR_DREG, reg);
                    w.put_u8(NFTA_EXTHDR_TYPE, *ty);
                    w.put_u32_be(NFTA_EXTHDR_OFFSET, start);
                    w.put_u32_be(NFTA_EXTHDR_LEN, nbytes as u32);
                    w.put_u32_be(NFTA_EXTHDR_FLAGS, *flags);
                    w.put_u32_be(NFTA_EXTHDR_OP, *op);
                }));
                Ok(Loaded {
                    dt,
                    len: nbytes,
                    mask,
                })
            }
            Load::Meta(key) => {
                self.exprs.push(emit::meta(*key, reg));
                Ok(Loaded::whole(dt))
            }
            Load::Ct { key, dir } => {
                self.exprs.push(emit::ct(*key, *dir, reg));
                Ok(Loaded::whole(dt))
            }
            Load::Xfrm { key, dir, spnum } => {
                self.exprs.push(emit::raw("xfrm", |w| {
                    w.put_u32_be(NFTA_XFRM_DREG, reg);
                    w.put_u32_be(NFTA_XFRM_KEY, *key);
                    w.put_u8(NFTA_XFRM_DIR, *dir);
                    w.put_u32_be(NFTA_XFRM_SPNUM, *spnum);
                }));
                Ok(Loaded::whole(dt))
            }
            Load::Rt(key) => {
                self.exprs.push(emit::raw("rt", |w| {
                    w.put_u32_be(NFTA_RT_KEY, *key);
                    w.put_u32_be(NFTA_RT_DREG, reg);
                }));
                Ok(Loaded::whole(dt))
            }
            Load::Socket { key, level } => {
                self.exprs.push(emit::raw("socket", |w| {
                    w.put_u32_be(NFTA_SOCKET_KEY, *key);
                    w.put_u32_be(NFTA_SOCKET_DREG, reg);
                    if let Some(l) = level {
                        w.put_u32_be(3, *l);
                    }
                }));
                Ok(Loaded::whole(dt))
            }
            Load::Numgen {
                mode,
                modulus,
                offset,
            } => {
                self.exprs.push(emit::raw("numgen", |w| {
                    w.put_u32_be(NFTA_NG_DREG, reg);
                    w.put_u32_be(NFTA_NG_MODULUS, *modulus);
                    w.put_u32_be(NFTA_NG_TYPE, *mode);
                    w.put_u32_be(NFTA_NG_OFFSET, *offset);
                }));
                Ok(Loaded {
                    dt,
                    len: 4,
                    mask: None,
                })
            }
            Load::Osf { ttl, flags } => {
                self.exprs.push(emit::raw("osf", |w| {
                    w.put_u32_be(NFTA_OSF_DREG, reg);
                    w.put_u8(NFTA_OSF_TTL, *ttl as u8);
                    w.put_u32_be(NFTA_OSF_FLAGS, *flags);
                }));
                Ok(Loaded::whole(dt))
            }
            Load::Fib { flags, result } => {
                self.exprs.push(emit::raw("fib", |w| {
                    w.put_u32_be(NFTA_FIB_DREG, reg);
                    w.put_u32_be(NFTA_FIB_RESULT, *result);
                    w.put_u32_be(NFTA_FIB_FLAGS, *flags);
                }));
                Ok(Loaded::whole(dt))
            }
        }
    }

    /// A vlan field of the innermost VLAN header known present.
    pub(super) fn in_vlan(&self, mut f: Field) -> Field {
        if let (Proto::Vlan, Load::Payload { off, .. }) = (f.proto, &mut f.load) {
            *off += 32 * self.vlan_depth.saturating_sub(1);
        }
        f
    }

    pub(super) fn load_concat(&mut self, parts: &[ast::Expr]) -> R<(Vec<Dtype>, Vec<usize>)> {
        self.load_concat_at(parts, &[], REG1)
    }

    /// Loads a concatenation from 16-byte register `first` on.
    pub(super) fn load_concat_from(
        &mut self,
        parts: &[ast::Expr],
        first: u32,
    ) -> R<(Vec<Dtype>, Vec<usize>)> {
        self.load_concat_at(parts, &[], first)
    }

    /// [`Self::load_concat`] where parts may be constants, of the types in
    /// `types` (a dynamic set's key: `add @s { ip saddr . 10002 }`).
    pub(super) fn load_concat_typed(
        &mut self,
        parts: &[ast::Expr],
        types: &[Dtype],
    ) -> R<(Vec<Dtype>, Vec<usize>)> {
        self.load_concat_at(parts, types, REG1)
    }

    pub(super) fn load_concat_at(
        &mut self,
        parts: &[ast::Expr],
        types: &[Dtype],
        first: u32,
    ) -> R<(Vec<Dtype>, Vec<usize>)> {
        for p in parts {
            if let ast::Expr::Sel(path, span) = p {
                if path.len() == 3
                    && path[0] == "ct"
                    && matches!(path[2].as_str(), "saddr" | "daddr")
                {
                    return err(*span, "specify either ip or ip6 for address matching");
                }
            }
        }
        // Dependencies first, as nft hoists them before the loads.
        self.hoist_dependencies(parts)?;
        let mut off = 0usize;
        let (mut dts, mut lens) = (Vec::new(), Vec::new());
        // Offsets count from the first register of the 16-byte bank.
        let base = (first - NFT_REG_1) as usize * 16;
        let mut loads = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            let reg = concat_reg(base + off);
            if let (true, Some(dt)) = (is_const(p), types.get(i)) {
                let len = dt.bytes().max(1);
                let v = self.const_value(p, dt, len)?;
                self.exprs.push(emit::immediate(reg, &v));
                off += len.div_ceil(4) * 4;
                dts.push(*dt);
                lens.push(len);
                continue;
            }
            let ld = self.load(p, reg)?;
            if let Some((m, shift)) = &ld.mask {
                self.exprs
                    .push(emit::bitwise(reg, reg, m, &vec![0; ld.len]));
                // Sub-byte fields of a concatenation are shifted down.
                if *shift != 0 {
                    self.exprs.push(emit::shift(
                        reg,
                        reg,
                        ld.len as u32,
                        NFT_BITWISE_RSHIFT,
                        *shift,
                    ));
                }
            }
            off += ld.len.div_ceil(4) * 4;
            let l4proto = matches!(p, ast::Expr::Sel(q, _) if q == &["meta", "l4proto"]);
            loads.push((self.exprs.len(), reg, ld.dt, ld.len, l4proto));
            dts.push(ld.dt);
            lens.push(ld.len);
        }
        self.concat_loads = loads;
        Ok((dts, lens))
    }

    /// Masks a sub-byte single key loaded into register 1. Anonymous sets
    /// hold their values shifted up to the field; named sets hold plain
    /// values, so the key is shifted down and is as long as its type.
    /// Returns the key's length.
    pub(super) fn key_mask(&mut self, ld: &Loaded, named: bool, reg: u32) -> usize {
        let Some((m, shift)) = &ld.mask else {
            return ld.len;
        };
        self.exprs
            .push(emit::bitwise(reg, reg, m, &vec![0; ld.len]));
        if !named || *shift == 0 {
            self.anon_shift = *shift;
            return ld.len;
        }
        self.exprs.push(emit::shift(
            reg,
            reg,
            ld.len as u32,
            NFT_BITWISE_RSHIFT,
            *shift,
        ));
        ld.dt.bytes().clamp(1, ld.len)
    }
}

/// The whole bytes a field of `len` bits at bit `off` spans: the first
/// byte, how many, and — when the field does not fill them — the mask
/// selecting it and the shift bringing it down to bit 0.
fn bit_window(off: u32, len: u32) -> (u32, usize, Option<(Vec<u8>, u32)>) {
    let start = off / 8;
    let end = (off + len).div_ceil(8);
    let nbytes = (end - start) as usize;
    let mask = if off % 8 != 0 || len % 8 != 0 {
        let shift = end * 8 - (off + len);
        let m: u128 = ((1u128 << len) - 1) << shift;
        Some((types::int_bytes(m, nbytes, true).unwrap_or_default(), shift))
    } else {
        None
    };
    (start, nbytes, mask)
}
