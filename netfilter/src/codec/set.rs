//! Sets and maps (`NFT_MSG_NEWSET`), named or anonymous.

use super::quirks;
use super::{message, put, put_unknown, put_userdata, required, userdata, Decoded};
use crate::error::DecodeError;
use crate::expr::{decode_list, Expr, RawAttr};
use crate::model::{Set, SetDesc};
use crate::netlink::{Attr, Msg, Writer};
use crate::sys::*;

/// Decodes a set as dumped (without its elements).
pub fn decode<'a>(msg: &Msg<'a>) -> Result<Decoded<'a, Set>, DecodeError> {
    let (family, attrs) = message(msg, NFT_MSG_NEWSET, "set")?;
    let mut s = Set::new(String::new(), 0, 0);
    let (mut table, mut name) = (None, None);
    for a in attrs {
        let a = a?;
        match a.kind() {
            NFTA_SET_TABLE => table = Some(a.str()?),
            NFTA_SET_NAME => name = Some(a.str()?),
            NFTA_SET_HANDLE => s.handle = Some(a.u64_be()?),
            NFTA_SET_FLAGS => s.flags = a.u32_be()?,
            NFTA_SET_KEY_TYPE => s.key_type = a.u32_be()?,
            NFTA_SET_KEY_LEN => s.key_len = a.u32_be()?,
            NFTA_SET_DATA_TYPE => s.data_type = Some(a.u32_be()?),
            NFTA_SET_DATA_LEN => s.data_len = Some(a.u32_be()?),
            NFTA_SET_OBJ_TYPE => s.obj_type = Some(a.u32_be()?),
            NFTA_SET_POLICY => s.policy = Some(a.u32_be()?),
            NFTA_SET_DESC => s.desc = Some(decode_desc(&a)?),
            NFTA_SET_TIMEOUT => s.timeout = Some(a.u64_be()?),
            NFTA_SET_GC_INTERVAL => s.gc_interval = Some(a.u32_be()?),
            NFTA_SET_USERDATA => s.userdata = Some(userdata(&a)),
            NFTA_SET_EXPR => s.exprs = vec![Expr::decode_body(a.nested())?],
            NFTA_SET_EXPRESSIONS => s.exprs = decode_list(a.nested())?,
            // The backend (a kernel-internal identity) and the element count
            // (the value holds the elements) are the kernel's; not kept.
            NFTA_SET_TYPE | NFTA_SET_COUNT | NFTA_SET_PAD => {}
            _ => s.unknown.push(RawAttr::from_attr(&a)),
        }
    }
    s.name = required(name, "set", "NFTA_SET_NAME")?.to_owned();
    Ok(Decoded {
        family: family.into(),
        table: required(table, "set", "NFTA_SET_TABLE")?,
        parent: None,
        value: s,
    })
}

fn decode_desc(a: &Attr<'_>) -> Result<SetDesc, DecodeError> {
    let mut d = SetDesc::default();
    for a in a.nested() {
        let a = a?;
        match a.kind() {
            NFTA_SET_DESC_SIZE => d.size = Some(a.u32_be()?),
            NFTA_SET_DESC_CONCAT => {
                for field in a.nested() {
                    let mut len = None;
                    for f in field?.nested() {
                        let f = f?;
                        if f.kind() == NFTA_SET_FIELD_LEN {
                            len = Some(f.u32_be()?);
                        }
                    }
                    d.concat.push(len.ok_or(DecodeError::Missing {
                        object: "set concatenation field",
                        attr: "NFTA_SET_FIELD_LEN",
                    })?);
                }
            }
            _ => d.unknown.push(RawAttr::from_attr(&a)),
        }
    }
    Ok(d)
}

/// Writes the attributes nft sends to create set `s` in `table`. `id`
/// names the set within its transaction (`NFTA_SET_ID`), which is how a
/// rule in the same batch refers to an anonymous set; `name` overrides
/// the set's name (an anonymous set is sent as `__set%d`, the kernel
/// picks the number).
pub fn encode(w: &mut Writer, table: &str, s: &Set, name: Option<&str>, id: Option<u32>) {
    w.put_str(NFTA_SET_TABLE, table);
    w.put_str(NFTA_SET_NAME, name.unwrap_or(&s.name));
    w.put_u32_be(NFTA_SET_FLAGS, s.flags);
    w.put_u32_be(NFTA_SET_KEY_TYPE, s.key_type);
    w.put_u32_be(NFTA_SET_KEY_LEN, s.key_len);
    put(w, NFTA_SET_DATA_TYPE, &s.data_type);
    put(w, NFTA_SET_DATA_LEN, &s.data_len);
    put(w, NFTA_SET_OBJ_TYPE, &s.obj_type);
    put(w, NFTA_SET_TIMEOUT, &s.timeout);
    put(w, NFTA_SET_GC_INTERVAL, &s.gc_interval);
    put(w, NFTA_SET_POLICY, &s.policy);
    put_userdata(w, NFTA_SET_USERDATA, &s.userdata);
    // The kernel dumps an empty DESC for every set but refuses one on input.
    if let Some(d) = s.desc.as_ref().filter(|d| **d != SetDesc::default()) {
        w.nest(NFTA_SET_DESC, |w| {
            put(w, NFTA_SET_DESC_SIZE, &d.size);
            if !d.concat.is_empty() {
                w.nest(NFTA_SET_DESC_CONCAT, |w| {
                    for len in &d.concat {
                        w.nest(NFTA_LIST_ELEM, |w| w.put_u32_be(NFTA_SET_FIELD_LEN, *len));
                    }
                });
            }
            put_unknown(w, &d.unknown);
        });
    }
    // The kernel dumps a single expression as EXPR, several as EXPRESSIONS.
    match s.exprs.as_slice() {
        [] => {}
        [one] => w.nest(NFTA_SET_EXPR, |w| quirks::sendable(one).encode_body(w)),
        many => w.nest(NFTA_SET_EXPRESSIONS, |w| quirks::encode_list(many, w)),
    }
    if let Some(id) = id {
        w.put_u32_be(NFTA_SET_ID, id);
    }
    put_unknown(w, &s.unknown);
}
