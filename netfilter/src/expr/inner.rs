//! `inner`: runs a payload / meta expression on a tunnelled packet's
//! inner headers (vxlan, geneve, gre, ...; Linux 6.2+).

use super::Expr;
use crate::sys::*;

crate::attr_struct! {
    pub struct Inner {
        num: u32 = NFTA_INNER_NUM,
        inner_type: u32 = NFTA_INNER_TYPE,
        flags: u32 = NFTA_INNER_FLAGS,
        hdrsize: u32 = NFTA_INNER_HDRSIZE,
        expr: Box<Expr> = NFTA_INNER_EXPR,
    }
}
