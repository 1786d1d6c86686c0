//! Matches: comparisons (plain, masked, ranges, prefixes, flags),
//! bitwise operations on loaded values, and set and map lookups.

use crate::expr::bitwise::BitwiseOp;
use crate::expr::cmp::CmpOp;
use crate::expr::Data;
use crate::proto::datatype as dt;
use crate::proto::{exthdr, ByteOrder, Format};

use crate::sys::*;

use super::decompiler::Decompiler;
use super::regs::{int_of, layer_of, mask_bits, raw_text, Reg};
use super::set as pset;
use super::value::{self, ValueType};

impl<'a> Decompiler<'a> {
    pub(super) fn bitwise(&mut self, b: &crate::expr::bitwise::Bitwise) {
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
                    // Bits cleared then set are `x & m | v`, as nft lists
                    // them: the kernel's mask also clears the bits set
                    // (`& 0xfffffcff | 0xc00` loads as mask 0xfffff0ff),
                    // and nft lists the mask with them put back.
                    let shown = if m & x == 0 { m | x } else { m };
                    let (ms, xs) = (
                        value::number(shown, r.vt, self.opts),
                        value::number(x, r.vt, self.opts),
                    );
                    r.text = if m & x == 0 {
                        format!("{} & {ms} | {xs}", r.text)
                    } else {
                        format!("({} & {ms}) ^ {xs}", r.text)
                    };
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

    pub(super) fn cmp(&mut self, c: &crate::expr::cmp::Cmp) {
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
    pub(super) fn masked_cmp(
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
    pub(super) fn split_merged(&mut self, r: &Reg, data: &[u8], ops: &str) -> bool {
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
            // A mask not yet taken by a comparison belongs to the value
            // (`meta mark set meta mark & 0xfff0ffff`).
            (None, _) if r.mask.is_some() && !r.binop => {
                let mask = r.mask.as_deref().unwrap_or(&[]);
                let m = match r.vt.dtype.format {
                    Format::Ipv4 | Format::Ipv6 | Format::Lladdr => {
                        value::format(mask, r.vt, self.opts)
                    }
                    _ => value::number(int_of(mask, r.vt.byteorder), r.vt, self.opts),
                };
                format!("{} & {m}", r.text)
            }
            _ => r.text,
        }
    }

    pub(super) fn lookup(&mut self, l: &crate::expr::lookup::Lookup) {
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
        // `flags & (a | b) == { ... }`: the `==` only before a set; maps
        // follow the masked key directly.
        let eq = if l.dreg.is_none() { " ==" } else { "" };
        let lhs = if let (Some(mask), false) = (&r.mask, r.binop) {
            let m = int_of(mask, r.vt.byteorder);
            if r.vt.dtype.format == Format::Bitmask {
                format!("{} & ({}){eq}", r.text, value::flags(m, r.vt.dtype, " | "))
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
