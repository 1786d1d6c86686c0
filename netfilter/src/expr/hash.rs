//! `hash`: jenkins hash of a register, or symmetric hash of the flow.

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_hash_types`.
    pub enum HashType: u32 {
        Jenkins = NFT_HASH_JENKINS,
        Sym = NFT_HASH_SYM,
    }
}

crate::attr_struct! {
    /// `(hash(sreg[..len], seed) % modulus) + offset` into `dreg`.
    pub struct Hash {
        sreg: u32 = NFTA_HASH_SREG,
        dreg: u32 = NFTA_HASH_DREG,
        len: u32 = NFTA_HASH_LEN,
        modulus: u32 = NFTA_HASH_MODULUS,
        seed: u32 = NFTA_HASH_SEED,
        offset: u32 = NFTA_HASH_OFFSET,
        hash_type: HashType = NFTA_HASH_TYPE,
    }
}
