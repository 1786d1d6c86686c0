//! `limit`: token-bucket rate limit (also the named limit object).

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_limit_type`.
    pub enum LimitType: u32 {
        Packets = NFT_LIMIT_PKTS,
        Bytes = NFT_LIMIT_PKT_BYTES,
    }
}

crate::attr_struct! {
    /// `rate` per `unit` seconds, with `burst`; `flags` bit 0 = `over`.
    pub struct Limit {
        rate: u64 = NFTA_LIMIT_RATE,
        unit: u64 = NFTA_LIMIT_UNIT,
        burst: u32 = NFTA_LIMIT_BURST,
        limit_type: LimitType = NFTA_LIMIT_TYPE,
        flags: u32 = NFTA_LIMIT_FLAGS,
    }
}
