//! Expressions → nft statements: follows values through registers,
//! recognises nft's expression patterns (load + cmp, load + bitwise +
//! cmp, lookups, immediates feeding nat/set statements), and drops the
//! protocol dependencies nft adds on its own.

use crate::expr::payload::PayloadBase;
use crate::expr::{Data, Expr, Verdict};
use crate::proto::datatype as dt;
use crate::proto::{keys, ByteOrder};
use crate::sys::*;

use super::decompiler::Decompiler;
use super::regs::{layer_of, raw_text, verdict, Reg};
use super::stmt;
use super::value;

impl<'a> Decompiler<'a> {
    pub(super) fn run(mut self) -> String {
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
    pub(super) fn verdict_text(&self, v: &Verdict) -> String {
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

    pub(super) fn step(&mut self, exprs: &[Expr]) -> usize {
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
}
