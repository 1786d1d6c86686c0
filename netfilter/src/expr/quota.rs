//! `quota`: byte quota (also the named quota object).

use crate::sys::*;

crate::attr_struct! {
    /// `bytes` allowed (`flags` bit 0 = `over`); `consumed` is runtime state.
    pub struct Quota {
        bytes: u64 = NFTA_QUOTA_BYTES,
        consumed: u64 = NFTA_QUOTA_CONSUMED,
        flags: u32 = NFTA_QUOTA_FLAGS,
    }
}

impl Quota {
    /// Zeroes the consumed bytes and forgets depletion (runtime state).
    pub fn clear_state(&mut self) {
        super::counter::zero(&mut self.consumed);
        if let Some(f) = &mut self.flags {
            *f &= !crate::sys::NFT_QUOTA_F_DEPLETED;
        }
    }
}
