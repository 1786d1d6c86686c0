//! What the decompiler knows about values: what each register holds
//! ([`Reg`]), how a set key splits into fields ([`KeyLayout`]), and the
//! texts of verdicts and raw loads.

use crate::expr::payload::PayloadBase;
use crate::expr::Verdict;
use crate::proto::datatype::Datatype;
use crate::proto::{exthdr, header, ByteOrder};
use crate::sys::*;

use super::value::{self, ValueType};

/// Protocol layers nft tracks dependencies for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layer {
    Link = 0,
    Network = 1,
    Transport = 2,
}

/// What a register holds.
#[derive(Clone, Debug)]
pub struct Reg {
    /// nft's text for the expression (`tcp dport`, `meta mark`).
    pub text: String,
    pub vt: ValueType,
    /// Bytes the value occupies in registers.
    pub len: u32,
    /// Sets protocol context at a layer when compared for equality.
    pub defines: Option<Layer>,
    /// A still unresolved packet load: (base, byte offset, byte length).
    pub raw: Option<(PayloadBase, u32, u32)>,
    /// Mask applied by a bitwise (value bytes).
    pub mask: Option<Vec<u8>>,
    /// Right shift to reach a sub-byte field's value.
    pub shift: u32,
    /// A constant (immediate) rather than a packet/meta value.
    pub constant: Option<Vec<u8>>,
    /// Concatenation members (for splitting set keys).
    pub parts: Vec<Reg>,
    /// Loaded only the first bytes of a field this long (a prefix match).
    pub prefix_of: Option<u32>,
    /// An exthdr load not matching a field exactly: (op, type, byte offset).
    pub exthdr: Option<(exthdr::ExthdrOp, u8, u32)>,
    /// Right shift applied to align a sub-byte field (nft 1.0.6 still
    /// shows it when the field is part of a concatenation).
    pub aligned: u32,
    /// Mask and xor a bitwise applied to a raw load (for payload writes).
    pub mangle: Option<(Vec<u8>, Vec<u8>)>,
    /// Binary operation text already folded into `text` (`ct mark & 0xff`).
    pub binop: bool,
}

impl Reg {
    pub fn new(text: impl Into<String>, dtype: &'static Datatype, bo: ByteOrder, len: u32) -> Self {
        Reg {
            text: text.into(),
            vt: ValueType {
                dtype,
                byteorder: bo,
                bits: if dtype.bits == 0 { len * 8 } else { dtype.bits },
            },
            len,
            defines: None,
            raw: None,
            mask: None,
            shift: 0,
            constant: None,
            parts: Vec::new(),
            exthdr: None,
            prefix_of: None,
            aligned: 0,
            mangle: None,
            binop: false,
        }
    }

    /// The key layout of this value as a set key (one entry per member).
    pub fn layout(&self) -> KeyLayout {
        if self.parts.is_empty() {
            KeyLayout(vec![(self.vt, self.len, self.shift)])
        } else {
            KeyLayout(self.parts.iter().map(|p| (p.vt, p.len, p.shift)).collect())
        }
    }
}

/// How a key splits into fields: (type, byte length, right shift) each,
/// every field padded to a multiple of 4 bytes in the key.
#[derive(Clone, Debug)]
pub struct KeyLayout(pub Vec<(ValueType, u32, u32)>);

impl KeyLayout {
    pub fn fields<'b>(&self, b: &'b [u8]) -> Vec<&'b [u8]> {
        if self.0.len() == 1 {
            return vec![b];
        }
        let mut out = Vec::with_capacity(self.0.len());
        let mut at = 0usize;
        for (_, len, _) in &self.0 {
            let end = (at + *len as usize).min(b.len());
            out.push(&b[at.min(b.len())..end]);
            at += len.next_multiple_of(4) as usize;
        }
        out
    }
}

/// Register number → index of its first 32-bit slot.
pub(super) fn slot(reg: u32) -> u32 {
    match reg {
        1..=4 => 8 + (reg - 1) * 4,
        r => r,
    }
}

pub(super) fn int_of(b: &[u8], bo: ByteOrder) -> u128 {
    value::to_uint(b, bo)
}

pub(super) fn layer_of(base: PayloadBase) -> Layer {
    match base {
        PayloadBase::LinkLayer => Layer::Link,
        PayloadBase::Network => Layer::Network,
        _ => Layer::Transport,
    }
}

/// `@nh,16,8`-style raw payload text (bit offset and length).
pub(super) fn raw_text(base: PayloadBase, boff: u32, blen: u32) -> String {
    let b = match base {
        PayloadBase::LinkLayer => "ll",
        PayloadBase::Network => "nh",
        PayloadBase::Transport => "th",
        PayloadBase::Inner => "ih",
        _ => "?",
    };
    format!("@{b},{boff},{blen}")
}

/// The contiguous run of set bits in `mask`: (first bit from the left, count).
pub(super) fn mask_bits(mask: &[u8]) -> Option<(u32, u32)> {
    let n = int_of(mask, ByteOrder::Big);
    if n == 0 {
        return None;
    }
    let total = mask.len() as u32 * 8;
    let lz = n.leading_zeros() - (128 - total);
    let ones = n.count_ones();
    let tz = n.trailing_zeros();
    (lz + ones + tz == total).then_some((lz, ones))
}

/// nft's text for a verdict.
pub fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Continue => "continue".into(),
        Verdict::Break => "break".into(),
        Verdict::Return => "return".into(),
        Verdict::Jump(c) => format!("jump {c}"),
        Verdict::Goto(c) => format!("goto {c}"),
        Verdict::Other(o) => match &o.chain {
            Some(c) => format!("verdict {} {c}", o.code),
            None if o.code as u32 & 0xffff == NF_QUEUE => "queue".into(),
            None => format!("verdict {}", o.code),
        },
    }
}

/// The exthdr table entry and field for a kernel exthdr load.
pub(super) fn exthdr_field(
    op: exthdr::ExthdrOp,
    ty: u8,
    off: u32,
    len: u32,
) -> Option<(&'static exthdr::Exthdr, &'static header::Field)> {
    exthdr::field_at(op, ty, off * 8, len * 8)
}
