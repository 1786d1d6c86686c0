//! A rule's compile context ([`RuleCx`]): the expressions and anonymous
//! sets built so far and what the rule has established about the packet
//! (protocols, VLAN depth, ICMP type). The modules after it in
//! `compile` extend it: `anon`, `deps`, `load`, `lookup`, `relational`.

use super::fields::{field, Field, Load, L3};
use super::types::*;
use super::values::{self, Val};
use crate::expr::Expr;
use crate::model::{Family, Set, Table};
use crate::syntax::ast::{self, BinOp};
use crate::syntax::diag::err;
use crate::syntax::diag::{Diagnostic, Span};
use crate::syntax::parser::parse_u64;
use crate::syntax::Result as R;
use crate::sys::*;

pub(super) const REG1: u32 = NFT_REG_1;

pub(super) struct RuleCx<'a> {
    pub(super) family: Family,
    pub(super) table: &'a Table,
    pub(super) exprs: Vec<Expr>,
    pub(super) sets: Vec<Set>,
    /// Network protocol known to be matched so far.
    pub(super) l3: Option<u32>,
    /// Transport protocol known to be matched so far.
    pub(super) l4: Option<u8>,
    /// Link-layer protocol context (bridge: `ether type`, `vlan type`).
    pub(super) ll_proto: Option<u16>,
    /// VLAN headers known present (by a dependency, `ether type 8021q`,
    /// `vlan type 8021ad`): vlan fields refer to the innermost one and the
    /// network protocol is read after them.
    pub(super) vlan_depth: u32,
    pub(super) set_counter: &'a mut u32,
    /// The expressions an anonymous set about to be built is keyed by
    /// (for the `typeof` userdata nft records).
    pub(super) anon_key: Vec<ast::Expr>,
    /// Left shift of the sub-byte field keying the next anonymous set.
    pub(super) anon_shift: u32,
    /// The ICMP type matched (fields of some types need one).
    pub(super) icmp_type: Option<u8>,
    /// The ICMP type was matched against a set: nft then adds no type
    /// dependency for fields of some types.
    pub(super) icmp_type_set: bool,
    /// A transport protocol was matched (maybe against a set).
    pub(super) l4_any: bool,
    /// The transport protocol was matched against a set of several.
    pub(super) l4_set: bool,
    /// The link-layer type matched with `ether type`.
    pub(super) ether_type: Option<u16>,
    /// Parts of the concatenation just loaded: where each load ends in
    /// `exprs`, its register, type and length (host-order parts of
    /// interval keys are byte-swapped there).
    /// The flag marks `meta l4proto`, host order by its expression.
    pub(super) concat_loads: Vec<(usize, u32, Dtype, usize, bool)>,
}

/// A loaded selector: its field and the number of bytes now in the register.
pub(super) struct Loaded {
    pub(super) dt: Dtype,
    pub(super) len: usize,
    /// Mask and shift for fields narrower than the bytes loaded.
    pub(super) mask: Option<(Vec<u8>, u32)>,
}

impl Loaded {
    /// A value filling the bytes of its type, unmasked.
    pub(super) fn whole(dt: Dtype) -> Self {
        Loaded {
            dt,
            len: dt.bytes(),
            mask: None,
        }
    }
}

impl<'a> RuleCx<'a> {
    /// A context for one rule of `family` in `table`; anonymous sets are
    /// numbered from `set_counter` on.
    pub(super) fn new(family: Family, table: &'a Table, set_counter: &'a mut u32) -> Self {
        RuleCx {
            family,
            table,
            exprs: Vec::new(),
            sets: Vec::new(),
            l3: match family {
                Family::Ip => Some(NFPROTO_IPV4),
                Family::Ip6 => Some(NFPROTO_IPV6),
                Family::Arp => Some(NFPROTO_ARP),
                _ => None,
            },
            l4: None,
            ll_proto: None,
            vlan_depth: 0,
            set_counter,
            anon_key: Vec::new(),
            icmp_type: None,
            icmp_type_set: false,
            anon_shift: 0,
            ether_type: None,
            l4_any: false,
            l4_set: false,
            concat_loads: Vec::new(),
        }
    }
}

impl RuleCx<'_> {
    pub(super) fn push(&mut self, e: Expr) {
        self.exprs.push(e);
    }

    pub(super) fn family(&self) -> Family {
        self.family
    }

    pub(super) fn table(&self) -> &Table {
        self.table
    }

    /// The network protocol matched so far, if known.
    pub(super) fn l3_known(&self) -> Option<u32> {
        self.l3
    }

    /// The transport protocol matched so far, if known.
    pub(super) fn l4(&self) -> Option<u8> {
        self.l4.or(self.l4_any.then_some(0))
    }

    pub(super) fn family_l3(&self) -> Option<L3> {
        match self.l3 {
            Some(NFPROTO_IPV4) => Some(L3::Ip),
            Some(NFPROTO_IPV6) => Some(L3::Ip6),
            _ => None,
        }
    }

    pub(super) fn resolve(&self, path: &[String], span: Span) -> R<Field> {
        field(path, self.family_l3()).ok_or_else(|| {
            Diagnostic::new(span, format!("unknown expression '{}'", path.join(" ")))
        })
    }

    pub(super) fn sel_load(&self, e: &ast::Expr) -> Option<Load> {
        match e {
            ast::Expr::Sel(p, _) => field(p, self.family_l3()).map(|f| f.load),
            _ => None,
        }
    }

    pub(super) fn const_u64(&self, e: &ast::Expr) -> R<u64> {
        match e {
            ast::Expr::Word(w, s) => parse_u64(w)
                .ok_or_else(|| Diagnostic::new(*s, format!("expected a number, got '{w}'"))),
            other => err(other.span(), "expected a number"),
        }
    }

    pub(super) fn value_bytes(&self, e: &ast::Expr, dt: &Dtype, len: usize) -> R<Vec<u8>> {
        match values::value(e, dt, len, self.table)? {
            Val::Bytes(v) => Ok(v),
            _ => err(e.span(), "expected a single value"),
        }
    }

    /// Folds constant expressions (`0x11 xor 0x1331`, `new | related`).
    pub(super) fn const_value(&self, v: &ast::Expr, dt: &Dtype, len: usize) -> R<Vec<u8>> {
        match v {
            ast::Expr::Binop(op, l, r, _) => {
                let a = self.const_value(l, dt, len)?;
                let c = self.const_value(r, dt, len)?;
                Ok(a.iter()
                    .zip(&c)
                    .map(|(x, y)| match op {
                        BinOp::And => x & y,
                        BinOp::Or => x | y,
                        _ => x ^ y,
                    })
                    .collect())
            }
            _ => self.value_bytes(v, dt, len),
        }
    }
}

/// The register of a concatenation part `off` bytes in: nft names it by
/// its 16-byte register when aligned to one, else by its 32-bit one.
pub(super) fn concat_reg(off: usize) -> u32 {
    if off % 16 == 0 {
        NFT_REG_1 + (off / 16) as u32
    } else {
        NFT_REG32_00 + (off / 4) as u32
    }
}

pub(super) fn is_const(e: &ast::Expr) -> bool {
    match e {
        ast::Expr::Binop(_, l, r, _) => is_const(l) && is_const(r),
        ast::Expr::Sel(..) | ast::Expr::Map(..) => false,
        _ => true,
    }
}

/// `jhash KEY mod N`, which the parser gives as a map of the hash
/// parameters over the key.
pub(super) fn is_jhash(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Map(h, ..) if matches!(&**h, ast::Expr::Sel(p, _) if p[0] == "jhash"))
}

/// 802.1Q and 802.1ad: a VLAN header follows.
pub(super) fn is_vlan_type(t: u16) -> bool {
    t == 0x8100 || t == 0x88a8
}

pub(super) fn l3_name(p: u32) -> &'static str {
    match p {
        NFPROTO_IPV4 => "ip",
        NFPROTO_IPV6 => "ip6",
        NFPROTO_ARP => "arp",
        _ => "?",
    }
}

pub(super) fn proto_name(n: u8) -> String {
    INET_PROTO
        .syms
        .iter()
        .find(|s| s.value == n as u64)
        .map(|s| s.name.to_string())
        .unwrap_or_else(|| n.to_string())
}
