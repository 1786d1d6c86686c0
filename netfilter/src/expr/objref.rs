//! `objref`: attaches a named object to the packet, directly or through
//! an object map.

use crate::sys::*;

crate::attr_struct! {
    /// Direct: `imm_type` / `imm_name`. Map: key in `set_sreg`, map `set_name`.
    pub struct Objref {
        imm_name: String = NFTA_OBJREF_IMM_NAME,
        imm_type: u32 = NFTA_OBJREF_IMM_TYPE,
        set_sreg: u32 = NFTA_OBJREF_SET_SREG,
        set_name: String = NFTA_OBJREF_SET_NAME,
        /// Map created in the same transaction (sent, never dumped).
        set_id: u32 = NFTA_OBJREF_SET_ID,
    }
}
