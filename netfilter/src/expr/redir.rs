//! `redir`: destination NAT to the local machine.

use crate::sys::*;

crate::attr_struct! {
    pub struct Redir {
        reg_proto_min: u32 = NFTA_REDIR_REG_PROTO_MIN,
        reg_proto_max: u32 = NFTA_REDIR_REG_PROTO_MAX,
        flags: u32 = NFTA_REDIR_FLAGS,
    }
}
