//! `queue`: hands the packet to userspace through nfqueue.

use crate::sys::*;

crate::attr_struct! {
    /// Queues `num..num+total` (or the number in `sreg_qnum`); `flags`
    /// NFT_QUEUE_FLAG_*.
    pub struct Queue {
        num: u16 = NFTA_QUEUE_NUM,
        total: u16 = NFTA_QUEUE_TOTAL,
        sreg_qnum: u32 = NFTA_QUEUE_SREG_QNUM,
        flags: u16 = NFTA_QUEUE_FLAGS,
    }
}
