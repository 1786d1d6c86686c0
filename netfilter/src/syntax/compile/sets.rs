//! Sets and maps: elements as the kernel stores them (intervals as start
//! and end-marker pairs, concatenations padded to 32-bit fields), named
//! set declarations, and the userdata nft attaches to them.

use super::emit::{self, b};
use super::fields::{self, Load, L3};
use super::types::{self, Dtype, Kind};
use super::values::{self, incr, Val};
use crate::expr::Data;
use crate::model::{Element, Family, Set, SetDesc, Table, Userdata, UDATA_COMMENT};
use crate::proto::udata as ud;
use crate::syntax::ast::{self, Elem, KeySpec};
use crate::syntax::diag::{Diagnostic, Span};
use crate::sys::*;

use crate::syntax::diag::err;
use crate::syntax::Result as R;

/// What a map's elements map to.
#[derive(Clone, Debug)]
pub enum MapData {
    Verdict,
    Value(Dtype, usize),
    /// Concatenated values (each field padded to 4 bytes).
    Concat(Vec<Dtype>, Vec<usize>),
    /// Names of stateful objects of one type.
    Object,
    /// Ranges of (concatenated) values, as NAT maps hold them: the first
    /// value's fields, then the last's; written as one concatenation.
    Interval(Vec<Dtype>, Vec<usize>),
}

impl MapData {
    /// The data type and length a set records for these values.
    pub fn type_len(&self) -> (Option<u32>, Option<u32>) {
        let layout = |d: &[Dtype], l: &[usize]| {
            let v = KeyLayout {
                dts: d,
                lens: l,
                shift: 0,
            };
            (v.type_id(), v.len())
        };
        match self {
            MapData::Verdict => (Some(NFT_DATA_VERDICT), Some(VERDICT_LEN)),
            MapData::Value(dt, len) => (Some(dt.id), Some(*len as u32)),
            MapData::Concat(d, l) => {
                let (t, n) = layout(d, l);
                (Some(t), Some(n as u32))
            }
            // First and last values, each field 32-bit padded.
            MapData::Interval(d, l) => {
                let (t, n) = layout(d, l);
                let one = if d.len() > 1 { n } else { l[0].div_ceil(4) * 4 };
                (Some(t), Some(2 * one as u32))
            }
            MapData::Object => (None, None),
        }
    }
}

/// How a named set's elements are written: key fields and value kind
/// (kept by the compiler for later `add element` commands).
#[derive(Clone, Debug)]
pub struct SetLayout {
    pub dts: Vec<Dtype>,
    pub lens: Vec<usize>,
    pub data: Option<MapData>,
    /// Elements as written so far (interval sets are re-encoded whole).
    pub written: Vec<Elem>,
}

/// A key's fields: their datatypes and byte lengths.
pub struct KeyLayout<'a> {
    pub dts: &'a [Dtype],
    pub lens: &'a [usize],
    /// Left shift of a single sub-byte field's values (`dccp type`).
    pub shift: u32,
}

impl KeyLayout<'_> {
    fn concat(&self) -> bool {
        self.dts.len() > 1
    }
    /// Register length of the whole key.
    pub fn len(&self) -> usize {
        if self.concat() {
            self.lens.iter().map(|l| l.div_ceil(4) * 4).sum()
        } else {
            self.lens[0]
        }
    }
    /// nft's set type id: concatenations shift each field's id in by 6 bits.
    pub fn type_id(&self) -> u32 {
        let c = self.concat();
        self.dts
            .iter()
            .fold(0, |acc, d| if c { (acc << 6) | d.id } else { d.id })
    }
    /// Whether interval elements are stored byte-swapped: host-order
    /// integers wider than a byte are compared as big-endian by the kernel.
    pub fn swapped(&self) -> bool {
        !self.concat() && host_order_part(&self.dts[0], self.lens[0])
    }
    /// For concatenations in interval sets, the same per part: the byte
    /// offset and length of each part stored byte-swapped.
    pub fn swapped_parts(&self) -> Vec<(usize, usize)> {
        let mut off = 0;
        let mut out = Vec::new();
        for (dt, len) in self.dts.iter().zip(self.lens) {
            if self.concat() && host_order_part(dt, *len) {
                out.push((off, *len));
            }
            off += len.div_ceil(4) * 4;
        }
        out
    }
}

/// Whether a part of a concatenated interval key is a host-order integer
/// wider than a byte, so looked up and stored byte-swapped.
pub fn host_order_part(dt: &Dtype, len: usize) -> bool {
    !dt.be && dt.kind != Kind::Str && len > 1
}

/// One element's key bytes and the end of its range (when it has one).
type Keyed<'e> = (Vec<u8>, Option<Vec<u8>>, &'e Elem);

/// Encodes `elems` for a set with key `key`. `interval` is the set's
/// declared flag (named sets) or `None` to infer it (anonymous sets).
/// Returns the elements and whether the set is an interval set.
/// `auto_merge`: the set is declared with `auto-merge`, and nft merges its
/// adjacent intervals as it does an anonymous set's.
pub fn build_elements(
    table: &Table,
    elems: &[Elem],
    key: &KeyLayout<'_>,
    data: Option<&MapData>,
    interval: Option<bool>,
    auto_merge: bool,
) -> R<(Vec<Element>, bool)> {
    let concat = key.concat();
    let mut keys: Vec<Keyed<'_>> = Vec::with_capacity(elems.len());
    let mut is_interval = interval.unwrap_or(false);
    for e in elems {
        let (k, kend, iv) = if matches!(e.key, ast::Expr::Wildcard(_)) {
            (Vec::new(), None, false)
        } else if concat {
            let parts = match &e.key {
                ast::Expr::Concat(p, _) if p.len() == key.dts.len() => p,
                other => {
                    return err(
                        other.span(),
                        format!("expected {} concatenated values", key.dts.len()),
                    )
                }
            };
            let (mut lo, mut hi) = (Vec::new(), Vec::new());
            let mut iv = false;
            for ((p, dt), len) in parts.iter().zip(key.dts).zip(key.lens) {
                let (a, z, r) = bounds(wildcard(values::value(p, dt, *len, table)?, dt, *len));
                iv |= r;
                let pad = len.div_ceil(4) * 4 - len;
                lo.extend(&a);
                lo.extend(std::iter::repeat_n(0, pad));
                hi.extend(&z);
                hi.extend(std::iter::repeat_n(0, pad));
            }
            (lo, Some(hi), iv)
        } else {
            let v = values::value_shifted(&e.key, &key.dts[0], key.lens[0], key.shift, table)?;
            let (a, z, r) = bounds(wildcard(v, &key.dts[0], key.lens[0]));
            (a, r.then_some(z), r)
        };
        if iv && interval == Some(false) {
            return err(
                e.key.span(),
                "you must add 'flags interval' to the set to hold ranges and prefixes",
            );
        }
        is_interval |= iv;
        keys.push((k, kend, e));
    }
    if is_interval && key.swapped() {
        for (k, kend, _) in keys.iter_mut() {
            k.reverse();
            if let Some(e) = kend {
                e.reverse();
            }
        }
    }
    if is_interval {
        for (off, len) in key.swapped_parts() {
            for (k, kend, _) in keys.iter_mut() {
                for v in std::iter::once(k).chain(kend.as_mut()) {
                    if let Some(part) = v.get_mut(off..off + len) {
                        part.reverse();
                    }
                }
            }
        }
    }
    let key_len = key.len();
    let mut out = Vec::with_capacity(keys.len() * 2);
    if is_interval && !concat {
        let (mut catchall, mut ivs) = (Vec::new(), Vec::with_capacity(keys.len()));
        for (k, kend, el) in keys {
            if k.is_empty() {
                catchall.push(el);
            } else {
                let hi = kend.unwrap_or_else(|| k.clone());
                ivs.push((k, hi, el));
            }
        }
        ivs.sort_by(|a, b| a.0.cmp(&b.0));
        if data.is_some() {
            if let Some(w) = ivs.windows(2).find(|w| w[1].0 <= w[0].1) {
                return err(w[1].2.span, "conflicting intervals specified");
            }
        } else {
            // Overlapping ranges of a set become one, as nft merges them;
            // in an anonymous or auto-merged set, adjacent ones too.
            let anonymous = interval.is_none() || auto_merge;
            let mut merged: Vec<(Vec<u8>, Vec<u8>, &Elem)> = Vec::with_capacity(ivs.len());
            for iv in ivs {
                match merged.last_mut() {
                    Some(last)
                        if iv.0 <= last.1
                            || (anonymous && incr(&last.1).is_some_and(|n| n == iv.0)) =>
                    {
                        if iv.1 > last.1 {
                            last.1 = iv.1;
                        }
                    }
                    _ => merged.push(iv),
                }
            }
            ivs = merged;
        }
        if ivs.first().is_some_and(|f| f.0.iter().any(|x| *x != 0)) {
            out.push(end_marker(vec![0; key_len]));
        }
        for (i, (lo, hi, el)) in ivs.iter().enumerate() {
            out.push(element(table, Some(lo), None, el, data)?);
            if let Some(next) = incr(hi) {
                // Adjacent ranges of an anonymous set or map share the
                // boundary; named ones keep each end marker, as nft sends them.
                let keep = interval.is_some();
                if keep || ivs.get(i + 1).is_none_or(|n| n.0 != next) {
                    out.push(end_marker(next));
                }
            } else if let Some(last) = out.last_mut() {
                // A range up to the last value has no end: nft marks it open.
                let mut u = last
                    .userdata
                    .take()
                    .map(|u| u.0.to_vec())
                    .unwrap_or_default();
                tlv_u32(&mut u, ud::ELEM_FLAGS, ud::ELEM_F_INTERVAL_OPEN);
                last.userdata = Some(Userdata(b(&u)));
            }
        }
        for el in catchall {
            out.push(element(table, None, None, el, data)?);
        }
    } else {
        // A key written twice is one element (nft adds it once).
        let mut seen = std::collections::HashSet::new();
        keys.retain(|(k, kend, _)| seen.insert((k.clone(), kend.clone())));
        for (k, kend, el) in &keys {
            let (k, kend) = if k.is_empty() {
                (None, None)
            } else {
                let end = (concat && is_interval).then(|| kend.as_ref().unwrap_or(k));
                (Some(k), end)
            };
            out.push(element(table, k, kend, el, data)?);
        }
    }
    Ok((out, is_interval))
}

/// In sets, a wildcard name (`"eth*"`, shorter than the key) is the
/// range of names it starts.
fn wildcard(v: Val, dt: &Dtype, len: usize) -> Val {
    match v {
        Val::Bytes(mut b) if dt.kind == Kind::Str && b.len() < len => {
            let plen = b.len() as u32 * 8;
            b.resize(len, 0);
            Val::Prefix(b, plen)
        }
        v => v,
    }
}

/// The size nft declares for an anonymous set: the elements it builds,
/// before the kernel drops some. A range open at the top had an end
/// element too; in maps of ranges every range has its own end element
/// (the kernel drops those that coincide with the next range's start).
pub fn anon_size(elements: &[Element], is_map: bool, interval: bool) -> u32 {
    let flags = |e: &Element| e.flags.unwrap_or(0);
    let end = NFT_SET_ELEM_INTERVAL_END;
    let open = |e: &Element| {
        e.userdata
            .as_ref()
            .and_then(|u| ud::get(&u.0 .0, ud::ELEM_FLAGS))
            .and_then(ud::u32_of)
            .is_some_and(|f| f & ud::ELEM_F_INTERVAL_OPEN != 0)
    };
    let opens = elements.iter().filter(|e| open(e)).count();
    // Concatenations hold ranges in one element (key and key end).
    let concat = elements.iter().any(|e| e.key_end.is_some());
    if !(is_map && interval) || concat {
        return (elements.len() + opens) as u32;
    }
    let starts = elements
        .iter()
        .filter(|e| flags(e) & (end | NFT_SET_ELEM_CATCHALL) == 0)
        .count();
    let zero = elements.first().is_some_and(|e| {
        flags(e) & end != 0 && e.key.as_ref().is_some_and(|k| k.0.iter().all(|b| *b == 0))
    });
    let catchall = elements
        .iter()
        .filter(|e| flags(e) & NFT_SET_ELEM_CATCHALL != 0)
        .count();
    (starts * 2 + zero as usize + catchall) as u32
}

/// A value's first and last key and whether it is a range.
fn bounds(v: Val) -> (Vec<u8>, Vec<u8>, bool) {
    match v {
        Val::Bytes(v) => (v.clone(), v, false),
        Val::Range(a, z) => (a, z, true),
        Val::Prefix(v, pl) => {
            let (a, z) = values::prefix_range(&v, pl);
            (a, z, true)
        }
    }
}

fn end_marker(key: Vec<u8>) -> Element {
    Element {
        key: Some(b(&key)),
        flags: Some(NFT_SET_ELEM_INTERVAL_END),
        ..Default::default()
    }
}

/// One element: key (none for the catch-all `*`), value, and its options.
fn element(
    table: &Table,
    key: Option<&Vec<u8>>,
    key_end: Option<&Vec<u8>>,
    el: &Elem,
    data: Option<&MapData>,
) -> R<Element> {
    let mut e = Element {
        key: key.map(|k| b(k)),
        key_end: key_end.map(|k| b(k)),
        flags: key.is_none().then_some(NFT_SET_ELEM_CATCHALL),
        ..Default::default()
    };
    if let Some(md) = data {
        let Some(d) = &el.data else {
            return err(el.span, "map element needs a value");
        };
        match (md, d) {
            (MapData::Verdict, ast::Expr::Verdict(v, _)) => {
                e.data = Some(Data::Verdict(emit::verdict_of(v)))
            }
            (MapData::Verdict, other) => return err(other.span(), "expected a verdict"),
            (MapData::Value(dt, len), v) => {
                e.data = Some(Data::Value(b(&single(table, v, dt, *len)?)))
            }
            (MapData::Concat(dts, lens), v) => {
                let ast::Expr::Concat(parts, _) = v else {
                    return err(v.span(), "expected concatenated values");
                };
                if parts.len() != dts.len() {
                    return err(v.span(), format!("expected {} values", dts.len()));
                }
                let mut out = Vec::new();
                for ((p, dt), len) in parts.iter().zip(dts).zip(lens) {
                    out.extend(single(table, p, dt, *len)?);
                    out.extend(std::iter::repeat_n(0, len.div_ceil(4) * 4 - len));
                }
                e.data = Some(Data::Value(b(&out)));
            }
            (MapData::Object, ast::Expr::Word(n, _) | ast::Expr::Str(n, _)) => {
                e.objref = Some(n.clone())
            }
            (MapData::Object, other) => return err(other.span(), "expected an object name"),
            (MapData::Interval(dts, lens), v) => {
                e.data = Some(Data::Value(b(&interval_data(table, v, dts, lens)?)))
            }
        }
    }
    if let Some(t) = &el.timeout {
        e.timeout = Some(
            types::parse_duration_ms(t)
                .ok_or_else(|| Diagnostic::new(el.span, format!("invalid timeout '{t}'")))?,
        );
    }
    if let Some((p, bytes)) = el.counter {
        e.exprs.push(emit::counter(p, bytes));
    }
    e.exprs.extend(super::plain::stateful(&el.stmts)?);
    if let Some(c) = &el.comment {
        e.userdata = Some(Userdata::with_comment(UDATA_COMMENT, c));
    }
    Ok(e)
}

/// A range value of a map with `interval` values (each part a value,
/// range or prefix): every part's first value, then every part's last,
/// each padded to 32 bits.
pub fn interval_data(table: &Table, v: &ast::Expr, dts: &[Dtype], lens: &[usize]) -> R<Vec<u8>> {
    let parts = match v {
        ast::Expr::Concat(p, _) if p.len() == dts.len() => p.as_slice(),
        v if dts.len() == 1 => std::slice::from_ref(v),
        v => return err(v.span(), format!("expected {} values", dts.len())),
    };
    let (mut lo, mut hi) = (Vec::new(), Vec::new());
    for ((p, dt), len) in parts.iter().zip(dts).zip(lens) {
        let (a, z, _) = bounds(values::value(p, dt, *len, table)?);
        let pad = std::iter::repeat_n(0, len.div_ceil(4) * 4 - len);
        lo.extend(a.into_iter().chain(pad.clone()));
        hi.extend(z.into_iter().chain(pad));
    }
    lo.extend(hi);
    Ok(lo)
}

fn single(table: &Table, v: &ast::Expr, dt: &Dtype, len: usize) -> R<Vec<u8>> {
    match values::value(v, dt, len, table)? {
        Val::Bytes(v) => Ok(v),
        _ => err(v.span(), "expected a single value"),
    }
}

/// A key or value spec resolved: datatypes, byte lengths, and the
/// `typeof` userdata TLV value when declared with `typeof`.
struct Spec {
    dts: Vec<Dtype>,
    lens: Vec<usize>,
    typeof_: Option<Vec<u8>>,
}

fn l3_of(fam: Family) -> Option<L3> {
    match fam {
        Family::Ip6 => Some(L3::Ip6),
        _ => Some(L3::Ip),
    }
}

fn spec(fam: Family, spec: &KeySpec, span: Span) -> R<Spec> {
    let mut dts = Vec::new();
    let mut typeof_ = None;
    match spec {
        KeySpec::Types(names) => {
            for n in names {
                dts.push(
                    types::by_name(n)
                        .ok_or_else(|| Diagnostic::new(span, format!("unknown datatype '{n}'")))?,
                );
            }
            if names.len() > 1 {
                // nft records a bare concatenation for `type a . b`.
                typeof_ = Some(udata_typeof(ud::EXPR_CONCAT, &[]));
            }
        }
        KeySpec::Typeof(exprs) => {
            let mut parts = Vec::new();
            for e in exprs {
                let ast::Expr::Sel(p, s) = e else {
                    return err(e.span(), "expected an expression");
                };
                let f = fields::field(p, l3_of(fam)).ok_or_else(|| {
                    Diagnostic::new(*s, format!("unknown expression '{}'", p.join(" ")))
                })?;
                let mut dt = f.dt;
                // Their type depends on the protocol: nft records none.
                if let Load::Ct {
                    key: NFT_CT_PROTO_SRC | NFT_CT_PROTO_DST,
                    ..
                } = f.load
                {
                    dt.id = 0;
                }
                if let Load::Payload { off, len, .. } = f.load {
                    let n = ((off + len).div_ceil(8) - off / 8) * 8;
                    dt.bits = dt.bits.max(n.min(dt.bits.max(len)));
                }
                parts.push(typeof_expr(p, &f.load, *s)?);
                dts.push(dt);
            }
            typeof_ = Some(if parts.len() == 1 {
                parts.pop().unwrap_or_default()
            } else {
                let mut data = Vec::new();
                for (i, p) in parts.iter().enumerate() {
                    tlv(&mut data, i as u8, p);
                }
                udata_typeof(ud::EXPR_CONCAT, &data)
            });
        }
        _ => return err(span, "set needs a type"),
    }
    let lens = dts.iter().map(|d| d.bytes()).collect();
    Ok(Spec { dts, lens, typeof_ })
}

/// The `typeof` TLV value nft records for a key written as `exprs`
/// (`None` when one of them is not a plain selector).
pub fn typeof_of(fam: Family, exprs: &[ast::Expr]) -> Option<Vec<u8>> {
    match spec(fam, &KeySpec::Typeof(exprs.to_vec()), Span::default()) {
        Ok(s) => s.typeof_,
        Err(_) => None,
    }
}

/// The userdata nft gives an anonymous set or map: byte orders, merge
/// flag of interval sets, the key's `typeof`, and for verdict maps a
/// verdict `typeof` for the value.
pub fn anon_udata(
    key: &KeyLayout<'_>,
    key_typeof: Option<&[u8]>,
    data: Option<&MapData>,
    interval: bool,
) -> Userdata {
    let mut u = Vec::new();
    tlv_u32(&mut u, ud::KEYBYTEORDER, byteorder(key.dts));
    match data {
        Some(MapData::Verdict) => tlv_u32(&mut u, ud::DATABYTEORDER, 0),
        Some(MapData::Value(dt, _)) => tlv_u32(
            &mut u,
            ud::DATABYTEORDER,
            byteorder(std::slice::from_ref(dt)),
        ),
        Some(MapData::Concat(..)) => tlv_u32(&mut u, ud::DATABYTEORDER, 0),
        Some(MapData::Interval(dts, _)) => {
            let order = if dts.len() == 1 { byteorder(dts) } else { 0 };
            tlv_u32(&mut u, ud::DATABYTEORDER, order)
        }
        _ => {}
    }
    // Maps' ranges are never merged: nft does not mark them.
    if interval && data.is_none() {
        tlv_u32(&mut u, ud::MERGE_ELEMENTS, 1);
    }
    // nft records the key's expressions for anonymous sets, and for
    // maps only when keyed by a concatenation.
    let records = match data {
        None => true,
        Some(MapData::Object) => false,
        Some(_) => key.concat(),
    };
    if let Some(t) = key_typeof.filter(|_| records) {
        tlv(&mut u, ud::KEY_TYPEOF, t);
    }
    if let Some(MapData::Verdict) = data {
        tlv(&mut u, ud::DATA_TYPEOF, &udata_typeof(1, &[]));
    }
    if let Some(d) = data {
        tlv_u32(
            &mut u,
            ud::DATA_INTERVAL,
            matches!(d, MapData::Interval(..)) as u32,
        );
    }
    Userdata(b(&u))
}

/// Rewrites the key byte order an anonymous set's userdata starts with.
pub fn set_key_byteorder(u: &mut Userdata, order: u32) {
    let b = &mut u.0 .0;
    if b.len() >= 6 && b[0] == ud::KEYBYTEORDER && b[1] == 4 {
        b[2..6].copy_from_slice(&order.to_ne_bytes());
    }
}

fn tlv(out: &mut Vec<u8>, ty: u8, v: &[u8]) {
    out.push(ty);
    out.push(v.len() as u8);
    out.extend_from_slice(v);
}

fn tlv_u32(out: &mut Vec<u8>, ty: u8, v: u32) {
    tlv(out, ty, &v.to_ne_bytes());
}

/// A `typeof` TLV value: the expression kind, then its data.
fn udata_typeof(kind: u32, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    tlv_u32(&mut v, ud::TYPEOF_EXPR, kind);
    tlv(&mut v, ud::TYPEOF_DATA, data);
    v
}

/// The data length the kernel reports for verdict maps (its verdict
/// struct), whatever was sent: sent too, so values compare equal.
pub const VERDICT_LEN: u32 = 16;

/// How nft records one `typeof` expression.
fn typeof_expr(path: &[String], load: &Load, span: Span) -> R<Vec<u8>> {
    use crate::proto::keys;
    use crate::proto::udata::TypeofExpr as T;
    let cannot = |yet: &str| {
        err(
            span,
            format!("'{}' cannot be used in typeof{yet}", path.join(" ")),
        )
    };
    let t = match load {
        // `@ih,32,32`: nft numbers bases from 1 (link layer).
        Load::Payload { base, off, len } if path[0] == "@" => T::RawPayload {
            base: base + 1,
            offset: *off,
            len: *len,
        },
        Load::Payload { .. } => {
            let h = crate::proto::header::by_name(&path[0]);
            match h.and_then(|h| Some((h, h.field(&path[1..].join(" "))?))) {
                Some((h, f)) => T::Payload(h, f),
                None => return cannot(""),
            }
        }
        Load::Meta(key) => match keys::meta_by_key(*key) {
            Some(k) => T::Meta(k),
            None => return cannot(""),
        },
        Load::Ct { key, dir } => match keys::ct_by_key(*key) {
            Some(k) => T::Ct(k, dir.and_then(|d| u8::try_from(d).ok())),
            None => return cannot(""),
        },
        Load::Numgen {
            mode,
            modulus,
            offset,
        } => T::Numgen {
            mode: *mode,
            modulus: *modulus,
            offset: *offset,
        },
        Load::Osf { .. } => T::Osf,
        Load::Fib { flags, result } => T::Fib {
            result: *result,
            flags: *flags,
        },
        Load::Xfrm { key, dir, spnum } => T::Xfrm {
            key: *key,
            dir: u32::from(*dir),
            spnum: *spnum,
        },
        _ => return cannot(" yet"),
    };
    Ok(crate::proto::udata::encode_typeof(&t))
}

/// nft's byte-order tag for a key or value of these types (0: none,
/// as for concatenations and verdicts).
fn byteorder(dts: &[Dtype]) -> u32 {
    match dts {
        [d] if d.kind == Kind::Verdict => 0,
        [d] if d.be && d.kind != Kind::Str => 2,
        [_] => 1,
        _ => 0,
    }
}

fn object_type(o: &str, span: Span) -> R<u32> {
    Ok(match o {
        "counter" => NFT_OBJECT_COUNTER,
        "quota" => NFT_OBJECT_QUOTA,
        "limit" => NFT_OBJECT_LIMIT,
        "ct helper" => NFT_OBJECT_CT_HELPER,
        "ct timeout" => NFT_OBJECT_CT_TIMEOUT,
        "ct expectation" => NFT_OBJECT_CT_EXPECT,
        "secmark" => NFT_OBJECT_SECMARK,
        "synproxy" => NFT_OBJECT_SYNPROXY,
        _ => return err(span, format!("unknown object type '{o}'")),
    })
}

/// A named set or map from its declaration, elements included.
pub fn named_set(fam: Family, t: &Table, d: &ast::SetDecl) -> R<(Set, SetLayout)> {
    let key = spec(fam, &d.key, d.span)?;
    let layout = KeyLayout {
        dts: &key.dts,
        lens: &key.lens,
        shift: 0,
    };
    let mut flags = 0;
    for f in &d.flags {
        flags |= match f.as_str() {
            "constant" => NFT_SET_CONSTANT,
            "interval" => NFT_SET_INTERVAL,
            "timeout" => NFT_SET_TIMEOUT,
            "dynamic" => NFT_SET_EVAL,
            _ => return err(d.span, format!("unknown set flag '{f}'")),
        };
    }
    // A default timeout makes it a set with timeouts.
    if d.timeout.is_some() {
        flags |= NFT_SET_TIMEOUT;
    }
    let mut udata = Vec::new();
    // `type inet_proto` has no byte order in nft (one byte).
    let key_order = match (&d.key, key.dts.as_slice()) {
        (KeySpec::Types(_), [t]) if t.id == types::INET_PROTO.id => 0,
        _ => byteorder(&key.dts),
    };
    tlv_u32(&mut udata, ud::KEYBYTEORDER, key_order);
    let (mut data_type, mut data_len, mut obj_type, mut md) = (None, None, None, None);
    let mut data_typeof = None;
    match (&d.data, d.is_map) {
        (Some(KeySpec::Object(o)), true) => {
            flags |= NFT_SET_OBJECT;
            obj_type = Some(object_type(o, d.span)?);
            md = Some(MapData::Object);
        }
        (Some(KeySpec::Types(n)), true) if n.len() == 1 && n[0] == "verdict" => {
            flags |= NFT_SET_MAP;
            data_type = Some(NFT_DATA_VERDICT);
            data_len = Some(VERDICT_LEN);
            tlv_u32(&mut udata, ud::DATABYTEORDER, 0);
            if matches!(d.key, KeySpec::Typeof(_)) {
                data_typeof = Some(udata_typeof(1, &[]));
            }
            md = Some(MapData::Verdict);
        }
        (Some(s), true) => {
            flags |= NFT_SET_MAP;
            let v = spec(fam, s, d.span)?;
            let vl = KeyLayout {
                dts: &v.dts,
                lens: &v.lens,
                shift: 0,
            };
            data_type = Some(vl.type_id());
            data_len = Some(vl.len() as u32);
            tlv_u32(&mut udata, ud::DATABYTEORDER, byteorder(&v.dts));
            data_typeof = v.typeof_.clone();
            md = Some(if d.data_interval {
                // Ranges: first then last value, each field 32-bit padded.
                let one: usize = v.lens.iter().map(|l| l.div_ceil(4) * 4).sum();
                data_len = Some(2 * one as u32);
                MapData::Interval(v.dts, v.lens)
            } else if v.dts.len() > 1 {
                MapData::Concat(v.dts, v.lens)
            } else {
                MapData::Value(v.dts[0], v.lens[0])
            });
        }
        (None, true) => return err(d.span, "map needs a value type"),
        (Some(_), false) => return err(d.span, "a set has no value type; use a map"),
        (None, false) => {}
    }
    if d.auto_merge {
        tlv_u32(&mut udata, ud::MERGE_ELEMENTS, 1);
    }
    if let Some(k) = &key.typeof_ {
        tlv(&mut udata, ud::KEY_TYPEOF, k);
    }
    if let Some(v) = &data_typeof {
        tlv(&mut udata, ud::DATA_TYPEOF, v);
    }
    if d.is_map {
        tlv_u32(&mut udata, ud::DATA_INTERVAL, d.data_interval as u32);
    }
    if let Some(c) = &d.comment {
        let mut v = c.as_bytes()[..c.len().min(254)].to_vec();
        v.push(0);
        tlv(&mut udata, ud::COMMENT, &v);
    }
    let concat = key.dts.len() > 1;
    if concat && flags & NFT_SET_INTERVAL != 0 {
        flags |= NFT_SET_CONCAT;
    }
    let ms = |w: &Option<String>, what: &str| -> R<Option<u64>> {
        w.as_ref()
            .map(|w| {
                types::parse_duration_ms(w)
                    .ok_or_else(|| Diagnostic::new(d.span, format!("invalid {what} '{w}'")))
            })
            .transpose()
    };
    let policy = match d.policy.as_deref() {
        None => None,
        Some("performance") => Some(NFT_SET_POL_PERFORMANCE),
        Some("memory") => Some(NFT_SET_POL_MEMORY),
        Some(p) => return err(d.span, format!("unknown set policy '{p}'")),
    };
    // Constant sets are sized by their elements, as nft declares them.
    let constant_size = (flags & NFT_SET_CONSTANT != 0 && !d.elements.is_empty())
        .then_some(d.elements.len() as u64);
    let desc = SetDesc {
        size: d
            .size
            .or(constant_size)
            .map(|s| s.min(u32::MAX as u64) as u32),
        concat: if concat && flags & NFT_SET_INTERVAL != 0 {
            key.lens.iter().map(|l| *l as u32).collect()
        } else {
            vec![]
        },
        unknown: vec![],
    };
    let (elements, _) = build_elements(
        t,
        &d.elements,
        &layout,
        md.as_ref(),
        Some(flags & NFT_SET_INTERVAL != 0),
        d.auto_merge,
    )?;
    let exprs = if d.counter {
        vec![emit::counter(0, 0)]
    } else {
        super::plain::stateful(&d.stmts)?
    };
    // Several statements per element are announced by a set flag.
    if exprs.len() > 1 {
        flags |= NFT_SET_EXPR;
    }
    let set = Set {
        name: d.name.clone(),
        flags,
        key_type: layout.type_id(),
        key_len: layout.len() as u32,
        data_type,
        data_len,
        obj_type,
        policy,
        desc: (desc != SetDesc::default()).then_some(desc),
        timeout: ms(&d.timeout, "timeout")?,
        gc_interval: ms(&d.gc_interval, "gc-interval")?.map(|v| v.min(u32::MAX as u64) as u32),
        userdata: Some(Userdata(b(&udata))),
        exprs,
        elements: elements.into(),
        handle: None,
        unknown: vec![],
    };
    let layout = SetLayout {
        dts: key.dts,
        lens: key.lens,
        data: md,
        written: d.elements.clone(),
    };
    Ok((set, layout))
}

/// Adds elements to a named set (`add element`, or a second declaration
/// with `elements = ...`), encoded with the layout its declaration gave.
/// Interval sets are re-encoded whole: their end markers depend on the
/// neighbouring elements.
pub fn add_elements(t: &Table, s: &mut Set, layout: &mut SetLayout, elems: &[Elem]) -> R<()> {
    let key = KeyLayout {
        dts: &layout.dts,
        lens: &layout.lens,
        shift: 0,
    };
    let interval = s.is_interval();
    let whole = interval && !key.concat();
    let todo = if whole {
        layout.written.extend_from_slice(elems);
        &layout.written[..]
    } else {
        elems
    };
    let auto_merge = s.userdata.as_ref().is_some_and(|u| {
        u.tlvs()
            .any(|(ty, v)| ty == ud::MERGE_ELEMENTS && v.iter().any(|b| *b != 0))
    });
    let (els, _) = build_elements(
        t,
        todo,
        &key,
        layout.data.as_ref(),
        Some(interval),
        auto_merge,
    )?;
    if whole {
        s.elements = els.into();
    } else {
        let have: std::collections::HashSet<_> = s
            .elements
            .iter()
            .map(|e| (e.key.clone(), e.key_end.clone()))
            .collect();
        s.elements.extend(
            els.into_iter()
                .filter(|e| !have.contains(&(e.key.clone(), e.key_end.clone()))),
        );
    }
    Ok(())
}

/// `unknown set`, naming the sets there are.
pub fn unknown_set(t: &Table, set: &str, span: Span) -> Diagnostic {
    let named: Vec<&str> = t
        .sets
        .iter()
        .filter(|s| !s.is_anonymous())
        .map(|s| s.name.as_str())
        .collect();
    let d = Diagnostic::new(
        span,
        format!("no set @{set} in table {} {}", t.family.name(), t.name),
    );
    match crate::syntax::suggest::closest(set, named.iter().copied()) {
        Some(s) => d.help(format!("did you mean @{s}?")),
        None if named.is_empty() => d.help("the table has no sets: declare it first"),
        None => d.help(format!(
            "the table's sets are {}",
            named
                .iter()
                .map(|n| format!("@{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
