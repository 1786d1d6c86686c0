//! Written values → register bytes for a given datatype: numbers,
//! symbolic names, addresses, strings, flag lists, ranges and prefixes.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::types::*;
use crate::model::Table;
use crate::syntax::ast::{BinOp, Expr};
use crate::syntax::diag::Diagnostic;
use crate::syntax::parser::parse_u64;

pub enum Val {
    Bytes(Vec<u8>),
    Range(Vec<u8>, Vec<u8>),
    Prefix(Vec<u8>, u32),
}

use crate::syntax::Result as R;

pub fn value(e: &Expr, dt: &Dtype, len: usize, t: &Table) -> R<Val> {
    value_shifted(e, dt, len, 0, t)
}

/// Like [`value`], with integers shifted left by `shift` bits (sub-byte
/// header fields compare against the bytes that hold them).
pub fn value_shifted(e: &Expr, dt: &Dtype, len: usize, shift: u32, t: &Table) -> R<Val> {
    let _ = t;
    let one = |w: &str, span| -> R<Vec<u8>> {
        word(w, dt, len, shift).ok_or_else(|| mismatch(w, dt, span))
    };
    match e {
        Expr::Word(w, span) => {
            if let Some(v) = word(w, dt, len, shift) {
                return Ok(Val::Bytes(v));
            }
            if let Some((a, p)) = w.rsplit_once('/') {
                if let (Some(v), Some(p)) = (word(a, dt, len, 0), p.parse::<u32>().ok()) {
                    if p as usize > len * 8 {
                        return Err(Diagnostic::new(
                            *span,
                            format!("prefix length {p} is invalid for {}", dt.name),
                        ));
                    }
                    return Ok(Val::Prefix(mask_ordered(&v, p, dt.be), p));
                }
            }
            // A range `a-b`: try each '-' as the separator.
            for (i, _) in w.match_indices('-') {
                if let (Some(a), Some(b)) = (
                    word(&w[..i], dt, len, shift),
                    word(&w[i + 1..], dt, len, shift),
                ) {
                    return range(a, b, dt, *span);
                }
            }
            Err(mismatch(w, dt, *span))
        }
        Expr::Str(s, span) => {
            if dt.kind == Kind::Str && (s.is_empty() || s.len() >= len) {
                return Err(Diagnostic::new(
                    *span,
                    format!(
                        "string '{s}' must be 1 to {} characters",
                        len.saturating_sub(1)
                    ),
                ));
            }
            if dt.kind == Kind::Str || dt.kind == Kind::Int && dt.bits > 64 {
                return Ok(Val::Bytes(string(s, len)));
            }
            one(s, *span).map(Val::Bytes)
        }
        Expr::Range(a, b, span) => {
            let (Val::Bytes(a), Val::Bytes(b)) = (
                value_shifted(a, dt, len, shift, t)?,
                value_shifted(b, dt, len, shift, t)?,
            ) else {
                return Err(Diagnostic::new(*span, "invalid range"));
            };
            range(a, b, dt, *span)
        }
        Expr::Prefix(a, p, span) => match value(a, dt, len, t)? {
            Val::Bytes(v) if (*p as usize) <= len * 8 => {
                Ok(Val::Prefix(mask_ordered(&v, *p, dt.be), *p))
            }
            _ => Err(Diagnostic::new(*span, "invalid prefix")),
        },
        Expr::List(items, _) | Expr::Concat(items, _)
            if dt.kind == Kind::Bitmask && matches!(e, Expr::List(..)) =>
        {
            let mut acc = vec![0u8; len];
            for i in items {
                let Val::Bytes(v) = value_shifted(i, dt, len, shift, t)? else {
                    return Err(Diagnostic::new(i.span(), "expected a flag"));
                };
                acc.iter_mut().zip(&v).for_each(|(a, b)| *a |= b);
            }
            Ok(Val::Bytes(acc))
        }
        Expr::Binop(op @ (BinOp::Or | BinOp::And | BinOp::Xor), a, b, span) => {
            let (Val::Bytes(a), Val::Bytes(b)) = (
                value_shifted(a, dt, len, shift, t)?,
                value_shifted(b, dt, len, shift, t)?,
            ) else {
                return Err(Diagnostic::new(*span, "expected values"));
            };
            Ok(Val::Bytes(
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| match op {
                        BinOp::Or => x | y,
                        BinOp::And => x & y,
                        _ => x ^ y,
                    })
                    .collect(),
            ))
        }
        other => Err(Diagnostic::new(
            other.span(),
            format!("expected a value of type {}", dt.name),
        )),
    }
}

/// An hour range that wraps past midnight (in UTC, `"21:00"-"02:00"`),
/// swapped: nft matches it as "not in the hours between".
pub fn hour_wrap(e: &Expr, dt: &Dtype, t: &Table) -> Option<Expr> {
    let Expr::Range(a, b, span) = e else {
        return None;
    };
    if dt.name != "hour" {
        return None;
    }
    let secs = |x: &Expr| match value(x, dt, 4, t) {
        Ok(Val::Bytes(v)) => Some(u32::from_ne_bytes(v.try_into().ok()?)),
        _ => None,
    };
    (secs(a)? > secs(b)?).then(|| Expr::Range(b.clone(), a.clone(), *span))
}

/// Seconds east of UTC of the local time zone now (as nft converts
/// `meta hour` values to UTC with it).
fn utc_offset() -> i64 {
    // SAFETY: localtime_r only writes the `tm` we own.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

/// `"HH:MM[:SS]"` local time → seconds after midnight UTC.
fn hour(w: &str) -> Option<u32> {
    let mut it = w.split(':');
    let h: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let s: i64 = it.next().map_or(Some(0), |x| x.parse().ok())?;
    if it.next().is_some()
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..=60).contains(&s)
    {
        return None;
    }
    Some((h * 3600 + m * 60 + s - utc_offset()).rem_euclid(86_400) as u32)
}

/// `"YYYY-MM-DD HH:MM[:SS]"` local time → seconds since the epoch.
fn date(w: &str) -> Option<i64> {
    let (d, t) = w.split_once(' ').unwrap_or((w, "00:00"));
    let mut dp = d.split('-');
    let (y, mo, da): (i32, i32, i32) = (
        dp.next()?.parse().ok()?,
        dp.next()?.parse().ok()?,
        dp.next()?.parse().ok()?,
    );
    let mut tp = t.split(':');
    let (h, mi): (i32, i32) = (tp.next()?.parse().ok()?, tp.next()?.parse().ok()?);
    let s: i32 = tp.next().map_or(Some(0), |x| x.parse().ok())?;
    if dp.next().is_some()
        || tp.next().is_some()
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&da)
    {
        return None;
    }
    // SAFETY: mktime reads and normalises the `tm` we own.
    let secs = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        (tm.tm_year, tm.tm_mon, tm.tm_mday) = (y - 1900, mo - 1, da);
        (tm.tm_hour, tm.tm_min, tm.tm_sec) = (h, mi, s);
        tm.tm_isdst = -1;
        libc::mktime(&mut tm)
    };
    (secs != -1).then_some(secs)
}

fn range(a: Vec<u8>, b: Vec<u8>, dt: &Dtype, span: crate::syntax::diag::Span) -> R<Val> {
    let (ka, kb) = if dt.be {
        (a.clone(), b.clone())
    } else {
        (
            a.iter().rev().copied().collect(),
            b.iter().rev().copied().collect::<Vec<u8>>(),
        )
    };
    if ka > kb {
        return Err(Diagnostic::new(span, "range has zero or negative size"));
    }
    Ok(Val::Range(a, b))
}

/// A value that is not of the type expected: names both types when the
/// value's own type is recognisable, else suggests the closest symbol.
fn mismatch(w: &str, dt: &Dtype, span: crate::syntax::diag::Span) -> Diagnostic {
    let what = if parse_ipv4(w).is_some() {
        Some("ipv4_addr")
    } else if w.contains(':') && parse_ipv6(w).is_some() {
        Some("ipv6_addr")
    } else {
        None
    };
    match what {
        Some(t) if t != dt.name => Diagnostic::new(
            span,
            format!("datatype mismatch: expected {}, '{w}' is {t}", dt.name),
        ),
        _ => {
            let out_of_range = parse_u64(w).is_some() && dt.kind == Kind::Int;
            let d = if out_of_range {
                Diagnostic::new(
                    span,
                    format!(
                        "value '{w}' out of range for {} ({} bits)",
                        dt.name, dt.bits
                    ),
                )
            } else {
                Diagnostic::new(span, format!("could not parse '{w}' as {}", dt.name))
            };
            d.suggest(w, dt.syms.iter().map(|s| s.name))
        }
    }
}

/// The mask of a `plen`-bit prefix of a `len`-byte value: its most
/// significant bits, which host order stores last.
pub fn prefix_mask_ordered(len: usize, plen: u32, be: bool) -> Vec<u8> {
    let mut m = prefix_mask(len, plen);
    if !be {
        m.reverse();
    }
    m
}

fn mask_ordered(v: &[u8], plen: u32, be: bool) -> Vec<u8> {
    let m = prefix_mask_ordered(v.len(), plen, be);
    v.iter().zip(&m).map(|(a, b)| a & b).collect()
}

/// First and last value of a prefix.
pub fn prefix_range(v: &[u8], plen: u32) -> (Vec<u8>, Vec<u8>) {
    let m = prefix_mask(v.len(), plen);
    let lo = v.iter().zip(&m).map(|(a, b)| a & b).collect();
    let hi = v.iter().zip(&m).map(|(a, b)| (a & b) | !b).collect();
    (lo, hi)
}

fn string(s: &str, len: usize) -> Vec<u8> {
    // A trailing unescaped `*` matches any suffix: compare the prefix only.
    if let Some(p) = s.strip_suffix('*').filter(|p| !p.ends_with('\\')) {
        return p.replace("\\*", "*").into_bytes();
    }
    let s = &s.replace("\\*", "*");
    let mut v = s.as_bytes().to_vec();
    v.truncate(len);
    v.resize(len.max(v.len() + 1).min(len.max(1)), 0);
    if v.len() < len {
        v.resize(len, 0);
    }
    v
}

/// One word as `len` bytes of type `dt`.
pub fn word(w: &str, dt: &Dtype, len: usize, shift: u32) -> Option<Vec<u8>> {
    match dt.kind {
        Kind::Ipv4 => parse_ipv4(w).map(|a| a.to_vec()).or_else(|| {
            // A raw 32-bit number (`ip saddr & 0xffff0000`, `== 1`).
            let n = match w.strip_prefix("0x") {
                Some(h) => u32::from_str_radix(h, 16).ok()?,
                None => w.parse::<u32>().ok()?,
            };
            Some(n.to_be_bytes().to_vec())
        }),
        Kind::Ipv6 => parse_ipv6(w).map(|a| a.to_vec()),
        Kind::Ether => parse_ether(w),
        Kind::Str => Some(string(w, len)),
        Kind::Verdict => None,
        Kind::Time if dt.bits == 64 && w.contains('-') => {
            let ns = (date(w)? as i128).checked_mul(1_000_000_000)?;
            int_bytes(u128::try_from(ns).ok()?, len, dt.be)
        }
        Kind::Time => {
            let ms = parse_duration_ms(w)?;
            let v = if dt.bits == 64 {
                ms as u128 * 1_000_000
            } else {
                ms as u128
            };
            int_bytes(v, len, dt.be)
        }
        Kind::Int | Kind::Bitmask => {
            let n: u128 = if let Some(sym) = dt
                .syms
                .iter()
                .find(|s| s.name == w || (dt.name == "day" && s.name.eq_ignore_ascii_case(w)))
            {
                sym.value as u128
            } else if let Some(n) = parse_u64(w) {
                n as u128
            } else if let Some(h) = w.strip_prefix("0x").filter(|h| h.len() <= 32) {
                u128::from_str_radix(h, 16).ok()?
            } else if dt.name == "hour" && w.contains(':') {
                hour(w)? as u128
            } else if dt.name == "iface_index" && w == "lo" {
                1
            } else if dt.name == "inet_proto" {
                protocol(w)? as u128
            } else if dt.name == "inet_service" {
                service(w)? as u128
            } else if dt.name == "boolean" && (w == "true" || w == "false") {
                (w == "true") as u128
            } else if dt.name == "realm" {
                realm(w).or_else(|| classid(w))? as u128
            } else if dt.name == "classid" {
                classid(w)? as u128
            } else if dt.name == "uid" || dt.name == "gid" {
                user_or_group(w, dt.name == "uid")? as u128
            } else {
                return None;
            };
            if dt.bits < 128 && n >> dt.bits != 0 {
                return None;
            }
            // Days of the week are 0 (Sunday) to 6; labels are bits 0 to 127.
            if (dt.name == "day" && n > 6) || (dt.name == "ct_label" && n > 127) {
                return None;
            }
            // A label is a bit number: label N sets bit N of the bitmap.
            let n = if dt.name == "ct_label" { 1u128 << n } else { n };
            let n = n.checked_shl(shift)?;
            int_bytes(n, len, dt.be)
        }
    }
}

/// An IP protocol by name: nft's keyword `icmpv6`, else the system's
/// protocol table, as nft resolves them.
fn protocol(w: &str) -> Option<u8> {
    if w == "icmpv6" {
        return Some(58);
    }
    static PROTOCOLS: OnceLock<HashMap<String, u64>> = OnceLock::new();
    db(&PROTOCOLS, "/etc/protocols")
        .get(w)?
        .to_owned()
        .try_into()
        .ok()
}

/// A port by service name, from the system's services table.
fn service(w: &str) -> Option<u16> {
    static SERVICES: OnceLock<HashMap<String, u64>> = OnceLock::new();
    db(&SERVICES, "/etc/services")
        .get(w)?
        .to_owned()
        .try_into()
        .ok()
}

/// A `/etc/protocols`-style table (`name number[/proto] aliases... #
/// comment` per line) by name and alias, read once per process: the first
/// line naming a word gives its number.
fn db<'a>(cell: &'a OnceLock<HashMap<String, u64>>, path: &str) -> &'a HashMap<String, u64> {
    cell.get_or_init(|| {
        let mut out = HashMap::new();
        for l in std::fs::read_to_string(path).unwrap_or_default().lines() {
            let l = l.split('#').next().unwrap_or("");
            let mut it = l.split_whitespace();
            let (Some(name), Some(num)) = (it.next(), it.next()) else {
                continue;
            };
            let Some(n) = parse_u64(num.split('/').next().unwrap_or(num)) else {
                continue;
            };
            for w in std::iter::once(name).chain(it) {
                out.entry(w.to_owned()).or_insert(n);
            }
        }
        out
    })
}

/// A routing realm by name, from iproute2's `rt_realms` table.
fn realm(w: &str) -> Option<u32> {
    ["/etc/iproute2/rt_realms", "/usr/share/iproute2/rt_realms"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .find_map(|text| {
            text.lines().find_map(|l| {
                let mut it = l.split_whitespace();
                let (n, name) = (it.next()?, it.next()?);
                (name == w && !n.starts_with('#'))
                    .then(|| parse_u64(n))??
                    .try_into()
                    .ok()
            })
        })
}

/// A user (`uid`) or group id by name, from the system's databases.
fn user_or_group(w: &str, user: bool) -> Option<u32> {
    let name = std::ffi::CString::new(w).ok()?;
    let mut buf = [0 as libc::c_char; 4096];
    // SAFETY: as in `protocol`.
    unsafe {
        if user {
            let mut ent: libc::passwd = std::mem::zeroed();
            let mut out: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(
                name.as_ptr(),
                &mut ent,
                buf.as_mut_ptr(),
                buf.len(),
                &mut out,
            );
            (rc == 0 && !out.is_null()).then_some(ent.pw_uid)
        } else {
            let mut ent: libc::group = std::mem::zeroed();
            let mut out: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrnam_r(
                name.as_ptr(),
                &mut ent,
                buf.as_mut_ptr(),
                buf.len(),
                &mut out,
            );
            (rc == 0 && !out.is_null()).then_some(ent.gr_gid)
        }
    }
}

/// `major:minor` in hex, as tc writes class ids; `none` and `root` too.
fn classid(w: &str) -> Option<u32> {
    match w {
        "root" => return Some(0xffff_ffff),
        "none" => return Some(0),
        _ => {}
    }
    let (a, b) = w.split_once(':')?;
    let a = if a.is_empty() {
        0
    } else {
        u32::from_str_radix(a, 16).ok()?
    };
    let b = if b.is_empty() {
        0
    } else {
        u32::from_str_radix(b, 16).ok()?
    };
    Some((a << 16) | (b & 0xffff))
}

/// The next value (as big-endian bytes), `None` past the largest.
pub(super) fn incr(v: &[u8]) -> Option<Vec<u8>> {
    let mut out = v.to_vec();
    for i in (0..out.len()).rev() {
        if out[i] == 0xff {
            out[i] = 0;
        } else {
            out[i] += 1;
            return Some(out);
        }
    }
    None
}

/// The mask of a `plen`-bit prefix of a `len`-byte network-order value.
pub(super) fn prefix_mask(len: usize, plen: u32) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let bits = (plen as i64 - (i as i64) * 8).clamp(0, 8) as u32;
            if bits == 0 {
                0
            } else {
                0xffu8 << (8 - bits)
            }
        })
        .collect()
}
