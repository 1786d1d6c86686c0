//! `immediate`: loads a constant or a verdict into a register.

use super::Data;
use crate::sys::*;

crate::attr_struct! {
    /// Writes `data` into register `dreg` (`NFT_REG_VERDICT` for verdicts).
    pub struct Immediate {
        dreg: u32 = NFTA_IMMEDIATE_DREG,
        data: Data = NFTA_IMMEDIATE_DATA,
    }
}
