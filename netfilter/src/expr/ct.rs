//! `ct`: conntrack state to a register (get), or a register into the
//! conntrack entry (set: mark, label, zone, ...).

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_ct_keys`.
    pub enum CtKey: u32 {
        State = NFT_CT_STATE,
        Direction = NFT_CT_DIRECTION,
        Status = NFT_CT_STATUS,
        Mark = NFT_CT_MARK,
        Secmark = NFT_CT_SECMARK,
        Expiration = NFT_CT_EXPIRATION,
        Helper = NFT_CT_HELPER,
        L3protocol = NFT_CT_L3PROTOCOL,
        Src = NFT_CT_SRC,
        Dst = NFT_CT_DST,
        Protocol = NFT_CT_PROTOCOL,
        ProtoSrc = NFT_CT_PROTO_SRC,
        ProtoDst = NFT_CT_PROTO_DST,
        Labels = NFT_CT_LABELS,
        Pkts = NFT_CT_PKTS,
        Bytes = NFT_CT_BYTES,
        Avgpkt = NFT_CT_AVGPKT,
        Zone = NFT_CT_ZONE,
        Eventmask = NFT_CT_EVENTMASK,
        SrcIp = NFT_CT_SRC_IP,
        DstIp = NFT_CT_DST_IP,
        SrcIp6 = NFT_CT_SRC_IP6,
        DstIp6 = NFT_CT_DST_IP6,
        Id = NFT_CT_ID,
    }
}

crate::attr_struct! {
    /// Get: `key` (of `direction`, 0 original / 1 reply) into `dreg`.
    /// Set: `sreg` into `key`.
    pub struct Ct {
        dreg: u32 = NFTA_CT_DREG,
        sreg: u32 = NFTA_CT_SREG,
        key: CtKey = NFTA_CT_KEY,
        direction: u8 = NFTA_CT_DIRECTION,
    }
}
