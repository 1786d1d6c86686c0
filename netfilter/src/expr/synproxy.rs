//! `synproxy`: answers SYNs with cookies (also the named object).

use crate::sys::*;

crate::attr_struct! {
    pub struct Synproxy {
        mss: u16 = NFTA_SYNPROXY_MSS,
        wscale: u8 = NFTA_SYNPROXY_WSCALE,
        flags: u32 = NFTA_SYNPROXY_FLAGS,
    }
}
