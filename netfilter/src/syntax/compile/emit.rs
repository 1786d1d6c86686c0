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
