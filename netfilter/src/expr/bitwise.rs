//! `bitwise`: mask-and-xor, shifts, and register-to-register boolean ops.

use super::Data;
use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_bitwise_ops`.
    pub enum BitwiseOp: u32 {
        Bool = NFT_BITWISE_BOOL,
        Lshift = NFT_BITWISE_LSHIFT,
        Rshift = NFT_BITWISE_RSHIFT,
        And = NFT_BITWISE_AND,
        Or = NFT_BITWISE_OR,
        Xor = NFT_BITWISE_XOR,
    }
}

crate::attr_struct! {
    /// `dreg = (sreg & mask) ^ xor`, or a shift of `sreg` by `data`.
    pub struct Bitwise {
        sreg: u32 = NFTA_BITWISE_SREG,
        dreg: u32 = NFTA_BITWISE_DREG,
        len: u32 = NFTA_BITWISE_LEN,
        op: BitwiseOp = NFTA_BITWISE_OP,
        mask: Data = NFTA_BITWISE_MASK,
        xor: Data = NFTA_BITWISE_XOR,
        data: Data = NFTA_BITWISE_DATA,
        /// Second source register of `and` / `or` / `xor` (Linux 6.13+).
        sreg2: u32 = NFTA_BITWISE_SREG2,
    }
}
