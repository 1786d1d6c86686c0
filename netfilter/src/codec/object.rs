//! Named stateful objects (`NFT_MSG_NEWOBJ`).

use super::quirks;
use super::{message, put_unknown, put_userdata, required, userdata, Decoded};
use crate::error::DecodeError;
use crate::expr::{Bytes, RawAttr};
use crate::model::{Object, ObjectData};
use crate::netlink::attr::NLA_F_NESTED;
use crate::netlink::{Msg, Writer};
use crate::sys::*;

/// Decodes an object as dumped.
pub fn decode<'a>(msg: &Msg<'a>) -> Result<Decoded<'a, Object>, DecodeError> {
    let (family, attrs) = message(msg, NFT_MSG_NEWOBJ, "object")?;
    let mut o = Object {
        name: String::new(),
        obj_type: 0,
        data: ObjectData::Raw(Vec::new()),
        userdata: None,
        handle: None,
        use_count: None,
        unknown: Vec::new(),
    };
    let (mut table, mut name, mut data) = (None, None, None);
    for a in attrs {
        let a = a?;
        match a.kind() {
            NFTA_OBJ_TABLE => table = Some(a.str()?),
            NFTA_OBJ_NAME => name = Some(a.str()?),
            NFTA_OBJ_TYPE => o.obj_type = a.u32_be()?,
            NFTA_OBJ_DATA => data = Some(a),
            NFTA_OBJ_USE => o.use_count = Some(a.u32_be()?),
            NFTA_OBJ_HANDLE => o.handle = Some(a.u64_be()?),
            NFTA_OBJ_USERDATA => o.userdata = Some(userdata(&a)),
            NFTA_OBJ_PAD => {}
            _ => o.unknown.push(RawAttr::from_attr(&a)),
        }
    }
    if let Some(d) = data {
        // A body that does not parse as attributes is kept as bytes rather
        // than failing the whole pull.
        o.data = ObjectData::decode(o.obj_type, d.nested())
            .unwrap_or_else(|_| ObjectData::Bytes(Bytes::from(d.payload())));
    }
    o.name = required(name, "object", "NFTA_OBJ_NAME")?.to_owned();
    Ok(Decoded {
        family: family.into(),
        table: required(table, "object", "NFTA_OBJ_TABLE")?,
        parent: None,
        value: o,
    })
}

/// Writes the attributes nft sends to create object `o` in `table`.
pub fn encode(w: &mut Writer, table: &str, o: &Object) {
    w.put_str(NFTA_OBJ_TABLE, table);
    w.put_str(NFTA_OBJ_NAME, &o.name);
    w.put_u32_be(NFTA_OBJ_TYPE, o.obj_type);
    let fixed = match &o.data {
        ObjectData::Quota(q) => quirks::quota(q).map(ObjectData::Quota),
        _ => None,
    };
    match fixed.as_ref().unwrap_or(&o.data) {
        ObjectData::Bytes(b) => w.put(NFTA_OBJ_DATA, b.as_slice()),
        d => w.nest(NFTA_OBJ_DATA | NLA_F_NESTED, |w| d.encode_attrs(w)),
    }
    put_userdata(w, NFTA_OBJ_USERDATA, &o.userdata);
    put_unknown(w, &o.unknown);
}
