//! `nat`: source or destination NAT from address / port registers.

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_nat_types`.
    pub enum NatType: u32 {
        Snat = NFT_NAT_SNAT,
        Dnat = NFT_NAT_DNAT,
    }
}

crate::attr_struct! {
    /// Translates to the addresses / ports held in the registers
    /// (`family` = NFPROTO_IPV4/IPV6; `flags` = NF_NAT_RANGE_*).
    pub struct Nat {
        nat_type: NatType = NFTA_NAT_TYPE,
        family: u32 = NFTA_NAT_FAMILY,
        reg_addr_min: u32 = NFTA_NAT_REG_ADDR_MIN,
        reg_addr_max: u32 = NFTA_NAT_REG_ADDR_MAX,
        reg_proto_min: u32 = NFTA_NAT_REG_PROTO_MIN,
        reg_proto_max: u32 = NFTA_NAT_REG_PROTO_MAX,
        flags: u32 = NFTA_NAT_FLAGS,
    }
}
