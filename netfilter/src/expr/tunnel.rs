//! `tunnel`: metadata of the tunnel the packet came through.

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_tunnel_keys`.
    pub enum TunnelKey: u32 {
        Path = NFT_TUNNEL_PATH,
        Id = NFT_TUNNEL_ID,
    }
}

crate::attr_struct! {
    /// `key` into `dreg`; `mode` NFT_TUNNEL_MODE_*.
    pub struct Tunnel {
        key: TunnelKey = NFTA_TUNNEL_KEY,
        dreg: u32 = NFTA_TUNNEL_DREG,
        mode: u32 = NFTA_TUNNEL_MODE,
    }
}
