//! `notrack`: exempts the packet from connection tracking (no attributes).

crate::attr_struct! {
    pub struct Notrack {}
}
