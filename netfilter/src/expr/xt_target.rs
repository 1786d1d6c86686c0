//! xtables compatibility `target`: an iptables target extension with its
//! binary `info` structure, as iptables-nft sends it.

use super::Bytes;
use crate::sys::*;

crate::attr_struct! {
    pub struct Target {
        name: String = NFTA_TARGET_NAME,
        rev: u32 = NFTA_TARGET_REV,
        info: Bytes = NFTA_TARGET_INFO,
    }
}
