//! `masq`: source NAT to the outgoing interface's address.

use crate::sys::*;

crate::attr_struct! {
    pub struct Masq {
        flags: u32 = NFTA_MASQ_FLAGS,
        reg_proto_min: u32 = NFTA_MASQ_REG_PROTO_MIN,
        reg_proto_max: u32 = NFTA_MASQ_REG_PROTO_MAX,
    }
}
