//! `range`: matches a register against an inclusive range.

use super::Data;
use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_range_ops`.
    pub enum RangeOp: u32 {
        Eq = NFT_RANGE_EQ,
        Neq = NFT_RANGE_NEQ,
    }
}

crate::attr_struct! {
    /// Breaks the rule unless `from <= sreg <= to` (or not, for `Neq`).
    pub struct Range {
        sreg: u32 = NFTA_RANGE_SREG,
        op: RangeOp = NFTA_RANGE_OP,
        from: Data = NFTA_RANGE_FROM_DATA,
        to: Data = NFTA_RANGE_TO_DATA,
    }
}
