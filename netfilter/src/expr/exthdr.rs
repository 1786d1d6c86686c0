//! `exthdr`: IPv6 extension headers, TCP / IPv4 options, SCTP chunks and
//! DCCP options: load into a register, write from one, or strip.

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_exthdr_op`.
    pub enum ExthdrOp: u32 {
        Ipv6 = NFT_EXTHDR_OP_IPV6,
        TcpOpt = NFT_EXTHDR_OP_TCPOPT,
        Ipv4 = NFT_EXTHDR_OP_IPV4,
        Sctp = NFT_EXTHDR_OP_SCTP,
        Dccp = NFT_EXTHDR_OP_DCCP,
    }
}

crate::attr_struct! {
    /// Header / option `exthdr_type`, bytes `offset..offset+len`;
    /// `flags` bit 0 = presence check only.
    pub struct Exthdr {
        dreg: u32 = NFTA_EXTHDR_DREG,
        sreg: u32 = NFTA_EXTHDR_SREG,
        exthdr_type: u8 = NFTA_EXTHDR_TYPE,
        offset: u32 = NFTA_EXTHDR_OFFSET,
        len: u32 = NFTA_EXTHDR_LEN,
        flags: u32 = NFTA_EXTHDR_FLAGS,
        op: ExthdrOp = NFTA_EXTHDR_OP,
    }
}
