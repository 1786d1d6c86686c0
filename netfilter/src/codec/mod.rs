//! Model values <-> nf_tables netlink messages (tables, chains, rules,
//! sets, elements, objects, flowtables).
//!
//! Each module decodes the kernel's `NFT_MSG_NEW*` message, as a dump
//! returns it, into its model value, and encodes a value into the
//! attributes of the message nft would send to create it. Attributes not
//! known here are kept in the value's `unknown` and sent back unchanged;
//! kernel-only facts (handles, use counts, the owner's port id, a rule's
//! position) are decoded but never sent.

pub mod chain;
pub mod element;
pub mod flowtable;
mod hook;
pub mod object;
mod quirks;
pub mod rule;
pub mod set;
pub(crate) mod setref;
pub mod table;

#[cfg(test)]
mod tests;

use crate::error::DecodeError;
use crate::expr::{AttrValue, Bytes, RawAttr};
use crate::model::{Family, Userdata};
use crate::netlink::{Attr, Attrs, Msg, Writer};

/// A decoded object with the names that place it in the ruleset: its
/// table and, for rules and elements, its chain or set. Names borrow from
/// the received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded<'a, T> {
    pub family: Family,
    pub table: &'a str,
    /// The chain (rules) or set (elements) the value belongs to.
    pub parent: Option<&'a str>,
    pub value: T,
}

/// The family and attributes of an nf_tables message of the expected kind.
fn message<'a>(
    msg: &Msg<'a>,
    want: u32,
    context: &'static str,
) -> Result<(u8, Attrs<'a>), DecodeError> {
    if msg.nft_msg() != Some(want) {
        return Err(DecodeError::UnexpectedMessage {
            ty: msg.ty,
            context,
        });
    }
    msg.nfgen()
}

fn required<'a>(
    v: Option<&'a str>,
    object: &'static str,
    attr: &'static str,
) -> Result<&'a str, DecodeError> {
    v.ok_or(DecodeError::Missing { object, attr })
}

fn userdata(a: &Attr<'_>) -> Userdata {
    Userdata(Bytes::from(a.payload()))
}

/// Writes an optional typed field.
#[inline]
fn put<T: AttrValue>(w: &mut Writer, ty: u16, v: &Option<T>) {
    if let Some(v) = v {
        v.encode(ty, w);
    }
}

fn put_userdata(w: &mut Writer, ty: u16, u: &Option<Userdata>) {
    if let Some(u) = u {
        w.put(ty, u.0.as_slice());
    }
}

fn put_unknown(w: &mut Writer, unknown: &[RawAttr]) {
    for r in unknown {
        r.encode(w);
    }
}
