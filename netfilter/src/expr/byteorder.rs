//! `byteorder`: converts a register between host and network byte order.

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_byteorder_ops`.
    pub enum ByteorderOp: u32 {
        Ntoh = NFT_BYTEORDER_NTOH,
        Hton = NFT_BYTEORDER_HTON,
    }
}

crate::attr_struct! {
    /// Converts `len` bytes of `sreg`, in units of `size` bytes, into `dreg`.
    pub struct Byteorder {
        sreg: u32 = NFTA_BYTEORDER_SREG,
        dreg: u32 = NFTA_BYTEORDER_DREG,
        op: ByteorderOp = NFTA_BYTEORDER_OP,
        len: u32 = NFTA_BYTEORDER_LEN,
        size: u32 = NFTA_BYTEORDER_SIZE,
    }
}
