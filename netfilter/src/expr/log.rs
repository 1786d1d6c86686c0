//! `log`: logs the packet to the kernel log (level) or nflog (group).

use crate::sys::*;

crate::attr_struct! {
    /// Kernel log: `level`, `flags`; nflog: `group`, `snaplen`, `qthreshold`.
    pub struct Log {
        prefix: String = NFTA_LOG_PREFIX,
        level: u32 = NFTA_LOG_LEVEL,
        flags: u32 = NFTA_LOG_FLAGS,
        group: u16 = NFTA_LOG_GROUP,
        snaplen: u32 = NFTA_LOG_SNAPLEN,
        qthreshold: u16 = NFTA_LOG_QTHRESHOLD,
    }
}
