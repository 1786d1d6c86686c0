//! `cmp`: compares a register with a constant.

use super::Data;
use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_cmp_ops`.
    pub enum CmpOp: u32 {
        Eq = NFT_CMP_EQ,
        Neq = NFT_CMP_NEQ,
        Lt = NFT_CMP_LT,
        Lte = NFT_CMP_LTE,
        Gt = NFT_CMP_GT,
        Gte = NFT_CMP_GTE,
    }
}

crate::attr_struct! {
    /// Breaks the rule unless `sreg op data` holds.
    pub struct Cmp {
        sreg: u32 = NFTA_CMP_SREG,
        op: CmpOp = NFTA_CMP_OP,
        data: Data = NFTA_CMP_DATA,
    }
}
