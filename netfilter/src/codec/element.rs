//! Set and map elements (`NFT_MSG_NEWSETELEM`): a message names its set
//! and carries a list of elements.

use super::quirks;
use super::{message, put, put_unknown, put_userdata, required, userdata, Decoded};
use crate::error::DecodeError;
use crate::expr::{decode_list, AttrValue, Bytes, Data, Expr, RawAttr};
use crate::model::Element;
use crate::netlink::{Attr, Batch, Msg, Writer};
use crate::sys::*;

/// Elements are written into a message until its element list passes this
/// size; attribute lengths are 16-bit, so a list must stay under 64 KiB
/// and one element is far smaller than the headroom left.
const CHUNK: usize = 32 * 1024;

/// Decodes one `NEWSETELEM` message of a dump: its set is the parent.
pub fn decode<'a>(msg: &Msg<'a>) -> Result<Decoded<'a, Vec<Element>>, DecodeError> {
    let mut out = Vec::new();
    let d = decode_into(msg, &mut out)?;
    Ok(Decoded {
        family: d.family,
        table: d.table,
        parent: d.parent,
        value: out,
    })
}

/// Like [`decode`], appending to `out` (a set's elements span many messages).
pub fn decode_into<'a>(
    msg: &Msg<'a>,
    out: &mut Vec<Element>,
) -> Result<Decoded<'a, ()>, DecodeError> {
    let (family, attrs) = message(msg, NFT_MSG_NEWSETELEM, "set elements")?;
    let (mut table, mut set) = (None, None);
    for a in attrs {
        let a = a?;
        match a.kind() {
            NFTA_SET_ELEM_LIST_TABLE => table = Some(a.str()?),
            NFTA_SET_ELEM_LIST_SET => set = Some(a.str()?),
            NFTA_SET_ELEM_LIST_ELEMENTS => {
                for e in a.nested() {
                    out.push(decode_element(&e?)?);
                }
            }
            _ => {}
        }
    }
    Ok(Decoded {
        family: family.into(),
        table: required(table, "set elements", "NFTA_SET_ELEM_LIST_TABLE")?,
        parent: Some(required(set, "set elements", "NFTA_SET_ELEM_LIST_SET")?),
        value: (),
    })
}

/// A key nest holding a plain value, or `None` when it holds anything else.
fn key(a: &Attr<'_>) -> Result<Option<Bytes>, DecodeError> {
    Ok(match Data::decode(a)? {
        Data::Value(b) => Some(b),
        _ => None,
    })
}

fn decode_element(a: &Attr<'_>) -> Result<Element, DecodeError> {
    let mut e = Element::default();
    for a in a.nested() {
        let a = a?;
        match a.kind() {
            NFTA_SET_ELEM_KEY | NFTA_SET_ELEM_KEY_END => match key(&a)? {
                Some(k) if a.kind() == NFTA_SET_ELEM_KEY => e.key = Some(k),
                Some(k) => e.key_end = Some(k),
                None => e.unknown.push(RawAttr::from_attr(&a)),
            },
            NFTA_SET_ELEM_DATA => e.data = Some(Data::decode(&a)?),
            NFTA_SET_ELEM_OBJREF => e.objref = Some(a.str()?.to_owned()),
            NFTA_SET_ELEM_FLAGS => e.flags = Some(a.u32_be()?),
            NFTA_SET_ELEM_TIMEOUT => e.timeout = Some(a.u64_be()?),
            NFTA_SET_ELEM_EXPIRATION => e.expiration = Some(a.u64_be()?),
            NFTA_SET_ELEM_USERDATA => e.userdata = Some(userdata(&a)),
            NFTA_SET_ELEM_EXPR => e.exprs = vec![Expr::decode_body(a.nested())?],
            NFTA_SET_ELEM_EXPRESSIONS => e.exprs = decode_list(a.nested())?,
            NFTA_SET_ELEM_PAD => {}
            _ => e.unknown.push(RawAttr::from_attr(&a)),
        }
    }
    Ok(e)
}

/// Writes one element (its `NFTA_LIST_ELEM` nest). The remaining time to
/// expiry is the kernel's and is not sent.
pub fn encode_element(w: &mut Writer, e: &Element) {
    w.nest(NFTA_LIST_ELEM, |w| {
        if let Some(k) = &e.key {
            w.nest(NFTA_SET_ELEM_KEY, |w| w.put(NFTA_DATA_VALUE, k.as_slice()));
        }
        if let Some(k) = &e.key_end {
            w.nest(NFTA_SET_ELEM_KEY_END, |w| {
                w.put(NFTA_DATA_VALUE, k.as_slice())
            });
        }
        put(w, NFTA_SET_ELEM_DATA, &e.data);
        put(w, NFTA_SET_ELEM_OBJREF, &e.objref);
        put(w, NFTA_SET_ELEM_FLAGS, &e.flags);
        put(w, NFTA_SET_ELEM_TIMEOUT, &e.timeout);
        put_userdata(w, NFTA_SET_ELEM_USERDATA, &e.userdata);
        match e.exprs.as_slice() {
            [] => {}
            [one] => w.nest(NFTA_SET_ELEM_EXPR, |w| quirks::sendable(one).encode_body(w)),
            many => w.nest(NFTA_SET_ELEM_EXPRESSIONS, |w| quirks::encode_list(many, w)),
        }
        put_unknown(w, &e.unknown);
    });
}

/// Where elements go: a set by name, or (created in the same batch) by id.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub family: u8,
    pub table: &'a str,
    pub set: &'a str,
    pub set_id: Option<u32>,
}

/// Appends `NEWSETELEM` messages adding `elems` to `to`, as many as the
/// 64 KiB attribute limit needs; returns how many were added.
pub fn add_to_batch(batch: &mut Batch, flags: u16, to: Target<'_>, elems: &[Element]) -> usize {
    to_batch(batch, NFT_MSG_NEWSETELEM, flags, to, elems)
}

/// Appends `msg` (`NEWSETELEM` or `DELSETELEM`) messages for `elems`.
pub fn to_batch(
    batch: &mut Batch,
    msg: u32,
    flags: u16,
    to: Target<'_>,
    elems: &[Element],
) -> usize {
    let mut next = 0;
    let mut messages = 0;
    while next < elems.len() {
        batch.add(msg, flags, to.family, |w| {
            w.put_str(NFTA_SET_ELEM_LIST_TABLE, to.table);
            w.put_str(NFTA_SET_ELEM_LIST_SET, to.set);
            if let Some(id) = to.set_id {
                w.put_u32_be(NFTA_SET_ELEM_LIST_SET_ID, id);
            }
            let start = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            while next < elems.len() && w.len() - start < CHUNK {
                encode_element(w, &elems[next]);
                next += 1;
            }
            w.end_nest(start);
        });
        messages += 1;
    }
    messages
}
