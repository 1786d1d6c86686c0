//! `xfrm`: IPsec state of the packet (`ipsec in/out ...`).

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_xfrm_keys`.
    pub enum XfrmKey: u32 {
        DaddrIp4 = NFT_XFRM_KEY_DADDR_IP4,
        DaddrIp6 = NFT_XFRM_KEY_DADDR_IP6,
        SaddrIp4 = NFT_XFRM_KEY_SADDR_IP4,
        SaddrIp6 = NFT_XFRM_KEY_SADDR_IP6,
        Reqid = NFT_XFRM_KEY_REQID,
        Spi = NFT_XFRM_KEY_SPI,
    }
}

crate::attr_struct! {
    /// `key` of security path entry `spnum`, direction `dir` (0 in, 1 out).
    pub struct Xfrm {
        dreg: u32 = NFTA_XFRM_DREG,
        key: XfrmKey = NFTA_XFRM_KEY,
        dir: u8 = NFTA_XFRM_DIR,
        spnum: u32 = NFTA_XFRM_SPNUM,
    }
}
