//! `meta`: packet metadata (length, marks, interfaces, ...) to or from a
//! register.

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_meta_keys`.
    pub enum MetaKey: u32 {
        Len = NFT_META_LEN,
        Protocol = NFT_META_PROTOCOL,
        Priority = NFT_META_PRIORITY,
        Mark = NFT_META_MARK,
        Iif = NFT_META_IIF,
        Oif = NFT_META_OIF,
        Iifname = NFT_META_IIFNAME,
        Oifname = NFT_META_OIFNAME,
        Iiftype = NFT_META_IIFTYPE,
        Oiftype = NFT_META_OIFTYPE,
        Skuid = NFT_META_SKUID,
        Skgid = NFT_META_SKGID,
        Nftrace = NFT_META_NFTRACE,
        Rtclassid = NFT_META_RTCLASSID,
        Secmark = NFT_META_SECMARK,
        Nfproto = NFT_META_NFPROTO,
        L4proto = NFT_META_L4PROTO,
        BriIifname = NFT_META_BRI_IIFNAME,
        BriOifname = NFT_META_BRI_OIFNAME,
        Pkttype = NFT_META_PKTTYPE,
        Cpu = NFT_META_CPU,
        Iifgroup = NFT_META_IIFGROUP,
        Oifgroup = NFT_META_OIFGROUP,
        Cgroup = NFT_META_CGROUP,
        Prandom = NFT_META_PRANDOM,
        Secpath = NFT_META_SECPATH,
        Iifkind = NFT_META_IIFKIND,
        Oifkind = NFT_META_OIFKIND,
        BriIifpvid = NFT_META_BRI_IIFPVID,
        BriIifvproto = NFT_META_BRI_IIFVPROTO,
        TimeNs = NFT_META_TIME_NS,
        TimeDay = NFT_META_TIME_DAY,
        TimeHour = NFT_META_TIME_HOUR,
        Sdif = NFT_META_SDIF,
        Sdifname = NFT_META_SDIFNAME,
        BriBroute = NFT_META_BRI_BROUTE,
    }
}

crate::attr_struct! {
    /// Get: `key` into `dreg`. Set: `sreg` into `key`.
    pub struct Meta {
        key: MetaKey = NFTA_META_KEY,
        dreg: u32 = NFTA_META_DREG,
        sreg: u32 = NFTA_META_SREG,
    }
}
