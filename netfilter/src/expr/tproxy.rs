//! `tproxy`: transparent proxying to a local socket.

use crate::sys::*;

crate::attr_struct! {
    /// `family` NFPROTO_*; address and port taken from registers.
    pub struct Tproxy {
        family: u32 = NFTA_TPROXY_FAMILY,
        reg_addr: u32 = NFTA_TPROXY_REG_ADDR,
        reg_port: u32 = NFTA_TPROXY_REG_PORT,
    }
}
