//! `payload`: loads packet bytes into a register, or writes a register
//! into the packet (with checksum fix-up).

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_payload_bases`.
    pub enum PayloadBase: u32 {
        LinkLayer = NFT_PAYLOAD_LL_HEADER,
        Network = NFT_PAYLOAD_NETWORK_HEADER,
        Transport = NFT_PAYLOAD_TRANSPORT_HEADER,
        Inner = NFT_PAYLOAD_INNER_HEADER,
        Tunnel = NFT_PAYLOAD_TUN_HEADER,
    }
}

crate::attr_struct! {
    /// Load: `dreg`, `base`, `offset`, `len`. Set: `sreg` plus checksum fields.
    pub struct Payload {
        dreg: u32 = NFTA_PAYLOAD_DREG,
        sreg: u32 = NFTA_PAYLOAD_SREG,
        base: PayloadBase = NFTA_PAYLOAD_BASE,
        offset: u32 = NFTA_PAYLOAD_OFFSET,
        len: u32 = NFTA_PAYLOAD_LEN,
        csum_type: u32 = NFTA_PAYLOAD_CSUM_TYPE,
        csum_offset: u32 = NFTA_PAYLOAD_CSUM_OFFSET,
        csum_flags: u32 = NFTA_PAYLOAD_CSUM_FLAGS,
    }
}
