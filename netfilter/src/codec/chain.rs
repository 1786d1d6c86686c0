//! Chains (`NFT_MSG_NEWCHAIN`).

use super::{hook, message, put, put_unknown, put_userdata, required, userdata, Decoded};
use crate::error::DecodeError;
use crate::expr::RawAttr;
use crate::model::Chain;
use crate::netlink::{Msg, Writer};
use crate::sys::*;

/// Decodes a chain as dumped (without its rules).
pub fn decode<'a>(msg: &Msg<'a>) -> Result<Decoded<'a, Chain>, DecodeError> {
    let (family, attrs) = message(msg, NFT_MSG_NEWCHAIN, "chain")?;
    let mut c = Chain::new(String::new());
    let (mut table, mut name) = (None, None);
    for a in attrs {
        let a = a?;
        match a.kind() {
            NFTA_CHAIN_TABLE => table = Some(a.str()?),
            NFTA_CHAIN_NAME => name = Some(a.str()?),
            NFTA_CHAIN_HANDLE => c.handle = Some(a.u64_be()?),
            NFTA_CHAIN_HOOK => c.hook = Some(hook::decode(&a, &hook::CHAIN)?),
            NFTA_CHAIN_POLICY => c.policy = Some(a.u32_be()?),
            NFTA_CHAIN_USE => c.use_count = Some(a.u32_be()?),
            NFTA_CHAIN_TYPE => c.chain_type = Some(a.str()?.to_owned()),
            NFTA_CHAIN_FLAGS => c.flags = Some(a.u32_be()?),
            NFTA_CHAIN_USERDATA => c.userdata = Some(userdata(&a)),
            NFTA_CHAIN_PAD => {}
            _ => c.unknown.push(RawAttr::from_attr(&a)),
        }
    }
    c.name = required(name, "chain", "NFTA_CHAIN_NAME")?.to_owned();
    Ok(Decoded {
        family: family.into(),
        table: required(table, "chain", "NFTA_CHAIN_TABLE")?,
        parent: None,
        value: c,
    })
}

/// Writes the attributes nft sends to create chain `c` of `table`.
pub fn encode(w: &mut Writer, table: &str, c: &Chain) {
    w.put_str(NFTA_CHAIN_TABLE, table);
    w.put_str(NFTA_CHAIN_NAME, &c.name);
    if let Some(h) = &c.hook {
        hook::encode(w, NFTA_CHAIN_HOOK, h, &hook::CHAIN);
    }
    put(w, NFTA_CHAIN_POLICY, &c.policy);
    put(w, NFTA_CHAIN_TYPE, &c.chain_type);
    put(w, NFTA_CHAIN_FLAGS, &c.flags);
    put_userdata(w, NFTA_CHAIN_USERDATA, &c.userdata);
    put_unknown(w, &c.unknown);
}

/// Writes what nft sends to create chain `c` bound to a rule of the same
/// batch (`jump { … }`): no name (the kernel numbers it `__chain%d`), the
/// batch-local id the rules in it and the rule binding it refer to.
pub fn encode_bound(w: &mut Writer, table: &str, c: &Chain, id: u32) {
    w.put_str(NFTA_CHAIN_TABLE, table);
    w.put_u32_be(NFTA_CHAIN_ID, id);
    put(w, NFTA_CHAIN_FLAGS, &c.flags);
    put_userdata(w, NFTA_CHAIN_USERDATA, &c.userdata);
    put_unknown(w, &c.unknown);
}
