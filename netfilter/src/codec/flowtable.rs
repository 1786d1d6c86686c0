//! Flowtables (`NFT_MSG_NEWFLOWTABLE`).

use super::{hook, message, put, put_unknown, required, Decoded};
use crate::error::DecodeError;
use crate::expr::RawAttr;
use crate::model::Flowtable;
use crate::netlink::{Msg, Writer};
use crate::sys::*;

/// Decodes a flowtable as dumped.
pub fn decode<'a>(msg: &Msg<'a>) -> Result<Decoded<'a, Flowtable>, DecodeError> {
    let (family, attrs) = message(msg, NFT_MSG_NEWFLOWTABLE, "flowtable")?;
    let mut f = Flowtable {
        name: String::new(),
        hook: None,
        flags: None,
        handle: None,
        use_count: None,
        unknown: Vec::new(),
    };
    let (mut table, mut name) = (None, None);
    for a in attrs {
        let a = a?;
        match a.kind() {
            NFTA_FLOWTABLE_TABLE => table = Some(a.str()?),
            NFTA_FLOWTABLE_NAME => name = Some(a.str()?),
            NFTA_FLOWTABLE_HOOK => f.hook = Some(hook::decode(&a, &hook::FLOWTABLE)?),
            NFTA_FLOWTABLE_USE => f.use_count = Some(a.u32_be()?),
            NFTA_FLOWTABLE_HANDLE => f.handle = Some(a.u64_be()?),
            NFTA_FLOWTABLE_FLAGS => f.flags = Some(a.u32_be()?),
            NFTA_FLOWTABLE_PAD => {}
            _ => f.unknown.push(RawAttr::from_attr(&a)),
        }
    }
    f.name = required(name, "flowtable", "NFTA_FLOWTABLE_NAME")?.to_owned();
    Ok(Decoded {
        family: family.into(),
        table: required(table, "flowtable", "NFTA_FLOWTABLE_TABLE")?,
        parent: None,
        value: f,
    })
}

/// Writes the attributes nft sends to create flowtable `f` in `table`.
pub fn encode(w: &mut Writer, table: &str, f: &Flowtable) {
    w.put_str(NFTA_FLOWTABLE_TABLE, table);
    w.put_str(NFTA_FLOWTABLE_NAME, &f.name);
    if let Some(h) = &f.hook {
        hook::encode(w, NFTA_FLOWTABLE_HOOK, h, &hook::FLOWTABLE);
    }
    put(w, NFTA_FLOWTABLE_FLAGS, &f.flags);
    put_unknown(w, &f.unknown);
}
