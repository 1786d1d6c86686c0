//! `inner`: runs a payload / meta expression on a tunnelled packet's
//! inner headers (vxlan, geneve, gre, ...; Linux 6.2+).

use super::Expr;
use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_inner_type`.
    pub enum InnerType: u32 {
        Vxlan = NFT_INNER_VXLAN,
        Geneve = NFT_INNER_GENEVE,
    }
}

crate::attr_struct! {
    /// Runs `expr` on the inner packet of tunnel `inner_type`, whose header
    /// is `hdrsize` bytes; `flags` = NFT_INNER_* (which headers to parse).
    pub struct Inner {
        num: u32 = NFTA_INNER_NUM,
        inner_type: InnerType = NFTA_INNER_TYPE,
        flags: u32 = NFTA_INNER_FLAGS,
        hdrsize: u32 = NFTA_INNER_HDRSIZE,
        expr: Box<Expr> = NFTA_INNER_EXPR,
    }
}
