//! `socket`: properties of the local socket the packet belongs to.

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_socket_keys`.
    pub enum SocketKey: u32 {
        Transparent = NFT_SOCKET_TRANSPARENT,
        Mark = NFT_SOCKET_MARK,
        Wildcard = NFT_SOCKET_WILDCARD,
        Cgroupv2 = NFT_SOCKET_CGROUPV2,
    }
}

crate::attr_struct! {
    /// `key` into `dreg`; `level` = cgroup v2 ancestor level.
    pub struct Socket {
        key: SocketKey = NFTA_SOCKET_KEY,
        dreg: u32 = NFTA_SOCKET_DREG,
        level: u32 = NFTA_SOCKET_LEVEL,
    }
}
