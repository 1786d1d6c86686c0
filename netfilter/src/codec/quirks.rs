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
// TODO(expr): move these into the typed expressions once they land.

use std::borrow::Cow;

use crate::expr::{Bytes, Expr};
use crate::netlink::{Attrs, Writer};
use crate::sys::*;

/// What to do with one attribute of a body.
enum Fix {
    Keep,
    Drop,
    Replace(u32),
}

/// A copy of `e` fit to send, or `None` when `e` can be sent as is.
pub(crate) fn expr(e: &Expr) -> Option<Expr> {
    let Expr::Unknown {
        name,
        data: Some(data),
    } = e
    else {
        return None;
    };
    let fixed = body(name, data)?;
    Some(Expr::Unknown {
        name: name.clone(),
        data: Some(fixed),
    })
}

/// `e`, or its sendable copy.
pub(crate) fn sendable(e: &Expr) -> Cow<'_, Expr> {
    expr(e).map_or(Cow::Borrowed(e), Cow::Owned)
}

/// Writes a list of expressions as `NFTA_LIST_ELEM`s, each sendable.
pub(crate) fn encode_list(exprs: &[Expr], w: &mut Writer) {
    for e in exprs {
        sendable(e).encode(w);
    }
}

/// A quota object's flags fit to send.
pub(crate) fn quota_flags(flags: u32) -> u32 {
    flags & !NFT_QUOTA_F_DEPLETED
}

fn body(name: &str, data: &Bytes) -> Option<Bytes> {
    // Which attribute types the body has (all are below 32).
    let mut present = 0u32;
    for a in Attrs::new(data.as_slice()) {
        let Ok(a) = a else { return None };
        present |= 1u32.checked_shl(a.kind() as u32).unwrap_or(0);
    }
    let has = |kind: u16| present & (1 << kind) != 0;
    let fix = |kind: u16, payload: &[u8]| -> Fix {
        let v = <[u8; 8]>::try_from(payload)
            .map(u64::from_be_bytes)
            .ok()
            .or_else(|| <[u8; 4]>::try_from(payload).map(|b| u32::from_be_bytes(b) as u64).ok());
        match (name, kind, v) {
            ("dynset", NFTA_DYNSET_TIMEOUT, Some(0)) => Fix::Drop,
            ("dynset", NFTA_DYNSET_FLAGS, Some(f))
                if has(NFTA_DYNSET_EXPRESSIONS) && f & NFT_DYNSET_F_EXPR as u64 == 0 =>
            {
                Fix::Replace(f as u32 | NFT_DYNSET_F_EXPR)
            }
            ("exthdr", NFTA_EXTHDR_FLAGS, Some(0)) if has(NFTA_EXTHDR_SREG) => Fix::Drop,
            ("osf", NFTA_OSF_FLAGS, Some(0)) => Fix::Drop,
            ("quota", NFTA_QUOTA_FLAGS, Some(f)) if f & NFT_QUOTA_F_DEPLETED as u64 != 0 => {
                Fix::Replace(f as u32 & !NFT_QUOTA_F_DEPLETED)
            }
            _ => Fix::Keep,
        }
    };
    let needed = Attrs::new(data.as_slice())
        .flatten()
        .any(|a| !matches!(fix(a.kind(), a.payload()), Fix::Keep));
    if !needed {
        return None;
    }
    let mut w = Writer::with_capacity(data.0.len());
    for a in Attrs::new(data.as_slice()).flatten() {
        match fix(a.kind(), a.payload()) {
            Fix::Keep => w.put(a.raw_type(), a.payload()),
            Fix::Drop => {}
            Fix::Replace(v) => w.put_u32_be(a.raw_type(), v),
        }
    }
    Some(Bytes(w.into_bytes()))
}
