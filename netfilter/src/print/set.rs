//! Set and map elements → `{ a, b-c, d : accept }`, typed by the
//! expression that looks them up (or the set's declared type).

use crate::expr::Data;
use crate::model::{Element, Set};
use crate::proto::{ByteOrder, Format};
use crate::sys::*;

use super::rule::{verdict, Decompiler, Reg};
use super::value::{self, ValueType};
use super::PrintOptions;

/// How a key splits into fields: (type, byte length, right shift) each,
/// every field padded to a multiple of 4 bytes in the key.
#[derive(Clone, Debug)]
pub struct KeyLayout(pub Vec<(ValueType, u32, u32)>);

impl KeyLayout {
    fn fields<'b>(&self, b: &'b [u8]) -> Vec<&'b [u8]> {
        if self.0.len() == 1 {
            return vec![b];
        }
        let mut out = Vec::with_capacity(self.0.len());
        let mut at = 0usize;
        for (_, len, _) in &self.0 {
            let end = (at + *len as usize).min(b.len());
            out.push(&b[at.min(b.len())..end]);
            at += len.next_multiple_of(4) as usize;
        }
        out
    }
}

fn fmt_field(
    vt: ValueType,
    len: u32,
    shift: u32,
    b: &[u8],
    opts: &PrintOptions,
    flag_sep: &str,
) -> String {
    if vt.dtype.format == Format::Bitmask && !vt.dtype.symbols.is_empty() {
        let n = value::to_uint(b, vt.byteorder) >> shift;
        return value::flags(n, vt.dtype, flag_sep);
    }
    if shift > 0 || (vt.bits < len * 8 && vt.dtype.format != Format::String) {
        let n = value::to_uint(b, vt.byteorder) >> shift;
        let n = if vt.bits < 128 {
            n & ((1u128 << vt.bits) - 1)
        } else {
            n
        };
        return value::number(n, vt, opts);
    }
    value::format(b, vt, opts)
}

/// One key (possibly a concatenation) as text.
pub fn format_key(d: &Decompiler<'_>, layout: &KeyLayout, b: &[u8]) -> String {
    key_text(layout, b, d.opts, ",")
}

fn key_text(layout: &KeyLayout, b: &[u8], opts: &PrintOptions, sep: &str) -> String {
    layout
        .fields(b)
        .iter()
        .zip(&layout.0)
        .map(|(f, (vt, len, shift))| fmt_field(*vt, *len, *shift, f, opts, sep))
        .collect::<Vec<_>>()
        .join(" . ")
}

/// `lo-hi` of one field, as a prefix for addresses when it is one.
fn range_text(
    vt: ValueType,
    len: u32,
    shift: u32,
    lo: &[u8],
    hi: &[u8],
    opts: &PrintOptions,
) -> String {
    if lo == hi {
        return fmt_field(vt, len, shift, lo, opts, ",");
    }
    if matches!(vt.dtype.format, Format::Ipv4 | Format::Ipv6) && lo.len() == hi.len() {
        let a = value::to_uint(lo, ByteOrder::Big);
        let b = value::to_uint(hi, ByteOrder::Big);
        let bits = lo.len() as u32 * 8;
        let x = a ^ b;
        let host = 128 - x.leading_zeros();
        let ones = if host == 0 { 0 } else { (1u128 << host) - 1 };
        if x == ones && a & ones == 0 && b & ones == ones {
            return format!("{}/{}", value::format(lo, vt, opts), bits - host);
        }
    }
    let end = |b: &[u8]| match vt.dtype.format {
        Format::Ipv4 | Format::Ipv6 | Format::Lladdr | Format::String => {
            fmt_field(vt, len, shift, b, opts, ",")
        }
        _ => value::range_end(value::to_uint(b, vt.byteorder) >> shift, vt, opts),
    };
    format!("{}-{}", end(lo), end(hi))
}

fn minus_one(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    for x in v.iter_mut().rev() {
        let (n, borrow) = x.overflowing_sub(1);
        *x = n;
        if !borrow {
            break;
        }
    }
    v
}

fn data_text(d: &Decompiler<'_>, set: &Set, data: &Data) -> String {
    match data {
        Data::Verdict(v) => verdict(v),
        Data::Value(b) => {
            let dtype = set
                .data_type
                .and_then(crate::proto::datatype::by_id)
                .unwrap_or(&crate::proto::datatype::INTEGER);
            if set
                .data_type
                .is_some_and(|t| t >> crate::proto::datatype::TYPE_BITS != 0)
            {
                // Concatenated data (NAT maps: address . port).
                let n = (b.0.len() / 4).max(1);
                if let Some(types) =
                    crate::proto::datatype::split_concat(set.data_type.unwrap_or(0), n.min(2))
                {
                    let layout = KeyLayout(
                        types
                            .iter()
                            .map(|t| {
                                (
                                    ValueType {
                                        dtype: t,
                                        byteorder: t.byteorder,
                                        bits: t.bits,
                                    },
                                    t.bytes(),
                                    0,
                                )
                            })
                            .collect(),
                    );
                    return key_text(&layout, &b.0, d.opts, ",");
                }
            }
            let w = dtype.bytes() as usize;
            if matches!(dtype.format, Format::Ipv4 | Format::Ipv6) && w > 0 && b.0.len() == 2 * w {
                let vt = ValueType {
                    dtype,
                    byteorder: ByteOrder::Big,
                    bits: dtype.bits,
                };
                return range_text(vt, w as u32, 0, &b.0[..w], &b.0[w..], d.opts);
            }
            let vt = ValueType {
                dtype,
                byteorder: dtype.byteorder,
                bits: if dtype.bits == 0 {
                    b.0.len() as u32 * 8
                } else {
                    dtype.bits
                },
            };
            fmt_field(vt, b.0.len() as u32, 0, &b.0, d.opts, ",")
        }
        Data::Raw(_) => "?".into(),
    }
}

/// `{ e1, e2, ... }` for an anonymous set looked up with `key`.
pub fn anon_elements(d: &Decompiler<'_>, set: &Set, key: &Reg) -> String {
    let layout = key.layout();
    let sep = " | ";
    let items = elements(d, set, &layout, sep);
    format!("{{ {} }}", items.join(", "))
}

/// The elements of `set` as nft lists them (intervals merged).
pub fn elements(d: &Decompiler<'_>, set: &Set, layout: &KeyLayout, sep: &str) -> Vec<String> {
    let opts = d.opts;
    let mut out = Vec::new();
    let with_data = |e: &Element, mut s: String| {
        if let Some(t) = e.timeout {
            s += &format!(" timeout {}", value::time_ms(t));
        }
        if let Some(c) = e.userdata.as_ref().and_then(|u| u.comment(0)) {
            s += &format!(" comment \"{c}\"");
        }
        if let Some(dat) = &e.data {
            s += &format!(" : {}", data_text(d, set, dat));
        }
        if let Some(o) = &e.objref {
            s += &format!(" : \"{o}\"");
        }
        s
    };
    let interval = set.is_interval() && layout.0.len() == 1;
    if !interval {
        for e in &set.elements {
            if e.flags.unwrap_or(0) & NFT_SET_ELEM_CATCHALL != 0 {
                out.push(with_data(e, "*".into()));
                continue;
            }
            let Some(k) = &e.key else { continue };
            let text = match &e.key_end {
                Some(end) if layout.0.len() > 1 => {
                    let lo = layout.fields(&k.0);
                    let hi = layout.fields(&end.0);
                    lo.iter()
                        .zip(hi.iter())
                        .zip(&layout.0)
                        .map(|((a, b), (vt, len, sh))| range_text(*vt, *len, *sh, a, b, opts))
                        .collect::<Vec<_>>()
                        .join(" . ")
                }
                _ => key_text(layout, &k.0, opts, sep),
            };
            out.push(with_data(e, text));
        }
        return out;
    }
    // Interval sets hold starts and (exclusive) ends; sort and pair them.
    let (vt, len, sh) = layout.0[0];
    let mut elems: Vec<&Element> = set.elements.iter().filter(|e| e.key.is_some()).collect();
    // Ends sort before starts at the same key (adjacent intervals).
    let is_start = |e: &Element| e.flags.unwrap_or(0) & NFT_SET_ELEM_INTERVAL_END == 0;
    elems.sort_by(|a, b| {
        (a.key.as_ref().map(|k| &k.0), is_start(a))
            .cmp(&(b.key.as_ref().map(|k| &k.0), is_start(b)))
    });
    let mut open: Option<&Element> = None;
    for e in elems {
        let k = &e.key.as_ref().map(|k| k.0.clone()).unwrap_or_default();
        let is_end = e.flags.unwrap_or(0) & NFT_SET_ELEM_INTERVAL_END != 0;
        if e.flags.unwrap_or(0) & NFT_SET_ELEM_CATCHALL != 0 {
            out.push(with_data(e, "*".into()));
            continue;
        }
        if is_end {
            if let Some(s) = open.take() {
                let lo = &s.key.as_ref().map(|k| k.0.clone()).unwrap_or_default();
                let hi = match &s.key_end {
                    Some(end) => end.0.clone(),
                    None => minus_one(k),
                };
                out.push(with_data(s, range_text(vt, len, sh, lo, &hi, opts)));
            }
        } else {
            if let Some(s) = open.take() {
                // A start without an end: runs to the end of the key space.
                let lo = &s.key.as_ref().map(|k| k.0.clone()).unwrap_or_default();
                let hi = match &s.key_end {
                    Some(end) => end.0.clone(),
                    None => minus_one(k),
                };
                out.push(with_data(s, range_text(vt, len, sh, lo, &hi, opts)));
            }
            open = Some(e);
        }
    }
    if let Some(s) = open {
        let lo = &s.key.as_ref().map(|k| k.0.clone()).unwrap_or_default();
        let hi = match &s.key_end {
            Some(end) => end.0.clone(),
            None => vec![0xff; lo.len()],
        };
        out.push(with_data(s, range_text(vt, len, sh, lo, &hi, opts)));
    }
    out
}
