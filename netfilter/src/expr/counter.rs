//! `counter`: counts packets and bytes (also the named counter object).

use crate::sys::*;

crate::attr_struct! {
    pub struct Counter {
        bytes: u64 = NFTA_COUNTER_BYTES,
        packets: u64 = NFTA_COUNTER_PACKETS,
    }
}
