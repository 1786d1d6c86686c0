//! `dynset`: adds, updates or deletes set elements from the packet path
//! (meters, `add @set { ... }`), optionally with per-element expressions.

use super::Expr;
use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_dynset_ops`.
    pub enum DynsetOp: u32 {
        Add = NFT_DYNSET_OP_ADD,
        Update = NFT_DYNSET_OP_UPDATE,
        Delete = NFT_DYNSET_OP_DELETE,
    }
}

crate::attr_struct! {
    /// `op` the element keyed by `sreg_key` (value from `sreg_data` for
    /// maps) in `set_name`. One element expression is dumped as `expr`,
    /// several as `exprs`.
    pub struct Dynset {
        sreg_key: u32 = NFTA_DYNSET_SREG_KEY,
        sreg_data: u32 = NFTA_DYNSET_SREG_DATA,
        op: DynsetOp = NFTA_DYNSET_OP,
        set_name: String = NFTA_DYNSET_SET_NAME,
        /// Set created in the same transaction (sent, never dumped).
        set_id: u32 = NFTA_DYNSET_SET_ID,
        /// Milliseconds.
        timeout: u64 = NFTA_DYNSET_TIMEOUT,
        expr: Box<Expr> = NFTA_DYNSET_EXPR,
        exprs: Vec<Expr> = NFTA_DYNSET_EXPRESSIONS,
        flags: u32 = NFTA_DYNSET_FLAGS,
    }
}
