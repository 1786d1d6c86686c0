//! `counter`: counts packets and bytes (also the named counter object).

use crate::sys::*;

crate::attr_struct! {
    pub struct Counter {
        bytes: u64 = NFTA_COUNTER_BYTES,
        packets: u64 = NFTA_COUNTER_PACKETS,
    }
}

impl Counter {
    /// Zeroes the counted values, keeping which attributes are present.
    pub fn clear_state(&mut self) {
        zero(&mut self.bytes);
        zero(&mut self.packets);
    }
}

/// Sets a present runtime value to zero (absent stays absent, so encoding
/// keeps the kernel's attribute layout).
pub(crate) fn zero<T: Default>(v: &mut Option<T>) {
    if let Some(v) = v {
        *v = T::default();
    }
}
