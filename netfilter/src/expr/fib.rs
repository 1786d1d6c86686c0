//! `fib`: routing (FIB) lookups: output interface, address type.

use crate::sys::*;

crate::kernel_enum! {
    /// `enum nft_fib_result`.
    pub enum FibResult: u32 {
        Oif = NFT_FIB_RESULT_OIF,
        Oifname = NFT_FIB_RESULT_OIFNAME,
        Addrtype = NFT_FIB_RESULT_ADDRTYPE,
    }
}

crate::attr_struct! {
    /// Looks up by the fields in `flags` (`NFTA_FIB_F_*`), `result` into `dreg`.
    pub struct Fib {
        dreg: u32 = NFTA_FIB_DREG,
        result: FibResult = NFTA_FIB_RESULT,
        flags: u32 = NFTA_FIB_FLAGS,
    }
}
