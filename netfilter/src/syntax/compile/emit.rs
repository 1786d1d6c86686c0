//! Builds kernel expressions as the kernel dumps them: attributes written
//! in dump order, then decoded through `crate::expr`, so the result equals
//! what a pull of the same rule yields, whatever typed form `expr` has.

use crate::expr::{Bytes, Expr, Verdict};
use crate::netlink::{Attrs, Writer};
use crate::syntax::ast;
use crate::sys::*;

/// One expression from its name and a writer of its data attributes.
pub fn raw(name: &str, f: impl FnOnce(&mut Writer)) -> Expr {
    let mut w = Writer::new();
    w.put_str(NFTA_EXPR_NAME, name);
    let start = w.begin_nest(NFTA_EXPR_DATA);
    f(&mut w);
    w.end_nest(start);
    let bytes = w.into_bytes();
    Expr::decode_body(Attrs::new(&bytes)).unwrap_or_else(|_| Expr::Unknown {
        name: name.to_owned(),
        data: None,
    })
}

pub fn value(w: &mut Writer, ty: u16, v: &[u8]) {
    w.nest(ty, |w| w.put(NFTA_DATA_VALUE, v));
}

pub fn verdict_data(w: &mut Writer, ty: u16, v: &Verdict) {
    w.nest(ty, |w| {
        w.nest(NFTA_DATA_VERDICT, |w| {
            w.put_u32_be(NFTA_VERDICT_CODE, v.code() as u32);
            if let Some(c) = v.chain() {
                w.put_str(NFTA_VERDICT_CHAIN, c);
            }
        })
    });
}

pub fn payload(dreg: u32, base: u32, off: u32, len: u32) -> Expr {
    raw("payload", |w| {
        w.put_u32_be(NFTA_PAYLOAD_DREG, dreg);
        w.put_u32_be(NFTA_PAYLOAD_BASE, base);
        w.put_u32_be(NFTA_PAYLOAD_OFFSET, off);
        w.put_u32_be(NFTA_PAYLOAD_LEN, len);
    })
}

pub fn payload_write(
    sreg: u32,
    base: u32,
    off: u32,
    len: u32,
    csum: Option<(u32, u32)>,
    flags: u32,
) -> Expr {
    raw("payload", |w| {
        w.put_u32_be(NFTA_PAYLOAD_SREG, sreg);
        w.put_u32_be(NFTA_PAYLOAD_BASE, base);
        w.put_u32_be(NFTA_PAYLOAD_OFFSET, off);
        w.put_u32_be(NFTA_PAYLOAD_LEN, len);
        let (t, o) = csum.unwrap_or((0, 0));
        w.put_u32_be(NFTA_PAYLOAD_CSUM_TYPE, t);
        w.put_u32_be(NFTA_PAYLOAD_CSUM_OFFSET, o);
        w.put_u32_be(NFTA_PAYLOAD_CSUM_FLAGS, flags);
    })
}

pub fn meta(key: u32, dreg: u32) -> Expr {
    raw("meta", |w| {
        w.put_u32_be(NFTA_META_KEY, key);
        w.put_u32_be(NFTA_META_DREG, dreg);
    })
}

pub fn meta_set(key: u32, sreg: u32) -> Expr {
    raw("meta", |w| {
        w.put_u32_be(NFTA_META_KEY, key);
        w.put_u32_be(NFTA_META_SREG, sreg);
    })
}

pub fn ct(key: u32, dir: Option<u32>, dreg: u32) -> Expr {
    raw("ct", |w| {
        w.put_u32_be(NFTA_CT_DREG, dreg);
        w.put_u32_be(NFTA_CT_KEY, key);
        if let Some(d) = dir {
            w.put_u8(NFTA_CT_DIRECTION, d as u8);
        }
    })
}

pub fn ct_set(key: u32, dir: Option<u32>, sreg: u32) -> Expr {
    raw("ct", |w| {
        w.put_u32_be(NFTA_CT_SREG, sreg);
        w.put_u32_be(NFTA_CT_KEY, key);
        if let Some(d) = dir {
            w.put_u8(NFTA_CT_DIRECTION, d as u8);
        }
    })
}

pub fn cmp(sreg: u32, op: u32, data: &[u8]) -> Expr {
    raw("cmp", |w| {
        w.put_u32_be(NFTA_CMP_SREG, sreg);
        w.put_u32_be(NFTA_CMP_OP, op);
        value(w, NFTA_CMP_DATA, data);
    })
}

pub fn range(sreg: u32, op: u32, from: &[u8], to: &[u8]) -> Expr {
    raw("range", |w| {
        w.put_u32_be(NFTA_RANGE_SREG, sreg);
        w.put_u32_be(NFTA_RANGE_OP, op);
        value(w, NFTA_RANGE_FROM_DATA, from);
        value(w, NFTA_RANGE_TO_DATA, to);
    })
}

pub fn bitwise(sreg: u32, dreg: u32, mask: &[u8], xor: &[u8]) -> Expr {
    raw("bitwise", |w| {
        w.put_u32_be(NFTA_BITWISE_SREG, sreg);
        w.put_u32_be(NFTA_BITWISE_DREG, dreg);
        w.put_u32_be(NFTA_BITWISE_LEN, mask.len() as u32);
        w.put_u32_be(NFTA_BITWISE_OP, NFT_BITWISE_BOOL);
        value(w, NFTA_BITWISE_MASK, mask);
        value(w, NFTA_BITWISE_XOR, xor);
    })
}

pub fn shift(sreg: u32, dreg: u32, len: u32, op: u32, n: u32) -> Expr {
    raw("bitwise", |w| {
        w.put_u32_be(NFTA_BITWISE_SREG, sreg);
        w.put_u32_be(NFTA_BITWISE_DREG, dreg);
        w.put_u32_be(NFTA_BITWISE_LEN, len);
        w.put_u32_be(NFTA_BITWISE_OP, op);
        value(w, NFTA_BITWISE_DATA, &n.to_ne_bytes());
    })
}

pub fn byteorder(reg: u32, len: u32, size: u32) -> Expr {
    raw("byteorder", |w| {
        w.put_u32_be(NFTA_BYTEORDER_SREG, reg);
        w.put_u32_be(NFTA_BYTEORDER_DREG, reg);
        w.put_u32_be(NFTA_BYTEORDER_OP, NFT_BYTEORDER_HTON);
        w.put_u32_be(NFTA_BYTEORDER_LEN, len);
        w.put_u32_be(NFTA_BYTEORDER_SIZE, size);
    })
}

pub fn lookup(set: &str, sreg: u32, dreg: Option<u32>, flags: u32) -> Expr {
    raw("lookup", |w| {
        w.put_str(NFTA_LOOKUP_SET, set);
        w.put_u32_be(NFTA_LOOKUP_SREG, sreg);
        if let Some(d) = dreg {
            w.put_u32_be(NFTA_LOOKUP_DREG, d);
        }
        w.put_u32_be(NFTA_LOOKUP_FLAGS, flags);
    })
}

pub fn immediate(dreg: u32, data: &[u8]) -> Expr {
    raw("immediate", |w| {
        w.put_u32_be(NFTA_IMMEDIATE_DREG, dreg);
        value(w, NFTA_IMMEDIATE_DATA, data);
    })
}

pub fn verdict(v: &Verdict) -> Expr {
    raw("immediate", |w| {
        w.put_u32_be(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
        verdict_data(w, NFTA_IMMEDIATE_DATA, v);
    })
}

pub fn counter(packets: u64, bytes: u64) -> Expr {
    raw("counter", |w| {
        w.put_u64_be(NFTA_COUNTER_BYTES, bytes);
        w.put_u64_be(NFTA_COUNTER_PACKETS, packets);
    })
}

/// Bytes as a `Bytes` value (for set elements).
pub fn b(v: &[u8]) -> Bytes {
    Bytes::from(v)
}

/// A written verdict as the kernel's.
pub fn verdict_of(v: &ast::Verdict) -> Verdict {
    match v {
        ast::Verdict::Accept => Verdict::Accept,
        ast::Verdict::Drop => Verdict::Drop,
        ast::Verdict::Continue => Verdict::Continue,
        ast::Verdict::Return => Verdict::Return,
        ast::Verdict::Jump(c) => Verdict::Jump(c.clone()),
        ast::Verdict::Goto(c) => Verdict::Goto(c.clone()),
    }
}
