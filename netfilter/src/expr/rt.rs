//! `rt`: routing information of the packet's route (nexthop, MTU, ...).

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_rt_keys`.
    pub enum RtKey: u32 {
        Classid = NFT_RT_CLASSID,
        Nexthop4 = NFT_RT_NEXTHOP4,
        Nexthop6 = NFT_RT_NEXTHOP6,
        Tcpmss = NFT_RT_TCPMSS,
        Xfrm = NFT_RT_XFRM,
    }
}

crate::attr_struct! {
    pub struct Rt {
        key: RtKey = NFTA_RT_KEY,
        dreg: u32 = NFTA_RT_DREG,
    }
}
