//! `last`: when the rule last matched (runtime state only).

use crate::sys::*;

crate::attr_struct! {
    /// `set` = 1 once matched; `msecs` = milliseconds since.
    pub struct Last {
        set: u32 = NFTA_LAST_SET,
        msecs: u64 = NFTA_LAST_MSECS,
    }
}

impl Last {
    /// Forgets when the rule last matched.
    pub fn clear_state(&mut self) {
        super::counter::zero(&mut self.set);
        super::counter::zero(&mut self.msecs);
    }
}
