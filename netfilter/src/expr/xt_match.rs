//! xtables compatibility `match`: an iptables match extension with its
//! binary `info` structure, as iptables-nft sends it.

use super::Bytes;
use crate::sys::*;

crate::attr_struct! {
    pub struct Match {
        name: String = NFTA_MATCH_NAME,
        rev: u32 = NFTA_MATCH_REV,
        info: Bytes = NFTA_MATCH_INFO,
    }
}
