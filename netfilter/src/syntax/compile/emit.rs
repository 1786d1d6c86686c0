//! Builds kernel expressions as the kernel dumps them, so the result
//! equals what a pull of the same rule yields. The common ones are built
//! directly as their typed values; the rest ([`raw`]) are written as
//! attributes in dump order and decoded through `crate::expr`. Tests
//! check both against the codec: every compiled expression of the golden
//! files and the corpus decodes from its own encoding unchanged.

use crate::expr::bitwise::Bitwise;
use crate::expr::byteorder::Byteorder;
use crate::expr::cmp::Cmp;
use crate::expr::counter::Counter;
use crate::expr::ct::Ct;
use crate::expr::immediate::Immediate;
use crate::expr::lookup::Lookup;
use crate::expr::meta::Meta;
use crate::expr::payload::Payload;
use crate::expr::range::Range;
use crate::expr::{Bytes, Data, Expr, Verdict};
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

pub fn payload(dreg: u32, base: u32, off: u32, len: u32) -> Expr {
    Payload {
        dreg: Some(dreg),
        base: Some(base.into()),
        offset: Some(off),
        len: Some(len),
        ..Default::default()
    }
    .into()
}

pub fn payload_write(
    sreg: u32,
    base: u32,
    off: u32,
    len: u32,
    csum: Option<(u32, u32)>,
    flags: u32,
) -> Expr {
    let (t, o) = csum.unwrap_or((0, 0));
    Payload {
        sreg: Some(sreg),
        base: Some(base.into()),
        offset: Some(off),
        len: Some(len),
        csum_type: Some(t),
        csum_offset: Some(o),
        csum_flags: Some(flags),
        ..Default::default()
    }
    .into()
}

pub fn meta(key: u32, dreg: u32) -> Expr {
    Meta {
        key: Some(key.into()),
        dreg: Some(dreg),
        ..Default::default()
    }
    .into()
}

pub fn meta_set(key: u32, sreg: u32) -> Expr {
    Meta {
        key: Some(key.into()),
        sreg: Some(sreg),
        ..Default::default()
    }
    .into()
}

pub fn ct(key: u32, dir: Option<u32>, dreg: u32) -> Expr {
    Ct {
        dreg: Some(dreg),
        key: Some(key.into()),
        direction: dir.map(|d| d as u8),
        ..Default::default()
    }
    .into()
}

pub fn ct_set(key: u32, dir: Option<u32>, sreg: u32) -> Expr {
    Ct {
        sreg: Some(sreg),
        key: Some(key.into()),
        direction: dir.map(|d| d as u8),
        ..Default::default()
    }
    .into()
}

pub fn cmp(sreg: u32, op: u32, data: &[u8]) -> Expr {
    Cmp {
        sreg: Some(sreg),
        op: Some(op.into()),
        data: Some(Data::value(data)),
        ..Default::default()
    }
    .into()
}

pub fn range(sreg: u32, op: u32, from: &[u8], to: &[u8]) -> Expr {
    Range {
        sreg: Some(sreg),
        op: Some(op.into()),
        from: Some(Data::value(from)),
        to: Some(Data::value(to)),
        ..Default::default()
    }
    .into()
}

pub fn bitwise(sreg: u32, dreg: u32, mask: &[u8], xor: &[u8]) -> Expr {
    Bitwise {
        sreg: Some(sreg),
        dreg: Some(dreg),
        len: Some(mask.len() as u32),
        op: Some(NFT_BITWISE_BOOL.into()),
        mask: Some(Data::value(mask)),
        xor: Some(Data::value(xor)),
        ..Default::default()
    }
    .into()
}

pub fn shift(sreg: u32, dreg: u32, len: u32, op: u32, n: u32) -> Expr {
    Bitwise {
        sreg: Some(sreg),
        dreg: Some(dreg),
        len: Some(len),
        op: Some(op.into()),
        data: Some(Data::value(&n.to_ne_bytes()[..])),
        ..Default::default()
    }
    .into()
}

pub fn byteorder(reg: u32, len: u32, size: u32) -> Expr {
    Byteorder {
        sreg: Some(reg),
        dreg: Some(reg),
        op: Some(NFT_BYTEORDER_HTON.into()),
        len: Some(len),
        size: Some(size),
        ..Default::default()
    }
    .into()
}

pub fn lookup(set: &str, sreg: u32, dreg: Option<u32>, flags: u32) -> Expr {
    Lookup {
        set: Some(set.to_owned()),
        sreg: Some(sreg),
        dreg,
        flags: Some(flags),
        ..Default::default()
    }
    .into()
}

pub fn immediate(dreg: u32, data: &[u8]) -> Expr {
    Immediate {
        dreg: Some(dreg),
        data: Some(Data::value(data)),
        ..Default::default()
    }
    .into()
}

pub fn verdict(v: &Verdict) -> Expr {
    Immediate {
        dreg: Some(NFT_REG_VERDICT),
        data: Some(Data::Verdict(v.clone())),
        ..Default::default()
    }
    .into()
}

pub fn counter(packets: u64, bytes: u64) -> Expr {
    Counter {
        bytes: Some(bytes),
        packets: Some(packets),
        ..Default::default()
    }
    .into()
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

#[cfg(test)]
mod tests {
    //! Each expression built directly equals the one the attributes the
    //! kernel dumps for it decode to (the way these were built before).

    use super::raw;
    use crate::expr::{Expr, Verdict};
    use crate::netlink::Writer;
    use crate::sys::*;

    fn value(w: &mut Writer, ty: u16, v: &[u8]) {
        w.nest(ty, |w| w.put(NFTA_DATA_VALUE, v));
    }

    fn verdict_data(w: &mut Writer, ty: u16, v: &Verdict) {
        w.nest(ty, |w| {
            w.nest(NFTA_DATA_VERDICT, |w| {
                w.put_u32_be(NFTA_VERDICT_CODE, v.code() as u32);
                if let Some(c) = v.chain() {
                    w.put_str(NFTA_VERDICT_CHAIN, c);
                }
            })
        });
    }

    fn payload(dreg: u32, base: u32, off: u32, len: u32) -> Expr {
        raw("payload", |w| {
            w.put_u32_be(NFTA_PAYLOAD_DREG, dreg);
            w.put_u32_be(NFTA_PAYLOAD_BASE, base);
            w.put_u32_be(NFTA_PAYLOAD_OFFSET, off);
            w.put_u32_be(NFTA_PAYLOAD_LEN, len);
        })
    }

    fn payload_write(
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

    fn meta(key: u32, dreg: u32) -> Expr {
        raw("meta", |w| {
            w.put_u32_be(NFTA_META_KEY, key);
            w.put_u32_be(NFTA_META_DREG, dreg);
        })
    }

    fn meta_set(key: u32, sreg: u32) -> Expr {
        raw("meta", |w| {
            w.put_u32_be(NFTA_META_KEY, key);
            w.put_u32_be(NFTA_META_SREG, sreg);
        })
    }

    fn ct(key: u32, dir: Option<u32>, dreg: u32) -> Expr {
        raw("ct", |w| {
            w.put_u32_be(NFTA_CT_DREG, dreg);
            w.put_u32_be(NFTA_CT_KEY, key);
            if let Some(d) = dir {
                w.put_u8(NFTA_CT_DIRECTION, d as u8);
            }
        })
    }

    fn ct_set(key: u32, dir: Option<u32>, sreg: u32) -> Expr {
        raw("ct", |w| {
            w.put_u32_be(NFTA_CT_SREG, sreg);
            w.put_u32_be(NFTA_CT_KEY, key);
            if let Some(d) = dir {
                w.put_u8(NFTA_CT_DIRECTION, d as u8);
            }
        })
    }

    fn cmp(sreg: u32, op: u32, data: &[u8]) -> Expr {
        raw("cmp", |w| {
            w.put_u32_be(NFTA_CMP_SREG, sreg);
            w.put_u32_be(NFTA_CMP_OP, op);
            value(w, NFTA_CMP_DATA, data);
        })
    }

    fn range(sreg: u32, op: u32, from: &[u8], to: &[u8]) -> Expr {
        raw("range", |w| {
            w.put_u32_be(NFTA_RANGE_SREG, sreg);
            w.put_u32_be(NFTA_RANGE_OP, op);
            value(w, NFTA_RANGE_FROM_DATA, from);
            value(w, NFTA_RANGE_TO_DATA, to);
        })
    }

    fn bitwise(sreg: u32, dreg: u32, mask: &[u8], xor: &[u8]) -> Expr {
        raw("bitwise", |w| {
            w.put_u32_be(NFTA_BITWISE_SREG, sreg);
            w.put_u32_be(NFTA_BITWISE_DREG, dreg);
            w.put_u32_be(NFTA_BITWISE_LEN, mask.len() as u32);
            w.put_u32_be(NFTA_BITWISE_OP, NFT_BITWISE_BOOL);
            value(w, NFTA_BITWISE_MASK, mask);
            value(w, NFTA_BITWISE_XOR, xor);
        })
    }

    fn shift(sreg: u32, dreg: u32, len: u32, op: u32, n: u32) -> Expr {
        raw("bitwise", |w| {
            w.put_u32_be(NFTA_BITWISE_SREG, sreg);
            w.put_u32_be(NFTA_BITWISE_DREG, dreg);
            w.put_u32_be(NFTA_BITWISE_LEN, len);
            w.put_u32_be(NFTA_BITWISE_OP, op);
            value(w, NFTA_BITWISE_DATA, &n.to_ne_bytes());
        })
    }

    fn byteorder(reg: u32, len: u32, size: u32) -> Expr {
        raw("byteorder", |w| {
            w.put_u32_be(NFTA_BYTEORDER_SREG, reg);
            w.put_u32_be(NFTA_BYTEORDER_DREG, reg);
            w.put_u32_be(NFTA_BYTEORDER_OP, NFT_BYTEORDER_HTON);
            w.put_u32_be(NFTA_BYTEORDER_LEN, len);
            w.put_u32_be(NFTA_BYTEORDER_SIZE, size);
        })
    }

    fn lookup(set: &str, sreg: u32, dreg: Option<u32>, flags: u32) -> Expr {
        raw("lookup", |w| {
            w.put_str(NFTA_LOOKUP_SET, set);
            w.put_u32_be(NFTA_LOOKUP_SREG, sreg);
            if let Some(d) = dreg {
                w.put_u32_be(NFTA_LOOKUP_DREG, d);
            }
            w.put_u32_be(NFTA_LOOKUP_FLAGS, flags);
        })
    }

    fn immediate(dreg: u32, data: &[u8]) -> Expr {
        raw("immediate", |w| {
            w.put_u32_be(NFTA_IMMEDIATE_DREG, dreg);
            value(w, NFTA_IMMEDIATE_DATA, data);
        })
    }

    fn verdict(v: &Verdict) -> Expr {
        raw("immediate", |w| {
            w.put_u32_be(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            verdict_data(w, NFTA_IMMEDIATE_DATA, v);
        })
    }

    fn counter(packets: u64, bytes: u64) -> Expr {
        raw("counter", |w| {
            w.put_u64_be(NFTA_COUNTER_BYTES, bytes);
            w.put_u64_be(NFTA_COUNTER_PACKETS, packets);
        })
    }

    #[test]
    fn built_directly_as_decoded_from_the_kernels_attributes() {
        let d = |e: Expr, r: Expr| assert_eq!(e, r);
        for dir in [None, Some(1)] {
            d(super::ct(NFT_CT_MARK, dir, 1), ct(NFT_CT_MARK, dir, 1));
            d(
                super::ct_set(NFT_CT_MARK, dir, 1),
                ct_set(NFT_CT_MARK, dir, 1),
            );
        }
        d(super::payload(1, 1, 12, 4), payload(1, 1, 12, 4));
        for csum in [None, Some((NFT_PAYLOAD_CSUM_INET, 10))] {
            d(
                super::payload_write(1, 1, 16, 2, csum, 1),
                payload_write(1, 1, 16, 2, csum, 1),
            );
        }
        d(super::meta(NFT_META_IIFNAME, 1), meta(NFT_META_IIFNAME, 1));
        d(
            super::meta_set(NFT_META_MARK, 1),
            meta_set(NFT_META_MARK, 1),
        );
        d(
            super::cmp(1, NFT_CMP_GTE, &[1, 2]),
            cmp(1, NFT_CMP_GTE, &[1, 2]),
        );
        d(
            super::range(1, NFT_RANGE_NEQ, &[1], &[9]),
            range(1, NFT_RANGE_NEQ, &[1], &[9]),
        );
        d(
            super::bitwise(1, 1, &[255, 0], &[0, 0]),
            bitwise(1, 1, &[255, 0], &[0, 0]),
        );
        d(
            super::shift(1, 1, 2, NFT_BITWISE_RSHIFT, 4),
            shift(1, 1, 2, NFT_BITWISE_RSHIFT, 4),
        );
        d(super::byteorder(1, 2, 2), byteorder(1, 2, 2));
        for dreg in [None, Some(NFT_REG_VERDICT)] {
            d(
                super::lookup("__set0", 1, dreg, 1),
                lookup("__set0", 1, dreg, 1),
            );
        }
        d(
            super::immediate(2, &[10, 0, 0, 1]),
            immediate(2, &[10, 0, 0, 1]),
        );
        for v in [Verdict::Accept, Verdict::Drop, Verdict::Jump("c".into())] {
            d(super::verdict(&v), verdict(&v));
        }
        d(super::counter(3, 400), counter(3, 400));
    }
}
