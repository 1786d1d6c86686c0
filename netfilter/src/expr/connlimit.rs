//! `connlimit`: matches on the number of connections (also an object).

use crate::sys::*;

crate::attr_struct! {
    /// More than `count` connections (`flags` bit 0 inverts).
    pub struct Connlimit {
        count: u32 = NFTA_CONNLIMIT_COUNT,
        flags: u32 = NFTA_CONNLIMIT_FLAGS,
    }
}
