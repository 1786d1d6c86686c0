//! `dup`: sends a copy of the packet to an address / device.

use crate::sys::*;

crate::attr_struct! {
    pub struct Dup {
        sreg_addr: u32 = NFTA_DUP_SREG_ADDR,
        sreg_dev: u32 = NFTA_DUP_SREG_DEV,
    }
}
