//! Kernel expressions: one module per expression, each a typed struct that
//! decodes the kernel's attributes and re-encodes them byte for byte.
//!
//! Field order in each struct is the order the kernel dumps attributes in,
//! so `encode(decode(bytes)) == bytes`; attributes unknown here are kept in
//! `unknown` and written back unchanged, and an expression whose name is
//! unknown here is kept whole as [`Expr::Unknown`].

mod data;
mod value;

pub use data::{Data, OtherVerdict, Verdict};
pub use value::{for_each_attr, AttrValue, Bytes, RawAttr};

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::netlink::{Attr, Attrs, Writer};
use crate::sys::*;

/// A variant's type, boxed when marked `box` (a type), or its value boxed
/// likewise (`new e`).
macro_rules! maybe_boxed {
    (box $module:ident :: $ty:ident) => { Box<$module::$ty> };
    ($module:ident :: $ty:ident) => { $module::$ty };
    (box new $e:expr) => { Box::new($e) };
    (new $e:expr) => { $e };
}

macro_rules! expressions {
    ( $( $(#[$m:meta])* $variant:ident ( $module:ident :: $ty:ident $(as $boxed:ident)? ) = $name:literal ),+ $(,)? ) => {
        $( pub mod $module; )+

        /// One kernel expression.
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Expr {
            $( $(#[$m])* $variant(maybe_boxed!($($boxed)? $module::$ty)), )+
            /// An expression this code does not know: its name and the raw
            /// payload of its `NFTA_EXPR_DATA` (absent when the kernel sent none).
            Unknown { name: String, data: Option<Bytes> },
        }

        impl Expr {
            /// The kernel's names of every expression this code knows.
            pub const NAMES: &'static [&'static str] = &[ $( $name ),+ ];

            /// The kernel's name for this expression (`payload`, `cmp`, ...).
            pub fn name(&self) -> &str {
                match self {
                    $( Expr::$variant(_) => $name, )+
                    Expr::Unknown { name, .. } => name,
                }
            }

            fn encode_data(&self, w: &mut Writer) {
                match self {
                    $( Expr::$variant(e) => {
                        let start = w.begin_nest(NFTA_EXPR_DATA);
                        e.encode_attrs(w);
                        w.end_nest(start);
                    } )+
                    Expr::Unknown { data, .. } => {
                        if let Some(d) = data {
                            w.put(NFTA_EXPR_DATA, &d.0);
                        }
                    }
                }
            }

            fn decode_data(name: &str, data: Option<Attr<'_>>) -> Result<Self, DecodeError> {
                let attrs = data.map(|d| d.nested()).unwrap_or_else(|| Attrs::new(&[]));
                Ok(match name {
                    $( $name if data.is_some() || NO_DATA.contains(&$name) => $module::$ty::decode_attrs(attrs)?.into(), )+
                    _ => Expr::Unknown { name: name.to_owned(), data: data.map(|d| Bytes::from(d.payload())) },
                })
            }
        }

        $( impl From<$module::$ty> for Expr {
            fn from(e: $module::$ty) -> Self { Expr::$variant(maybe_boxed!($($boxed)? new e)) }
        } )+
    };
}

/// Expressions the kernel dumps without an `NFTA_EXPR_DATA` nest.
const NO_DATA: &[&str] = &["notrack"];

// Variants marked `as box` are large and less common than the small ones every
// rule has (payload, cmp, meta, immediate): inline they would make every
// expression as large as the largest.
expressions! {
    Immediate(immediate::Immediate) = "immediate",
    Cmp(cmp::Cmp) = "cmp",
    Payload(payload::Payload) = "payload",
    Meta(meta::Meta) = "meta",
    Bitwise(bitwise::Bitwise as box) = "bitwise",
    Lookup(lookup::Lookup) = "lookup",
    Counter(counter::Counter) = "counter",
    Byteorder(byteorder::Byteorder) = "byteorder",
    Range(range::Range as box) = "range",
    Dynset(dynset::Dynset as box) = "dynset",
    Ct(ct::Ct) = "ct",
    Limit(limit::Limit) = "limit",
    Quota(quota::Quota) = "quota",
    Connlimit(connlimit::Connlimit) = "connlimit",
    Log(log::Log) = "log",
    Nat(nat::Nat) = "nat",
    Masq(masq::Masq) = "masq",
    Redir(redir::Redir) = "redir",
    Reject(reject::Reject) = "reject",
    Fib(fib::Fib) = "fib",
    Exthdr(exthdr::Exthdr) = "exthdr",
    Rt(rt::Rt) = "rt",
    Socket(socket::Socket) = "socket",
    Tproxy(tproxy::Tproxy) = "tproxy",
    Hash(hash::Hash) = "hash",
    Numgen(numgen::Numgen) = "numgen",
    Osf(osf::Osf) = "osf",
    Xfrm(xfrm::Xfrm) = "xfrm",
    Fwd(fwd::Fwd) = "fwd",
    Dup(dup::Dup) = "dup",
    Synproxy(synproxy::Synproxy) = "synproxy",
    Objref(objref::Objref as box) = "objref",
    Notrack(notrack::Notrack) = "notrack",
    Last(last::Last) = "last",
    Inner(inner::Inner) = "inner",
    /// Modelled; this kernel lacks `nft_queue`.
    Queue(queue::Queue) = "queue",
    Tunnel(tunnel::Tunnel) = "tunnel",
    /// Modelled; this kernel lacks flowtables.
    FlowOffload(flow_offload::FlowOffload) = "flow_offload",
    Match(xt_match::Match as box) = "match",
    Target(xt_target::Target as box) = "target",
}

impl Expr {
    /// The set an expression refers to, as (name, same-transaction id), for
    /// `lookup`, `dynset` and object-map `objref`; push rewrites these when
    /// it renames anonymous sets.
    pub fn set_refs_mut(&mut self) -> Option<(&mut Option<String>, &mut Option<u32>)> {
        match self {
            Expr::Lookup(l) => Some((&mut l.set, &mut l.set_id)),
            Expr::Dynset(d) => Some((&mut d.set_name, &mut d.set_id)),
            Expr::Objref(o) if o.set_name.is_some() || o.set_id.is_some() => {
                Some((&mut o.set_name, &mut o.set_id))
            }
            _ => None,
        }
    }

    /// The name of the set an expression refers to (see [`Expr::set_refs_mut`]).
    pub fn set_name(&self) -> Option<&str> {
        match self {
            Expr::Lookup(l) => l.set.as_deref(),
            Expr::Dynset(d) => d.set_name.as_deref(),
            Expr::Objref(o) => o.set_name.as_deref(),
            _ => None,
        }
    }

    /// Zeroes runtime state (counter values, quota consumed, `last`'s
    /// timestamp), also inside dynset and inner expressions, so rules can
    /// be compared on configuration alone.
    pub fn clear_state(&mut self) {
        match self {
            Expr::Counter(c) => c.clear_state(),
            Expr::Quota(q) => q.clear_state(),
            Expr::Last(l) => l.clear_state(),
            Expr::Dynset(d) => {
                if let Some(e) = &mut d.expr {
                    e.clear_state();
                }
                clear_state_all(d.exprs.iter_mut().flatten());
            }
            Expr::Inner(i) => {
                if let Some(e) = &mut i.expr {
                    e.clear_state();
                }
            }
            _ => {}
        }
    }

    /// Writes this expression as one `NFTA_LIST_ELEM`.
    pub fn encode(&self, w: &mut Writer) {
        let start = w.begin_nest(NFTA_LIST_ELEM);
        self.encode_body(w);
        w.end_nest(start);
    }

    /// Writes `NFTA_EXPR_NAME` and `NFTA_EXPR_DATA` (no enclosing nest).
    pub fn encode_body(&self, w: &mut Writer) {
        w.put_str(NFTA_EXPR_NAME, self.name());
        if !(NO_DATA.contains(&self.name()) && self.is_empty_data()) {
            self.encode_data(w);
        }
    }

    fn is_empty_data(&self) -> bool {
        let mut w = Writer::new();
        self.encode_data(&mut w);
        w.len() <= 4
    }

    /// Reads `NFTA_EXPR_NAME` / `NFTA_EXPR_DATA` from one expression nest.
    pub fn decode_body(attrs: Attrs<'_>) -> Result<Self, DecodeError> {
        let (mut name, mut data) = (None, None);
        for a in attrs {
            let a = a?;
            match a.kind() {
                NFTA_EXPR_NAME => name = Some(a.str()?),
                NFTA_EXPR_DATA => data = Some(a),
                _ => {}
            }
        }
        let name = name.ok_or(DecodeError::Missing {
            object: "expression",
            attr: "NFTA_EXPR_NAME",
        })?;
        Expr::decode_data(name, data)
    }
}

/// [`Expr::clear_state`] on each expression (rules, set elements).
pub fn clear_state_all<'a>(exprs: impl IntoIterator<Item = &'a mut Expr>) {
    exprs.into_iter().for_each(Expr::clear_state);
}

/// Writes a list of expressions as consecutive `NFTA_LIST_ELEM`s.
pub fn encode_list(exprs: &[Expr], w: &mut Writer) {
    for e in exprs {
        e.encode(w);
    }
}

/// Reads consecutive `NFTA_LIST_ELEM`s.
pub fn decode_list(attrs: Attrs<'_>) -> Result<Vec<Expr>, DecodeError> {
    // Sized up front: growing would leave freed blocks between the rules
    // of a pulled ruleset, which later diffs walk in order.
    let mut out = Vec::with_capacity(attrs.clone().count());
    for a in attrs {
        let a = a?;
        if a.kind() != NFTA_LIST_ELEM {
            return Err(DecodeError::Invalid {
                object: "expression list",
                field: "attribute type",
                value: a.kind() as u64,
            });
        }
        out.push(Expr::decode_body(a.nested())?);
    }
    Ok(out)
}

/// A nest holding a list of expressions (rules, dynset, set expressions).
impl AttrValue for Vec<Expr> {
    fn encode(&self, ty: u16, w: &mut Writer) {
        let start = w.begin_nest(ty);
        encode_list(self, w);
        w.end_nest(start);
    }
    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        decode_list(a.nested())
    }
}

/// A nest holding one expression's name and data (`NFTA_DYNSET_EXPR`, ...).
impl AttrValue for Box<Expr> {
    fn encode(&self, ty: u16, w: &mut Writer) {
        let start = w.begin_nest(ty);
        self.encode_body(w);
        w.end_nest(start);
    }
    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        Expr::decode_body(a.nested()).map(Box::new)
    }
}

#[cfg(test)]
mod tests;
