//! `osf`: passive OS fingerprinting of TCP SYNs.

use crate::sys::*;

crate::attr_struct! {
    /// OS name (or name and version with `flags` = NFT_OSF_F_VERSION) into `dreg`.
    pub struct Osf {
        ttl: u8 = NFTA_OSF_TTL,
        flags: u32 = NFTA_OSF_FLAGS,
        dreg: u32 = NFTA_OSF_DREG,
    }
}
