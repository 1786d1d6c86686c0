//! Tables (`NFT_MSG_NEWTABLE`).

use super::{message, put_unknown, put_userdata, required, userdata};
use crate::error::DecodeError;
use crate::model::Table;
use crate::netlink::{Msg, Writer};
use crate::sys::*;

/// Decodes a table as dumped (without its chains, sets, ...).
pub fn decode(msg: &Msg<'_>) -> Result<Table, DecodeError> {
    let (family, attrs) = message(msg, NFT_MSG_NEWTABLE, "table")?;
    let mut t = Table::new(family.into(), String::new());
    let mut name = None;
    for a in attrs {
        let a = a?;
        match a.kind() {
            NFTA_TABLE_NAME => name = Some(a.str()?),
            NFTA_TABLE_FLAGS => t.flags = a.u32_be()?,
            NFTA_TABLE_USE => t.use_count = Some(a.u32_be()?),
            NFTA_TABLE_HANDLE => t.handle = Some(a.u64_be()?),
            NFTA_TABLE_USERDATA => t.userdata = Some(userdata(&a)),
            NFTA_TABLE_OWNER => t.owner = Some(a.u32_be()?),
            NFTA_TABLE_PAD => {}
            _ => t.unknown.push(crate::expr::RawAttr::from_attr(&a)),
        }
    }
    t.name = required(name, "table", "NFTA_TABLE_NAME")?.to_owned();
    Ok(t)
}

/// Writes the attributes nft sends to create `t` (its contents not included).
pub fn encode(w: &mut Writer, t: &Table) {
    w.put_str(NFTA_TABLE_NAME, &t.name);
    w.put_u32_be(NFTA_TABLE_FLAGS, t.flags);
    put_userdata(w, NFTA_TABLE_USERDATA, &t.userdata);
    put_unknown(w, &t.unknown);
}
