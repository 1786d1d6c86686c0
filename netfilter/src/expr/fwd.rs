//! `fwd`: forwards the packet out of a device (netdev family).

use crate::sys::*;

crate::attr_struct! {
    /// Device index in `sreg_dev`; optional next hop in `sreg_addr`.
    pub struct Fwd {
        sreg_dev: u32 = NFTA_FWD_SREG_DEV,
        sreg_addr: u32 = NFTA_FWD_SREG_ADDR,
        nfproto: u32 = NFTA_FWD_NFPROTO,
    }
}
