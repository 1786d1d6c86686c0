//! `lookup`: matches a register against a set, or maps it through a map.

use crate::sys::*;

crate::attr_struct! {
    /// Looks `sreg` up in `set`; for maps, writes the value into `dreg`.
    /// `set_id` names a set created in the same transaction.
    pub struct Lookup {
        set: String = NFTA_LOOKUP_SET,
        sreg: u32 = NFTA_LOOKUP_SREG,
        dreg: u32 = NFTA_LOOKUP_DREG,
        flags: u32 = NFTA_LOOKUP_FLAGS,
        set_id: u32 = NFTA_LOOKUP_SET_ID,
    }
}
