//! Kernel state that a dump reports inside expression and object
//! attributes but the kernel refuses on input. Encoders send a copy with
//! that state removed, so a pulled value always pushes back:
//! - `dynset`: `NFTA_DYNSET_TIMEOUT` 0 (dumped for every dynset; refused
//!   with EOPNOTSUPP when the set has no timeout flag);
//! - `dynset` with several expressions: the kernel wants `NFT_DYNSET_F_EXPR`
//!   in its flags but does not dump it;
//! - `exthdr` writing a TCP option: `NFTA_EXTHDR_FLAGS` 0 (refused with a
//!   source register);
//! - `osf`: `NFTA_OSF_FLAGS` 0 (only the version flag is accepted);
//! - `quota` (expression and object): the depleted bit of `NFTA_QUOTA_FLAGS`.

use std::borrow::Cow;

use crate::expr::quota::Quota;
use crate::expr::Expr;
use crate::netlink::Writer;
use crate::sys::*;

/// A copy of `e` fit to send, or `None` when `e` can be sent as is.
fn fixed(e: &Expr) -> Option<Expr> {
    Some(match e {
        Expr::Dynset(d) => {
            let drop_timeout = d.timeout == Some(0);
            let flags = d.flags.unwrap_or(0);
            let add_flag = d.exprs.is_some() && flags & NFT_DYNSET_F_EXPR == 0;
            if !drop_timeout && !add_flag {
                return None;
            }
            let mut d = d.clone();
            if drop_timeout {
                d.timeout = None;
            }
            if add_flag {
                d.flags = Some(flags | NFT_DYNSET_F_EXPR);
            }
            Expr::Dynset(d)
        }
        Expr::Exthdr(x) if x.flags == Some(0) && x.sreg.is_some() => {
            let mut x = x.clone();
            x.flags = None;
            Expr::Exthdr(x)
        }
        Expr::Osf(o) if o.flags == Some(0) => {
            let mut o = o.clone();
            o.flags = None;
            Expr::Osf(o)
        }
        Expr::Quota(q) => Expr::Quota(quota(q)?),
        _ => return None,
    })
}

/// A quota without its depleted bit, or `None` when it has none.
pub(crate) fn quota(q: &Quota) -> Option<Quota> {
    let flags = q.flags?;
    if flags & NFT_QUOTA_F_DEPLETED == 0 {
        return None;
    }
    let mut q = q.clone();
    q.flags = Some(flags & !NFT_QUOTA_F_DEPLETED);
    Some(q)
}

/// `e`, or its sendable copy.
pub(crate) fn sendable(e: &Expr) -> Cow<'_, Expr> {
    fixed(e).map_or(Cow::Borrowed(e), Cow::Owned)
}

/// Writes a list of expressions as `NFTA_LIST_ELEM`s, each sendable.
pub(crate) fn encode_list(exprs: &[Expr], w: &mut Writer) {
    for e in exprs {
        sendable(e).encode(w);
    }
}
