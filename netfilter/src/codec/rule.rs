//! Rules (`NFT_MSG_NEWRULE`).

use super::quirks;
use super::{message, put_unknown, put_userdata, required, userdata, Decoded};
use crate::error::DecodeError;
use crate::expr::{decode_list, RawAttr};
use crate::model::Rule;
use crate::netlink::{Msg, Writer};
use crate::sys::*;

/// Decodes a rule as dumped; its parent is the chain's name. The rule's
/// position (the previous rule's handle) follows from its place in the
/// chain and is not kept.
pub fn decode<'a>(msg: &Msg<'a>) -> Result<Decoded<'a, Rule>, DecodeError> {
    let (family, attrs) = message(msg, NFT_MSG_NEWRULE, "rule")?;
    let mut r = Rule::new(Vec::new());
    let (mut table, mut chain) = (None, None);
    for a in attrs {
        let a = a?;
        match a.kind() {
            NFTA_RULE_TABLE => table = Some(a.str()?),
            NFTA_RULE_CHAIN => chain = Some(a.str()?),
            NFTA_RULE_HANDLE => r.handle = Some(a.u64_be()?),
            NFTA_RULE_EXPRESSIONS => r.exprs = decode_list(a.nested())?.into(),
            NFTA_RULE_USERDATA => r.userdata = Some(userdata(&a)),
            NFTA_RULE_POSITION | NFTA_RULE_PAD => {}
            _ => r.unknown.push(RawAttr::from_attr(&a)),
        }
    }
    Ok(Decoded {
        family: family.into(),
        table: required(table, "rule", "NFTA_RULE_TABLE")?,
        parent: Some(required(chain, "rule", "NFTA_RULE_CHAIN")?),
        value: r,
    })
}

/// Writes the attributes nft sends to append rule `r` to `table` `chain`.
/// The rule's anonymous sets are not included (see `codec::set`).
pub fn encode(w: &mut Writer, table: &str, chain: &str, r: &Rule) {
    encode_in(w, table, ChainRef::Name(chain), r);
}

/// The chain a rule goes into: by name, or by the batch-local id of a chain
/// created unnamed in the same batch (a bound chain, see
/// [`super::chain::encode_bound`]).
#[derive(Clone, Copy, Debug)]
pub enum ChainRef<'a> {
    Name(&'a str),
    Id(u32),
}

/// [`encode`] into a chain named or created in the same batch.
pub fn encode_in(w: &mut Writer, table: &str, chain: ChainRef<'_>, r: &Rule) {
    w.put_str(NFTA_RULE_TABLE, table);
    match chain {
        ChainRef::Name(name) => w.put_str(NFTA_RULE_CHAIN, name),
        ChainRef::Id(id) => w.put_u32_be(NFTA_RULE_CHAIN_ID, id),
    }
    w.nest(NFTA_RULE_EXPRESSIONS, |w| quirks::encode_list(&r.exprs, w));
    put_userdata(w, NFTA_RULE_USERDATA, &r.userdata);
    put_unknown(w, &r.unknown);
}
