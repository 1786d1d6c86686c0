//! `numgen`: incremental or random numbers.

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_ng_types`.
    pub enum NumgenType: u32 {
        Incremental = NFT_NG_INCREMENTAL,
        Random = NFT_NG_RANDOM,
    }
}

crate::attr_struct! {
    /// `(n % modulus) + offset` into `dreg`.
    pub struct Numgen {
        dreg: u32 = NFTA_NG_DREG,
        modulus: u32 = NFTA_NG_MODULUS,
        ng_type: NumgenType = NFTA_NG_TYPE,
        offset: u32 = NFTA_NG_OFFSET,
    }
}
