//! The decompiler's state for one rule ([`Decompiler`]): the registers,
//! the statements printed so far and the protocol context. The modules
//! after it in `print` extend it: `deps`, `matches`, `stmt`, `rule`.

use rustc_hash::FxHashMap;

use crate::model::{Family, Rule, Set, Table};
use crate::proto::datatype as dt;
use crate::proto::{header, keys, ByteOrder, Header};

use super::options::PrintOptions;
use super::regs::{slot, Layer, Reg};
use super::value::ValueType;

pub(super) struct Stmt {
    pub(super) text: String,
    pub(super) elided: bool,
    /// Dependencies this statement made redundant (restored if it is
    /// itself dropped as a dependency).
    pub(super) elides: Vec<usize>,
}

/// Decompiles one rule.
pub(super) struct Decompiler<'a> {
    pub(super) family: Family,
    pub(super) table: &'a Table,
    pub(super) rule: &'a Rule,
    pub(super) opts: &'a PrintOptions,
    /// Tabs before this rule in a listing (for inline bound chains).
    pub(super) depth: usize,
    /// By register slot (a handful per rule: SipHash was a cost of printing).
    pub(super) regs: FxHashMap<u32, Reg>,
    pub(super) stmts: Vec<Stmt>,
    pub(super) ctx: [Option<&'static Header>; 3],
    pub(super) dep: [Option<usize>; 3],
    /// An explicit protocol match per layer (`ip protocol tcp` in an inet
    /// table): kept in listings, except before a header option of that
    /// protocol (`tcp option …`), which nft lists alone.
    pub(super) explicit_dep: [Option<usize>; 3],
    /// Last `icmp type X` / `icmpv6 type X` match: (type, statement).
    pub(super) icmp_type: Option<(u8, usize)>,
    /// The `meta iiftype ether` match, implied by any link-layer field.
    pub(super) iiftype: Option<usize>,
    /// Statements elided by the load whose match is not pushed yet.
    pub(super) pending_elides: Vec<usize>,
    /// Bits the link-layer view moved by for each `vlan type 8021q` seen (QinQ).
    pub(super) vlan_shift: u32,
    /// Last `X >= a` match, to merge with a following `X <= b` into `X a-b`.
    pub(super) last_gte: Option<(usize, String, String)>,
}

impl<'a> Decompiler<'a> {
    pub(super) fn new(
        family: Family,
        table: &'a Table,
        rule: &'a Rule,
        opts: &'a PrintOptions,
    ) -> Self {
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
            regs: FxHashMap::default(),
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

    /// Adds a match.
    pub(super) fn push(&mut self, text: String) {
        let elides = std::mem::take(&mut self.pending_elides);
        self.stmts.push(Stmt {
            text,
            elided: false,
            elides,
        });
    }

    /// Adds a statement that acts (sets, counts, mangles): nft keeps
    /// protocol matches before it, so pending dependencies end here.
    pub(super) fn push_action(&mut self, text: String) {
        self.dep = [None; 3];
        self.iiftype = None;
        self.push(text);
    }

    pub(super) fn set_reg(&mut self, reg: u32, r: Reg) {
        self.regs.insert(slot(reg), r);
    }

    /// The value in `reg`; concatenations are gathered when `len` spans
    /// several registers.
    pub(super) fn get_reg(&mut self, reg: u32, len: Option<u32>) -> Option<Reg> {
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
    pub(super) fn rule_owns(&self, name: &str) -> bool {
        self.rule.sets.iter().any(|s| s.name == name)
    }

    /// The set a lookup names (anonymous ones carried by the rule).
    pub(super) fn find_set(&self, name: &str) -> Option<&'a Set> {
        self.rule
            .sets
            .iter()
            .find(|s| s.name == name)
            .or_else(|| self.table.set(name))
    }

    pub(super) fn key_vt(&self, k: &keys::Key) -> ValueType {
        ValueType {
            dtype: k.dtype,
            byteorder: k.dtype.byteorder,
            bits: k.bits,
        }
    }
}
