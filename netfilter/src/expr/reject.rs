//! `reject`: drops the packet and answers with an ICMP error or TCP reset.

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_reject_types`.
    pub enum RejectType: u32 {
        IcmpUnreach = NFT_REJECT_ICMP_UNREACH,
        TcpRst = NFT_REJECT_TCP_RST,
        IcmpxUnreach = NFT_REJECT_ICMPX_UNREACH,
    }
}

crate::attr_struct! {
    pub struct Reject {
        reject_type: RejectType = NFTA_REJECT_TYPE,
        icmp_code: u8 = NFTA_REJECT_ICMP_CODE,
    }
}
