//! Set and map elements → `{ a, b-c, d : accept }`, typed by the
//! expression that looks them up (or the set's declared type).

use crate::expr::Data;
use crate::model::{Element, Set};
use crate::proto::{ByteOrder, Format};
use crate::sys::*;

use super::decompiler::Decompiler;
use super::options::PrintOptions;
use super::regs::{int_of, verdict, KeyLayout, Reg};
use super::value::{self, ValueType};

fn fmt_field(
    vt: ValueType,
    len: u32,
    shift: u32,
    b: &[u8],
    opts: &PrintOptions,
    flag_sep: &str,
) -> String {
    if vt.dtype.format == Format::Bitmask && !vt.dtype.symbols.is_empty() {
        let n = value::shr(value::to_uint(b, vt.byteorder), shift);
        return value::flags(n, vt.dtype, flag_sep);
    }
    if shift > 0 || (vt.bits < len * 8 && vt.dtype.format != Format::String) {
        let n = value::shr(value::to_uint(b, vt.byteorder), shift);
        let n = n & value::low_mask(vt.bits);
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
    // Names sharing a prefix (`"eth*"`): the prefix padded with 0 to 0xff.
    if vt.dtype.format == Format::String {
        let p = lo.iter().zip(hi).take_while(|(a, b)| a == b).count();
        if lo[p..].iter().all(|&c| c == 0) && hi[p..].iter().all(|&c| c == 0xff) {
            return value::string(&lo[..p]);
        }
    }
    if matches!(vt.dtype.format, Format::Ipv4 | Format::Ipv6) && lo.len() == hi.len() {
        let a = value::to_uint(lo, ByteOrder::Big);
        let b = value::to_uint(hi, ByteOrder::Big);
        let bits = lo.len() as u32 * 8;
        let x = a ^ b;
        let host = 128 - x.leading_zeros();
        let ones = value::low_mask(host);
        if x == ones && a & ones == 0 && b & ones == ones {
            return format!("{}/{}", value::format(lo, vt, opts), bits - host);
        }
    }
    let end = |b: &[u8]| match vt.dtype.format {
        Format::Ipv4 | Format::Ipv6 | Format::Lladdr | Format::String => {
            fmt_field(vt, len, shift, b, opts, ",")
        }
        _ => value::range_end(value::shr(value::to_uint(b, vt.byteorder), shift), vt, opts),
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
            let id = set.data_type.unwrap_or(0);
            let n = crate::proto::datatype::concat_len(id);
            if n > 1 {
                // Concatenated data (NAT maps: address . port); twice as
                // long when it holds ranges: all minimums, then all maximums.
                if let Some(types) = crate::proto::datatype::split_concat(id, n) {
                    let layout = KeyLayout(
                        types
                            .iter()
                            .map(|t| {
                                let vt = ValueType {
                                    dtype: t,
                                    byteorder: t.byteorder,
                                    bits: t.bits,
                                };
                                (vt, t.bytes(), 0)
                            })
                            .collect(),
                    );
                    let total: usize = types
                        .iter()
                        .map(|t| t.bytes().next_multiple_of(4) as usize)
                        .sum();
                    if b.0.len() == 2 * total {
                        let (lo, hi) = b.0.split_at(total);
                        return layout
                            .fields(lo)
                            .iter()
                            .zip(layout.fields(hi))
                            .zip(&layout.0)
                            .map(|((a, z), (vt, len, sh))| range_text(*vt, *len, *sh, a, z, d.opts))
                            .collect::<Vec<_>>()
                            .join(" . ");
                    }
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
                // A NAT range of one address still prints as a range: `/32`.
                let (lo, hi) = b.0.split_at(w);
                if lo == hi {
                    return format!("{}/{}", value::format(lo, vt, d.opts), w * 8);
                }
                return range_text(vt, w as u32, 0, lo, hi, d.opts);
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
    // nft's order: statements, timeout, expires (not with `-s`), comment.
    let with_data = |e: &Element, mut s: String| {
        let x = super::stateful::inline_exprs(&e.exprs, opts);
        if !x.is_empty() {
            s += &format!(" {x}");
        }
        if let Some(t) = e.timeout {
            s += &format!(" timeout {}", value::time_ms(t));
        }
        if let Some(t) = e.expiration.filter(|_| !opts.stateless) {
            s += &format!(" expires {}", value::time_ms(t));
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
        // nft lists elements ordered by value, keys read as host-order
        // numbers; the catch-all comes last.
        let mut elems: Vec<&Element> = set.elements.iter().collect();
        // Single keys compare as numbers in their type's byte order,
        // concatenations as one host-order number.
        let big = layout.0.len() == 1 && layout.0[0].0.byteorder == ByteOrder::Big;
        let sort_key = |e: &Element| {
            let catchall = e.flags.unwrap_or(0) & NFT_SET_ELEM_CATCHALL != 0;
            let k = e.key.as_ref().map(|k| k.0.as_slice()).unwrap_or(&[]);
            let k: Vec<u8> = if big {
                k.to_vec()
            } else {
                k.iter().rev().copied().collect()
            };
            (catchall, k)
        };
        let flags = layout.0.len() == 1 && layout.0[0].0.dtype.format == Format::Bitmask;
        if flags {
            // Flag sets (`tcp flags`, `ct state`) by their first flag, as
            // nft lists them; elements with one first flag in the kernel's
            // order. nft lists those in the reverse of the kernel's order,
            // which is no fixed point: reloading its listing reverses them
            // in the kernel and the next listing differs (measured with nft
            // 1.0.6). The kernel's order reloads to the same listing.
            let first = |e: &Element| {
                let catchall = e.flags.unwrap_or(0) & NFT_SET_ELEM_CATCHALL != 0;
                let k = e.key.as_ref().map(|k| k.0.as_slice()).unwrap_or(&[]);
                let v = int_of(k, layout.0[0].0.byteorder);
                (catchall, v & v.wrapping_neg())
            };
            elems.sort_by_key(|e| first(e));
        } else if !set.elements.iter().any(|e| e.key_end.is_some()) {
            elems.sort_by_cached_key(|e| sort_key(e));
        }
        for e in elems {
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
    let mut elems: Vec<&Element> = set.elements.iter().collect();
    // Ends sort before starts at the same key (adjacent intervals).
    let is_start = |e: &Element| e.flags.unwrap_or(0) & NFT_SET_ELEM_INTERVAL_END == 0;
    elems.sort_by(|a, b| {
        (a.key.as_ref().map(|k| &k.0), is_start(a))
            .cmp(&(b.key.as_ref().map(|k| &k.0), is_start(b)))
    });
    let mut open: Option<&Element> = None;
    let mut catchall = Vec::new();
    // Closes the interval started by `s` just before `next` (or at the
    // end of the key space): `[start, next - 1]`.
    let close = |s: &Element, next: Option<&[u8]>| {
        let lo = s.key.as_ref().map(|k| k.0.as_slice()).unwrap_or(&[]);
        let hi = match (&s.key_end, next) {
            (Some(end), _) => end.to_vec(),
            (None, Some(n)) => minus_one(n),
            (None, None) => vec![0xff; lo.len()],
        };
        with_data(s, range_text(vt, len, sh, lo, &hi, opts))
    };
    for e in elems {
        let k = e.key.as_ref().map(|k| k.0.as_slice()).unwrap_or(&[]);
        if e.flags.unwrap_or(0) & NFT_SET_ELEM_CATCHALL != 0 {
            catchall.push(with_data(e, "*".into()));
            continue;
        }
        if let Some(s) = open.take() {
            out.push(close(s, Some(k)));
        }
        if is_start(e) {
            open = Some(e);
        }
    }
    if let Some(s) = open {
        out.push(close(s, None));
    }
    out.extend(catchall);
    out
}
