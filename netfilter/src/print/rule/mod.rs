//! Expressions → nft statements: follows values through registers,
//! recognises nft's expression patterns (load + cmp, load + bitwise +
//! cmp, lookups, immediates feeding nat/set statements), and drops the
//! protocol dependencies nft adds on its own.

use std::collections::HashMap;

use crate::expr::payload::PayloadBase;
use crate::expr::{Data, Expr, Verdict};
use crate::model::{Family, Rule, Set, Table};
use crate::proto::datatype::{self as dt, Datatype};
use crate::proto::{exthdr, header, keys, ByteOrder, Header};
use crate::sys::*;

use super::set::KeyLayout;
use super::value::{self, ValueType};
use super::{stmt, PrintOptions};

mod deps;
mod matches;

/// Protocol layers nft tracks dependencies for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layer {
    Link = 0,
    Network = 1,
    Transport = 2,
}

/// What a register holds.
#[derive(Clone, Debug)]
pub(super) struct Reg {
    /// nft's text for the expression (`tcp dport`, `meta mark`).
    pub text: String,
    pub vt: ValueType,
    /// Bytes the value occupies in registers.
    pub len: u32,
    /// Sets protocol context at a layer when compared for equality.
    pub defines: Option<Layer>,
    /// A still unresolved packet load: (base, byte offset, byte length).
    pub raw: Option<(PayloadBase, u32, u32)>,
    /// Mask applied by a bitwise (value bytes).
    pub mask: Option<Vec<u8>>,
    /// Right shift to reach a sub-byte field's value.
    pub shift: u32,
    /// A constant (immediate) rather than a packet/meta value.
    pub constant: Option<Vec<u8>>,
    /// Concatenation members (for splitting set keys).
    pub parts: Vec<Reg>,
    /// Loaded only the first bytes of a field this long (a prefix match).
    pub prefix_of: Option<u32>,
    /// An exthdr load not matching a field exactly: (op, type, byte offset).
    pub exthdr: Option<(exthdr::ExthdrOp, u8, u32)>,
    /// Right shift applied to align a sub-byte field (nft 1.0.6 still
    /// shows it when the field is part of a concatenation).
    pub aligned: u32,
    /// Mask and xor a bitwise applied to a raw load (for payload writes).
    pub mangle: Option<(Vec<u8>, Vec<u8>)>,
    /// Binary operation text already folded into `text` (`ct mark & 0xff`).
    pub binop: bool,
}

impl Reg {
    pub fn new(text: impl Into<String>, dtype: &'static Datatype, bo: ByteOrder, len: u32) -> Self {
        Reg {
            text: text.into(),
            vt: ValueType {
                dtype,
                byteorder: bo,
                bits: if dtype.bits == 0 { len * 8 } else { dtype.bits },
            },
            len,
            defines: None,
            raw: None,
            mask: None,
            shift: 0,
            constant: None,
            parts: Vec::new(),
            exthdr: None,
            prefix_of: None,
            aligned: 0,
            mangle: None,
            binop: false,
        }
    }

    /// The key layout of this value as a set key (one entry per member).
    pub fn layout(&self) -> KeyLayout {
        if self.parts.is_empty() {
            KeyLayout(vec![(self.vt, self.len, self.shift)])
        } else {
            KeyLayout(self.parts.iter().map(|p| (p.vt, p.len, p.shift)).collect())
        }
    }
}

struct Stmt {
    text: String,
    elided: bool,
    /// Dependencies this statement made redundant (restored if it is
    /// itself dropped as a dependency).
    elides: Vec<usize>,
}

/// Decompiles one rule.
pub(super) struct Decompiler<'a> {
    pub family: Family,
    pub table: &'a Table,
    pub rule: &'a Rule,
    pub opts: &'a PrintOptions,
    /// Tabs before this rule in a listing (for inline bound chains).
    pub depth: usize,
    regs: HashMap<u32, Reg>,
    stmts: Vec<Stmt>,
    ctx: [Option<&'static Header>; 3],
    dep: [Option<usize>; 3],
    /// An explicit protocol match per layer (`ip protocol tcp` in an inet
    /// table): kept in listings, except before a header option of that
    /// protocol (`tcp option …`), which nft lists alone.
    explicit_dep: [Option<usize>; 3],
    /// Last `icmp type X` / `icmpv6 type X` match: (type, statement).
    icmp_type: Option<(u8, usize)>,
    /// The `meta iiftype ether` match, implied by any link-layer field.
    iiftype: Option<usize>,
    /// Statements elided by the load whose match is not pushed yet.
    pending_elides: Vec<usize>,
    /// Bits the link-layer view moved by for each `vlan type 8021q` seen (QinQ).
    vlan_shift: u32,
    /// Last `X >= a` match, to merge with a following `X <= b` into `X a-b`.
    last_gte: Option<(usize, String, String)>,
}

/// Register number → index of its first 32-bit slot.
fn slot(reg: u32) -> u32 {
    match reg {
        1..=4 => 8 + (reg - 1) * 4,
        r => r,
    }
}

pub(super) fn int_of(b: &[u8], bo: ByteOrder) -> u128 {
    value::to_uint(b, bo)
}

impl<'a> Decompiler<'a> {
    pub fn new(family: Family, table: &'a Table, rule: &'a Rule, opts: &'a PrintOptions) -> Self {
        let mut ctx = [None; 3];
        ctx[Layer::Network as usize] = match family {
            Family::Ip => Some(&header::IP),
            Family::Ip6 => Some(&header::IP6),
            Family::Arp => Some(&header::ARP),
            _ => None,
        };
        if matches!(
            family,
            Family::Bridge | Family::Netdev | Family::Inet | Family::Ip | Family::Ip6
        ) {
            ctx[Layer::Link as usize] = Some(&header::ETHER);
        }
        Decompiler {
            family,
            table,
            rule,
            opts,
            depth: 2,
            regs: HashMap::new(),
            stmts: Vec::new(),
            ctx,
            dep: [None; 3],
            explicit_dep: [None; 3],
            icmp_type: None,
            iiftype: None,
            pending_elides: Vec::new(),
            vlan_shift: 0,
            last_gte: None,
        }
    }

    pub fn run(mut self) -> String {
        let exprs = &self.rule.exprs;
        let mut i = 0;
        while i < exprs.len() {
            i += self.step(&exprs[i..]);
        }
        let mut out = String::new();
        for s in self
            .stmts
            .iter()
            .filter(|s| !s.elided && !s.text.is_empty())
        {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&s.text);
        }
        if let Some(c) = self.rule.comment() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("comment \"{c}\""));
        }
        out
    }

    /// A verdict; a jump or goto to a bound (anonymous) chain prints that
    /// chain's rules inline, one level deeper.
    fn verdict_text(&self, v: &Verdict) -> String {
        let bound = match v {
            Verdict::Jump(c) | Verdict::Goto(c) => self
                .table
                .chain(c)
                .filter(|ch| ch.flags.unwrap_or(0) & NFT_CHAIN_BINDING != 0),
            _ => None,
        };
        let Some(ch) = bound else {
            return verdict(v);
        };
        let kw = if matches!(v, Verdict::Goto(_)) {
            "goto"
        } else {
            "jump"
        };
        let indent = "\t".repeat(self.depth + 1);
        let mut s = format!("{kw} {{\n");
        for r in &ch.rules {
            let mut d = Decompiler::new(self.family, self.table, r, self.opts);
            d.depth = self.depth + 1;
            s.push_str(&format!("{indent}{}\n", d.run()));
        }
        s.push_str(&"\t".repeat(self.depth));
        s.push('}');
        s
    }

    /// Adds a match.
    pub fn push(&mut self, text: String) {
        let elides = std::mem::take(&mut self.pending_elides);
        self.stmts.push(Stmt {
            text,
            elided: false,
            elides,
        });
    }

    /// Adds a statement that acts (sets, counts, mangles): nft keeps
    /// protocol matches before it, so pending dependencies end here.
    pub fn push_action(&mut self, text: String) {
        self.dep = [None; 3];
        self.iiftype = None;
        self.push(text);
    }

    pub fn set_reg(&mut self, reg: u32, r: Reg) {
        self.regs.insert(slot(reg), r);
    }

    /// The value in `reg`; concatenations are gathered when `len` spans
    /// several registers.
    pub fn get_reg(&mut self, reg: u32, len: Option<u32>) -> Option<Reg> {
        let s = slot(reg);
        let first = self.regs.get(&s)?.clone();
        let want = match len {
            Some(l) if l > first.len.next_multiple_of(4) => l,
            _ => return Some(first),
        };
        let mut parts = vec![first];
        let mut total = parts[0].len.next_multiple_of(4).max(4);
        // Every member takes at least one register, so this ends.
        let mut at = s + parts[0].len.div_ceil(4).max(1);
        while total < want {
            let Some(r) = self.regs.get(&at).cloned() else {
                break;
            };
            total += r.len.next_multiple_of(4).max(4);
            at += r.len.div_ceil(4).max(1);
            parts.push(r);
        }
        let text = parts
            .iter()
            .map(|p| match p.aligned {
                0 => p.text.clone(),
                n => format!("{} >> {n}", p.text),
            })
            .collect::<Vec<_>>()
            .join(" . ");
        let mut c = Reg::new(text, &dt::INVALID, ByteOrder::Big, total);
        c.parts = parts;
        Some(c)
    }

    /// Whether the rule carries the set `name` (an anonymous set).
    pub fn rule_owns(&self, name: &str) -> bool {
        self.rule.sets.iter().any(|s| s.name == name)
    }

    /// The set a lookup names (anonymous ones carried by the rule).
    pub fn find_set(&self, name: &str) -> Option<&'a Set> {
        self.rule
            .sets
            .iter()
            .find(|s| s.name == name)
            .or_else(|| self.table.set(name))
    }

    fn step(&mut self, exprs: &[Expr]) -> usize {
        match &exprs[0] {
            Expr::Payload(p) if p.dreg.is_some() => {
                let (base, off, len) = (
                    p.base.unwrap_or(PayloadBase::Network),
                    p.offset.unwrap_or(0),
                    p.len.unwrap_or(0),
                );
                let r = self.payload_reg(base, off, len);
                self.set_reg(p.dreg.unwrap_or(0), r);
            }
            Expr::Payload(p) if p.sreg.is_some() => {
                let base = p.base.unwrap_or(PayloadBase::Network);
                let (off, len) = (p.offset.unwrap_or(0), p.len.unwrap_or(0));
                let layer = layer_of(base);
                if self.mangled_set(p.sreg.unwrap_or(0), base, off, len) {
                    return 1;
                }
                let (name, vt) = match self.resolve_field(layer, off * 8, len * 8) {
                    Some((h, f)) => {
                        self.used(layer, h);
                        let r = self.field_reg(h, f, len, 0);
                        (r.text, Some(r.vt))
                    }
                    None => (raw_text(base, off * 8, len * 8), None),
                };
                let v = self.value_text(p.sreg.unwrap_or(0), vt);
                self.push_action(format!("{name} set {v}"));
            }
            Expr::Meta(m) => {
                let key: u32 = m.key.map(u32::from).unwrap_or(0);
                if let Some(dreg) = m.dreg {
                    let r = self.meta_reg(key);
                    self.set_reg(dreg, r);
                } else if let Some(sreg) = m.sreg {
                    let k = keys::meta_by_key(key);
                    let name = k.map(|k| k.name).unwrap_or("unknown");
                    let v = self.value_text(sreg, k.map(|k| self.key_vt(k)));
                    let text = format!("meta {name} set {v}");
                    self.push_action(text);
                }
            }
            Expr::Ct(c) => {
                let key: u32 = c.key.map(u32::from).unwrap_or(0);
                let dir = c.direction;
                if let Some(dreg) = c.dreg {
                    let r = self.ct_reg(key, dir);
                    self.set_reg(dreg, r);
                } else if let Some(sreg) = c.sreg {
                    let k = keys::ct_by_key(key);
                    let name = k.map(|k| k.name).unwrap_or("unknown");
                    let v = self.value_text(sreg, k.map(|k| self.key_vt(k)));
                    let d = dir
                        .and_then(keys::ct_dir_name)
                        .map(|d| format!("{d} "))
                        .unwrap_or_default();
                    self.push_action(format!("ct {d}{name} set {v}"));
                }
            }
            Expr::Immediate(im) => {
                let dreg = im.dreg.unwrap_or(0);
                match &im.data {
                    Some(Data::Verdict(v)) => {
                        let t = self.verdict_text(v);
                        self.push(t);
                    }
                    Some(Data::Value(b)) => {
                        let mut r = Reg::new(
                            value::hex(&b.0),
                            &dt::INTEGER,
                            ByteOrder::Big,
                            b.0.len() as u32,
                        );
                        r.constant = Some(b.to_vec());
                        self.set_reg(dreg, r);
                    }
                    _ => self.push("immediate".into()),
                }
            }
            Expr::Bitwise(b) => self.bitwise(b),
            Expr::Cmp(c) => self.cmp(c),
            Expr::Range(r) => {
                let sreg = r.sreg.unwrap_or(0);
                if let Some(reg) = self.get_reg(sreg, None) {
                    let from = r.from.as_ref().and_then(Data::as_value).unwrap_or(&[]);
                    let to = r.to.as_ref().and_then(Data::as_value).unwrap_or(&[]);
                    let neg = matches!(r.op, Some(crate::expr::range::RangeOp::Neq));
                    let text = format!(
                        "{}{} {}-{}",
                        reg.text,
                        if neg { " !=" } else { "" },
                        self.fmt_range(&reg, from),
                        self.fmt_range(&reg, to)
                    );
                    self.push(text);
                }
            }
            Expr::Lookup(l) => self.lookup(l),
            Expr::Byteorder(b) => {
                // Host-order conversions nft inserts before hashing or
                // comparing: the value keeps its meaning.
                if let (Some(s), Some(d)) = (b.sreg, b.dreg) {
                    if let Some(mut r) = self.get_reg(s, None) {
                        r.vt.byteorder = match r.vt.byteorder {
                            ByteOrder::Big => ByteOrder::Host,
                            ByteOrder::Host => ByteOrder::Big,
                        };
                        self.set_reg(d, r);
                    }
                }
            }
            e => return stmt::statement(self, exprs, e),
        }
        1
    }

    pub fn key_vt(&self, k: &keys::Key) -> ValueType {
        ValueType {
            dtype: k.dtype,
            byteorder: k.dtype.byteorder,
            bits: k.bits,
        }
    }
}

fn layer_of(base: PayloadBase) -> Layer {
    match base {
        PayloadBase::LinkLayer => Layer::Link,
        PayloadBase::Network => Layer::Network,
        _ => Layer::Transport,
    }
}

/// `@nh,16,8`-style raw payload text (bit offset and length).
fn raw_text(base: PayloadBase, boff: u32, blen: u32) -> String {
    let b = match base {
        PayloadBase::LinkLayer => "ll",
        PayloadBase::Network => "nh",
        PayloadBase::Transport => "th",
        PayloadBase::Inner => "ih",
        _ => "?",
    };
    format!("@{b},{boff},{blen}")
}

/// The contiguous run of set bits in `mask`: (first bit from the left, count).
fn mask_bits(mask: &[u8]) -> Option<(u32, u32)> {
    let n = int_of(mask, ByteOrder::Big);
    if n == 0 {
        return None;
    }
    let total = mask.len() as u32 * 8;
    let lz = n.leading_zeros() - (128 - total);
    let ones = n.count_ones();
    let tz = n.trailing_zeros();
    (lz + ones + tz == total).then_some((lz, ones))
}

/// nft's text for a verdict.
pub fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Continue => "continue".into(),
        Verdict::Break => "break".into(),
        Verdict::Return => "return".into(),
        Verdict::Jump(c) => format!("jump {c}"),
        Verdict::Goto(c) => format!("goto {c}"),
        Verdict::Other(o) => match &o.chain {
            Some(c) => format!("verdict {} {c}", o.code),
            None if o.code as u32 & 0xffff == NF_QUEUE => "queue".into(),
            None => format!("verdict {}", o.code),
        },
    }
}

/// The exthdr table entry and field for a kernel exthdr load.
pub(super) fn exthdr_field(
    op: exthdr::ExthdrOp,
    ty: u8,
    off: u32,
    len: u32,
) -> Option<(&'static exthdr::Exthdr, &'static header::Field)> {
    exthdr::field_at(op, ty, off * 8, len * 8)
}
