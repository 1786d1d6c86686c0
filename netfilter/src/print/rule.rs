//! Expressions → nft statements: follows values through registers,
//! recognises nft's expression patterns (load + cmp, load + bitwise +
//! cmp, lookups, immediates feeding nat/set statements), and drops the
//! protocol dependencies nft adds on its own.

use std::collections::HashMap;

use crate::expr::bitwise::BitwiseOp;
use crate::expr::cmp::CmpOp;
use crate::expr::payload::PayloadBase;
use crate::expr::{Data, Expr, Verdict};
use crate::model::{Family, Rule, Set, Table};
use crate::proto::datatype::{self as dt, Datatype};
use crate::proto::{exthdr, header, keys, ByteOrder, Format, Header};
use crate::sys::*;

use super::set::{self as pset, KeyLayout};
use super::value::{self, ValueType};
use super::{stmt, PrintOptions};

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

fn int_of(b: &[u8], bo: ByteOrder) -> u128 {
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

    /// Drops statement `i` as a dependency; what only it needed comes back.
    fn elide(&mut self, i: usize) {
        if i >= self.stmts.len() {
            return;
        }
        self.stmts[i].elided = true;
        for j in std::mem::take(&mut self.stmts[i].elides) {
            if let Some(s) = self.stmts.get_mut(j) {
                s.elided = false;
            }
        }
        self.pending_elides.retain(|&j| j != i);
        self.pending_elides.push(i);
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
                        r.constant = Some(b.0.clone());
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

    fn meta_reg(&mut self, key: u32) -> Reg {
        let Some(k) = keys::meta_by_key(key) else {
            return Reg::new(format!("meta {key}"), &dt::INTEGER, ByteOrder::Host, 4);
        };
        let text = if k.unqualified {
            k.name.to_string()
        } else {
            format!("meta {}", k.name)
        };
        let mut r = Reg::new(text, k.dtype, k.dtype.byteorder, k.bits.div_ceil(8));
        r.vt.bits = k.bits;
        if k.key == NFT_META_L4PROTO {
            r.defines = Some(Layer::Transport);
        }
        if matches!(k.key, NFT_META_NFPROTO | NFT_META_PROTOCOL) {
            r.defines = Some(Layer::Network);
        }
        if k.key == NFT_META_IIFTYPE {
            r.defines = Some(Layer::Link);
        }
        r
    }

    fn ct_reg(&mut self, key: u32, dir: Option<u8>) -> Reg {
        let Some(k) = keys::ct_by_key(key) else {
            return Reg::new(format!("ct {key}"), &dt::INTEGER, ByteOrder::Host, 4);
        };
        let d = dir
            .and_then(keys::ct_dir_name)
            .map(|d| format!("{d} "))
            .unwrap_or_default();
        let mut name = k.name.to_string();
        let (dtype, bits) = if matches!(key, NFT_CT_SRC | NFT_CT_DST) {
            // Printed with the family the context (or its dependency) gives.
            let net = self.ctx[Layer::Network as usize];
            if let Some(h) = net {
                self.used(Layer::Network, h);
            }
            let v6 = net.map(|h| h.name) == Some("ip6");
            name = format!("{} {}", if v6 { "ip6" } else { "ip" }, k.name);
            if v6 {
                (&dt::IPV6_ADDR, 128)
            } else {
                (&dt::IPV4_ADDR, 32)
            }
        } else {
            (k.dtype, k.bits)
        };
        let bo = if key == NFT_CT_ID {
            ByteOrder::Big
        } else {
            dtype.byteorder
        };
        let mut r = Reg::new(format!("ct {d}{name}"), dtype, bo, bits.div_ceil(8));
        r.vt.bits = bits;
        r
    }

    /// A packet load, resolved against the protocol context.
    fn payload_reg(&mut self, base: PayloadBase, off: u32, len: u32) -> Reg {
        let layer = layer_of(base);
        let (boff, blen) = (off * 8, len * 8);
        if let Some((h, f)) = self.icmp_field(layer, boff, blen) {
            return self.field_reg(h, f, len, 0);
        }
        if let Some((h, f)) = self.resolve_field(layer, boff, blen) {
            self.used(layer, h);
            return self.field_reg(h, f, len, 0);
        }
        // A load of a field's leading bytes: nft's shortcut for a prefix.
        if let Some(h) = self.ctx[layer as usize] {
            if let Some(f) = h.fields.iter().find(|f| {
                f.offset == boff
                    && f.len > blen
                    && f.len % 8 == 0
                    && f.dtype.format != Format::Bitmask
            }) {
                self.used(layer, h);
                let mut r = self.field_reg(h, f, len, 0);
                r.vt.bits = blen;
                r.prefix_of = Some(f.len / 8);
                r.raw = Some((base, off, len));
                return r;
            }
        }
        let mut r = Reg::new(
            raw_text(base, boff, blen),
            &dt::BITMASK,
            ByteOrder::Big,
            len,
        );
        r.raw = Some((base, off, len));
        r
    }

    /// `load; bitwise (& keep) ^ new; write back`: how nft sets a field
    /// narrower than the bytes it lives in. Prints `FIELD set VALUE`.
    fn mangled_set(&mut self, sreg: u32, base: PayloadBase, off: u32, len: u32) -> bool {
        let Some(r) = self.get_reg(sreg, None) else {
            return false;
        };
        let Some((mask, xor)) = r.mangle.clone() else {
            return false;
        };
        if mask.len() as u32 != len {
            return false;
        }
        let inv: Vec<u8> = mask.iter().map(|b| !b).collect();
        let layer = layer_of(base);
        let field = mask_bits(&inv)
            .and_then(|(lo, n)| Some((lo, n, self.resolve_field(layer, off * 8 + lo, n)?)));
        let Some((lo, n, (h, f))) = field else {
            // No header field there: the raw bits, masked and or-ed.
            let raw = raw_text(base, off * 8, len * 8);
            // nft 1.0.6 writes the cleared bits when nothing is or-ed in,
            // else the mask with the new bits.
            let (m, x) = (int_of(&mask, ByteOrder::Big), int_of(&xor, ByteOrder::Big));
            let t = if x == 0 {
                format!("{raw} set {raw} & 0x{:x}", !m & value::low_mask(len * 8))
            } else {
                format!("{raw} set {raw} & 0x{:x} | 0x{x:x}", m | x)
            };
            self.push_action(t);
            return true;
        };
        self.used(layer, h);
        let shift = len * 8 - lo - n;
        let fr = self.field_reg(h, f, len, shift);
        let v = self.fmt(&fr, &xor);
        self.push_action(format!("{} set {v}", fr.text));
        true
    }

    /// ICMP fields after the type word overlap; the type matched before
    /// tells which one is meant, and that match is then implied.
    fn icmp_field(
        &mut self,
        layer: Layer,
        boff: u32,
        blen: u32,
    ) -> Option<(&'static Header, &'static header::Field)> {
        let h = self.ctx[layer as usize].filter(|h| matches!(h.name, "icmp" | "icmpv6"))?;
        if layer != Layer::Transport || boff < 32 {
            return None;
        }
        let (ty, idx) = self.icmp_type?;
        let name = match (h.name, ty, boff, blen) {
            ("icmp", 5, 32, 32) => "gateway",
            ("icmp", 3, 48, 16) => "mtu",
            ("icmp", 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18, 32, 16) => "id",
            ("icmp", 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18, 48, 16) => "sequence",
            ("icmpv6", 2, 32, 32) => "mtu",
            ("icmpv6", 4, 32, 32) => "param-problem",
            ("icmpv6", 128 | 129, 32, 16) => "id",
            ("icmpv6", 128 | 129, 48, 16) => "sequence",
            ("icmpv6", 130..=132, 32, 16) => "max-delay",
            _ => return None,
        };
        let f = h.field(name)?;
        // The echo fields' dependency is a set of types: kept in listings.
        if !matches!(name, "id" | "sequence") {
            if let Some(s) = self.stmts.get_mut(idx) {
                s.elided = true;
            }
        }
        self.used(layer, h);
        Some((h, f))
    }

    fn resolve_field(
        &self,
        layer: Layer,
        boff: u32,
        blen: u32,
    ) -> Option<(&'static Header, &'static header::Field)> {
        let ctx = self.ctx[layer as usize];
        let mut cands: Vec<&'static Header> = Vec::new();
        if let Some(h) = ctx {
            cands.push(h);
        }
        match layer {
            Layer::Link => cands.extend([&header::ETHER, &header::VLAN]),
            Layer::Transport if ctx.is_none() => cands.push(&header::TH),
            _ => {}
        }
        for h in cands {
            let off = if h.name == "vlan" {
                boff.checked_sub(self.vlan_shift)?
            } else {
                boff
            };
            if let Some(f) = h
                .fields
                .iter()
                .find(|f| f.offset == off && f.len == blen && self.allowed(h, f))
            {
                return Some((h, f));
            }
        }
        None
    }

    /// Whether `f` fits what is known about the packet (ICMP fields that
    /// share bytes depend on the ICMP type matched before).
    fn allowed(&self, h: &Header, f: &header::Field) -> bool {
        let Some((ty, _)) = self.icmp_type else {
            return true;
        };
        match (h.name, f.name) {
            ("icmp", "gateway") => ty == 5,
            ("icmp", "mtu") => ty == 3,
            ("icmpv6", "mtu") => ty == 2,
            ("icmpv6", "param-problem") => ty == 4,
            ("icmpv6", "max-delay") => (130..=132).contains(&ty),
            _ => true,
        }
    }

    fn field_reg(
        &self,
        h: &'static Header,
        f: &'static header::Field,
        len: u32,
        shift: u32,
    ) -> Reg {
        let text = format!("{} {}", h.name, f.name);
        let mut r = Reg::new(text, f.dtype, ByteOrder::Big, len);
        r.vt.bits = f.len;
        r.shift = shift;
        let is = |name: &str| f.name == name;
        r.defines = match h.name {
            "ip" | "ip6" if is("protocol") || is("nexthdr") => Some(Layer::Transport),
            "ether" if is("type") => Some(Layer::Network),
            "vlan" if is("type") => Some(Layer::Network),
            _ => None,
        };
        r
    }

    /// A header at `layer` was used: the match that established it is a
    /// dependency nft leaves out of the listing.
    fn used(&mut self, layer: Layer, h: &Header) {
        let li = layer as usize;
        if self.ctx[li].is_some_and(|c| std::ptr::eq(c, h)) {
            if let Some(d) = self.dep[li].take() {
                self.elide(d);
            }
        }
        // vlan fields live at the link layer: an `ether type vlan` match is their dependency.
        if h.name == "vlan" {
            if let Some(d) = self.dep[Layer::Link as usize].take() {
                self.elide(d);
            }
        }
        if matches!(h.name, "vlan" | "ether") {
            if let Some(d) = self.iiftype {
                self.stmts[d].elided = true;
            }
        }
        // ICMP and IGMP only exist over one network protocol.
        let net = match h.name {
            "icmp" | "igmp" => Some(&header::IP),
            "icmpv6" => Some(&header::IP6),
            _ => None,
        };
        if let Some(n) = net {
            if self.ctx[1].is_some_and(|c| std::ptr::eq(c, n)) {
                if let Some(d) = self.dep[1].take() {
                    self.elide(d);
                }
            }
        }
    }

    fn bitwise(&mut self, b: &crate::expr::bitwise::Bitwise) {
        let (Some(sreg), Some(dreg)) = (b.sreg, b.dreg) else {
            return;
        };
        let Some(mut r) = self.get_reg(sreg, None) else {
            return;
        };
        let op = b.op.unwrap_or(BitwiseOp::Bool);
        match op {
            BitwiseOp::Bool => {
                let mask = b
                    .mask
                    .as_ref()
                    .and_then(Data::as_value)
                    .unwrap_or(&[])
                    .to_vec();
                let xor = b
                    .xor
                    .as_ref()
                    .and_then(Data::as_value)
                    .unwrap_or(&[])
                    .to_vec();
                let zero_xor = xor.iter().all(|&x| x == 0);
                if r.prefix_of.take().is_some() {
                    if let Some((base, off, len)) = r.raw {
                        r.text = raw_text(base, off * 8, len * 8);
                        r.vt = ValueType {
                            dtype: &dt::BITMASK,
                            byteorder: ByteOrder::Big,
                            bits: len * 8,
                        };
                        r.defines = None;
                    }
                }
                if zero_xor && mask.iter().all(|&x| x == 0xff) {
                    self.set_reg(dreg, r);
                    return;
                }
                if r.raw.is_some() {
                    r.mangle = Some((mask.clone(), xor.clone()));
                    if !zero_xor {
                        self.set_reg(dreg, r);
                        return;
                    }
                }
                // A raw load narrowed by a mask: a sub-byte field.
                if let (Some((base, off, len)), true) = (r.raw, zero_xor) {
                    if let Some((lo, n)) = mask_bits(&mask) {
                        let layer = layer_of(base);
                        let boff = off * 8 + lo;
                        if let Some((h, f)) = self.resolve_field(layer, boff, n) {
                            self.used(layer, h);
                            let shift = len * 8 - lo - n;
                            let mut nr = self.field_reg(h, f, len, shift);
                            nr.mangle = r.mangle.clone();
                            nr.raw = None;
                            self.set_reg(dreg, nr);
                            return;
                        }
                    }
                }
                // An exthdr load narrowed by a mask: a sub-byte option field.
                if let (Some((op, ty, off)), true) = (r.exthdr, zero_xor) {
                    if let Some((lo, n)) = mask_bits(&mask) {
                        if let Some((h, f)) = exthdr::field_at(op, ty, off * 8 + lo, n) {
                            let name = match op {
                                exthdr::ExthdrOp::Ipv6 => format!("{} {}", h.name, f.name),
                                _ => format!("{} {} {}", op.prefix(), h.name, f.name),
                            };
                            let mut nr = Reg::new(name, f.dtype, ByteOrder::Big, r.len);
                            nr.vt.bits = f.len;
                            nr.shift = r.len * 8 - lo - n;
                            self.set_reg(dreg, nr);
                            return;
                        }
                    }
                }
                let bits = r.len * 8;
                let all = vec![0xffu8; mask.len()];
                let m = int_of(&mask, r.vt.byteorder);
                let x = int_of(&xor, r.vt.byteorder);
                let full = value::low_mask(bits);
                let operand = |n: u128, b: &[u8]| match r.vt.dtype.format {
                    Format::Ipv4 | Format::Ipv6 | Format::Lladdr => {
                        value::format(b, r.vt, self.opts)
                    }
                    _ => value::number(n, r.vt, self.opts),
                };
                if zero_xor && r.binop {
                    r.text = format!("{} & {}", r.text, operand(m, &mask));
                    self.set_reg(dreg, r);
                    return;
                }
                if zero_xor && mask != all {
                    // Address prefix or plain `&` mask: decided at the cmp.
                    r.mask = Some(mask);
                } else if mask == all && !zero_xor {
                    r.text = format!("{} ^ {}", r.text, value::number(x, r.vt, self.opts));
                    r.binop = true;
                } else if m & x == 0 && (m | x) == full {
                    r.text = format!("{} | {}", r.text, value::number(x, r.vt, self.opts));
                    r.binop = true;
                } else if !zero_xor {
                    r.text = format!(
                        "({} & {}) ^ {}",
                        r.text,
                        value::number(m, r.vt, self.opts),
                        value::number(x, r.vt, self.opts)
                    );
                    r.binop = true;
                }
                self.set_reg(dreg, r);
            }
            BitwiseOp::Lshift | BitwiseOp::Rshift => {
                let n = b
                    .data
                    .as_ref()
                    .and_then(Data::as_value)
                    .map(|v| int_of(v, ByteOrder::Host))
                    .unwrap_or(0);
                let sym = if op == BitwiseOp::Lshift { "<<" } else { ">>" };
                // A right shift aligning a sub-byte field adds nothing to print.
                if op == BitwiseOp::Rshift && r.shift as u128 == n && !r.binop {
                    r.shift = 0;
                    r.aligned = n as u32;
                    self.set_reg(dreg, r);
                    return;
                }
                r.text = if r.binop {
                    format!("({}) {sym} {n}", r.text)
                } else {
                    format!("{} {sym} {n}", r.text)
                };
                r.binop = true;
                self.set_reg(dreg, r);
            }
            _ => {
                self.set_reg(dreg, r);
            }
        }
    }

    /// Formats one end of a range.
    pub fn fmt_range(&self, reg: &Reg, b: &[u8]) -> String {
        if matches!(
            reg.vt.dtype.format,
            Format::Ipv4 | Format::Ipv6 | Format::Lladdr | Format::String
        ) {
            return self.fmt(reg, b);
        }
        let n = value::shr(int_of(b, reg.vt.byteorder), reg.shift);
        value::range_end(n, reg.vt, self.opts)
    }

    /// Formats a value held for `reg`'s expression.
    pub fn fmt(&self, reg: &Reg, b: &[u8]) -> String {
        if reg.shift > 0 || reg.vt.bits < reg.len * 8 && reg.vt.dtype.format != Format::String {
            let n = value::shr(int_of(b, reg.vt.byteorder), reg.shift);
            let n = n & value::low_mask(reg.vt.bits);
            return value::number(n, reg.vt, self.opts);
        }
        value::format(b, reg.vt, self.opts)
    }

    fn cmp(&mut self, c: &crate::expr::cmp::Cmp) {
        let Some(sreg) = c.sreg else { return };
        let data = c
            .data
            .as_ref()
            .and_then(Data::as_value)
            .unwrap_or(&[])
            .to_vec();
        let Some(r) = self.get_reg(sreg, Some(data.len() as u32)) else {
            return;
        };
        let op = c.op.unwrap_or(CmpOp::Eq);
        let ops = match op {
            CmpOp::Eq => "",
            CmpOp::Neq => "!= ",
            CmpOp::Lt => "< ",
            CmpOp::Lte => "<= ",
            CmpOp::Gt => "> ",
            CmpOp::Gte => ">= ",
            CmpOp::Unknown(_) => "?? ",
        };
        // Concatenation compared with one value.
        if !r.parts.is_empty() {
            let v = pset::format_key(self, &r.layout(), &data);
            self.push(format!("{} {ops}{v}", r.text));
            return;
        }
        // Adjacent fields loaded at once (nft merges them): one match each.
        if matches!(op, CmpOp::Eq | CmpOp::Neq)
            && r.raw.is_some()
            && r.mask.is_none()
            && self.split_merged(&r, &data, ops)
        {
            return;
        }
        // Only the leading bytes compared: a prefix of the whole field.
        let full = r.prefix_of.unwrap_or(r.len);
        if full > data.len() as u32
            && matches!(op, CmpOp::Eq | CmpOp::Neq)
            && !data.is_empty()
            && r.vt.dtype.format != Format::String
        {
            let mut padded = data.clone();
            padded.resize(full as usize, 0);
            let mut fr = r.clone();
            fr.len = full;
            fr.vt.bits = full * 8;
            let t = format!(
                "{} {ops}{}/{}",
                r.text,
                self.fmt(&fr, &padded),
                data.len() * 8
            );
            self.push(t);
            return;
        }
        let is_bitmask = r.vt.dtype.format == Format::Bitmask && !r.vt.dtype.symbols.is_empty();
        if let Some(mask) = r.mask.clone() {
            self.masked_cmp(&r, op, ops, &mask, &data, is_bitmask);
            return;
        }
        let vtext = if is_bitmask {
            let v = int_of(&data, r.vt.byteorder);
            let all: u64 = r.vt.dtype.symbols.iter().fold(0, |a, s| a | s.value);
            if v as u64 == all && r.vt.dtype.symbols.len() > 1 {
                format!("0x{v:x}")
            } else {
                self.fmt(&r, &data)
            }
        } else {
            self.fmt(&r, &data)
        };
        // `x >= a` then `x <= b` is how nft writes the range `x a-b`.
        if op == CmpOp::Lte {
            if let Some((idx, text, lo)) = self.last_gte.take() {
                if text == r.text && idx + 1 == self.stmts.len() {
                    let hi = self.fmt_range(&r, &data);
                    self.stmts[idx].text = format!("{text} {lo}-{hi}");
                    return;
                }
            }
        }
        let ops = if is_bitmask && op == CmpOp::Eq {
            "== "
        } else {
            ops
        };
        let text = if r.binop && op == CmpOp::Eq {
            format!("{} == {vtext}", r.text)
        } else {
            format!("{} {ops}{vtext}", r.text)
        };
        self.push(text);
        if op == CmpOp::Gte {
            let lo = self.fmt_range(&r, &data);
            self.last_gte = Some((self.stmts.len() - 1, r.text.clone(), lo));
        }
        if op == CmpOp::Eq {
            if matches!(r.text.as_str(), "icmp type" | "icmpv6 type") {
                let t = int_of(&data, ByteOrder::Big) as u8;
                self.icmp_type = Some((t, self.stmts.len() - 1));
            }
            if let Some(layer) = r.defines {
                self.define(layer, &r, &data);
            }
        }
    }

    /// `load & mask OP value`: flags, prefixes, or a plain masked match.
    fn masked_cmp(
        &mut self,
        r: &Reg,
        op: CmpOp,
        ops: &str,
        mask: &[u8],
        data: &[u8],
        is_bitmask: bool,
    ) {
        let m = int_of(mask, r.vt.byteorder);
        let v = int_of(data, r.vt.byteorder);
        if is_bitmask {
            let d = r.vt.dtype;
            let text = match op {
                CmpOp::Neq if v == 0 => format!("{} {}", r.text, value::flags(m, d, ",")),
                CmpOp::Eq if v == 0 => format!("{} ! {}", r.text, value::flags(m, d, ",")),
                CmpOp::Eq | CmpOp::Neq if v == m && m.count_ones() == 1 => format!(
                    "{} & {} {}= {}",
                    r.text,
                    value::flags(m, d, " | "),
                    if op == CmpOp::Eq { "=" } else { "!" },
                    value::flags(v, d, " | ")
                ),
                _ => format!(
                    "{} {ops}{} / {}",
                    r.text,
                    value::flags(v, d, ","),
                    value::flags(m, d, ",")
                ),
            };
            self.push(text);
            return;
        }
        if r.vt.dtype.name == "ct_label" && v == 0 {
            let neg = if op == CmpOp::Eq { "! " } else { "" };
            let t = format!("{} {neg}{}", r.text, value::number(m, r.vt, self.opts));
            self.push(t);
            return;
        }
        let bits = mask.len() as u32 * 8;
        let plen = {
            let ones = m.count_ones();
            let full = value::low_mask(bits);
            let pm = full & !value::low_mask(bits.saturating_sub(ones));
            (m == pm).then_some(ones)
        };
        if let (Some(plen), None) = (plen, r.raw) {
            let t = format!("{} {ops}{}/{plen}", r.text, self.fmt(r, data));
            self.push(t);
            return;
        }
        let mt = match r.vt.dtype.format {
            Format::Ipv4 | Format::Ipv6 | Format::Lladdr | Format::String => {
                value::format(mask, r.vt, self.opts)
            }
            _ => value::number(m, r.vt, self.opts),
        };
        let eq = if op == CmpOp::Eq { "== " } else { ops };
        let t = format!("{} & {mt} {eq}{}", r.text, self.fmt(r, data));
        self.push(t);
    }

    /// A raw load spanning whole adjacent fields of the header in
    /// context, compared for equality: prints one match per field.
    fn split_merged(&mut self, r: &Reg, data: &[u8], ops: &str) -> bool {
        let Some((base, off, len)) = r.raw else {
            return false;
        };
        let layer = layer_of(base);
        let Some(h) = self.ctx[layer as usize] else {
            return false;
        };
        let (mut at, end) = (off * 8, (off + len) * 8);
        let mut parts = Vec::new();
        while at < end {
            let Some(f) = h
                .fields
                .iter()
                .filter(|f| {
                    f.offset == at && f.len % 8 == 0 && at + f.len <= end && self.allowed(h, f)
                })
                .max_by_key(|f| f.len)
            else {
                return false;
            };
            parts.push(f);
            at += f.len;
        }
        if parts.len() < 2 {
            return false;
        }
        self.used(layer, h);
        for f in parts {
            let o = ((f.offset - off * 8) / 8) as usize;
            let fr = self.field_reg(h, f, f.len / 8, 0);
            let Some(part) = data.get(o..o + (f.len / 8) as usize) else {
                continue;
            };
            let v = self.fmt(&fr, part);
            self.push(format!("{} {ops}{v}", fr.text));
            if let (Some(l), "") = (fr.defines, ops) {
                self.define(l, &fr, part);
            }
        }
        true
    }

    /// An equality match on a protocol-selecting expression: sets the
    /// context for the next layer and remembers the statement as a
    /// possible dependency.
    fn define(&mut self, layer: Layer, r: &Reg, data: &[u8]) {
        let v = int_of(data, r.vt.byteorder);
        let h = match layer {
            Layer::Transport => header::by_ip_protocol(v as u8),
            Layer::Network => {
                if r.vt.dtype.id == dt::NFPROTO.id {
                    match v {
                        2 => Some(&header::IP),
                        10 => Some(&header::IP6),
                        _ => None,
                    }
                } else {
                    header::by_ether_type(v as u16)
                }
            }
            // `meta iiftype ether` guards link-layer header matches.
            Layer::Link => (v == 1).then_some(&header::ETHER),
        };
        let idx = self.stmts.len() - 1;
        // Any other transport protocol still has ports at the usual place.
        let h = match (layer, h) {
            (Layer::Transport, None) => Some(&header::TH),
            (_, h) => h,
        };
        match h {
            Some(h) if layer == Layer::Link => {
                self.ctx[0] = Some(h);
                self.dep[0] = Some(idx);
                self.iiftype = Some(idx);
            }
            Some(h) if h.name == "vlan" => {
                if r.text == "vlan type" {
                    self.vlan_shift += 32;
                }
                self.dep[Layer::Link as usize] =
                    (v == 0x8100 && r.text == "ether type").then_some(idx);
            }
            Some(h) => {
                let prev = self.ctx[layer as usize];
                let changed = prev.is_some_and(|c| !std::ptr::eq(c, h));
                self.ctx[layer as usize] = Some(h);
                // nft's own dependency there is `meta l4proto`: an explicit
                // `ip protocol` stays in the listing.
                let explicit = matches!(r.text.as_str(), "ip protocol" | "ip6 nexthdr")
                    && matches!(self.family, Family::Inet | Family::Bridge | Family::Netdev);
                self.dep[layer as usize] = (!explicit).then_some(idx);
                // A new network protocol resets the transport context.
                if layer == Layer::Network && changed {
                    self.ctx[Layer::Transport as usize] = None;
                    self.dep[Layer::Transport as usize] = None;
                }
            }
            None => {}
        }
    }

    /// Marks the dependency for `layer` as elided if `h` is what it set.
    pub fn use_header(&mut self, layer: Layer, h: &Header) {
        self.used(layer, h);
    }

    /// The protocol header in context at `layer`.
    pub fn context(&self, layer: Layer) -> Option<&'static Header> {
        self.ctx[layer as usize]
    }

    /// Text of the value in `sreg`, typed as `vt` when it is a constant.
    pub fn value_text(&mut self, sreg: u32, vt: Option<ValueType>) -> String {
        let Some(r) = self.get_reg(sreg, None) else {
            return "?".into();
        };
        match (&r.constant, vt) {
            (Some(c), Some(vt)) => {
                let tmp = Reg { vt, ..r.clone() };
                let mut tmp = tmp;
                tmp.shift = 0;
                tmp.len = c.len() as u32;
                self.fmt(&tmp, c)
            }
            _ => r.text,
        }
    }

    fn lookup(&mut self, l: &crate::expr::lookup::Lookup) {
        let Some(sreg) = l.sreg else { return };
        let name = l.set.clone().unwrap_or_default();
        let set = self.find_set(&name);
        let key_len = set.map(|s| s.key_len);
        let Some(r) = self.get_reg(sreg, key_len) else {
            return;
        };
        let inv = l.flags.unwrap_or(0) & NFT_LOOKUP_F_INV != 0;
        let neg = if inv { "!= " } else { "" };
        let body = match set {
            Some(s) if s.is_anonymous() => pset::anon_elements(self, s, &r),
            _ => format!("@{name}"),
        };
        // `icmp type { echo-request, echo-reply }`: what follows is an echo field.
        if matches!(r.text.as_str(), "icmp type" | "icmpv6 type") && l.dreg.is_none() && !inv {
            let first = set
                .and_then(|s| s.elements.first())
                .and_then(|e| e.key.as_ref())
                .and_then(|k| k.0.first().copied());
            if let Some(t) = first {
                self.icmp_type = Some((t, usize::MAX));
            }
        }
        let lhs = if let (Some(mask), false) = (&r.mask, r.binop) {
            let m = int_of(mask, r.vt.byteorder);
            if r.vt.dtype.format == Format::Bitmask {
                format!("{} & ({}) ==", r.text, value::flags(m, r.vt.dtype, " | "))
            } else if matches!(
                r.vt.dtype.format,
                Format::Ipv4 | Format::Ipv6 | Format::Lladdr
            ) {
                format!("{} & {}", r.text, value::format(mask, r.vt, self.opts))
            } else {
                format!("{} & {}", r.text, value::number(m, r.vt, self.opts))
            }
        } else {
            r.text.clone()
        };
        match l.dreg {
            Some(0) => self.push(format!("{lhs} {neg}vmap {body}")),
            Some(dreg) => {
                let dlen = set.and_then(|s| s.data_len).unwrap_or(4);
                let dtype = set
                    .and_then(|s| dt::by_id(s.data_type?))
                    .unwrap_or(&dt::INTEGER);
                let mut m = Reg::new(format!("{lhs} map {body}"), dtype, dtype.byteorder, dlen);
                m.binop = true;
                self.set_reg(dreg, m);
            }
            None => self.push(format!("{lhs} {neg}{body}")),
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
        Verdict::Other { code, chain, .. } => match chain {
            Some(c) => format!("verdict {code} {c}"),
            None if *code as u32 & 0xffff == NF_QUEUE => "queue".into(),
            None => format!("verdict {code}"),
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
