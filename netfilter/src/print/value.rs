//! Register values → nft's text for a datatype: numbers, addresses,
//! symbols, flag lists, strings, times.

use std::fmt::Write;

use crate::proto::{ByteOrder, Datatype, Format};

use super::PrintOptions;

/// How to read and write one value.
#[derive(Clone, Copy, Debug)]
pub struct ValueType {
    pub dtype: &'static Datatype,
    pub byteorder: ByteOrder,
    /// Significant bits (sub-byte fields are shifted down before printing).
    pub bits: u32,
}

/// The lowest `bits` bits set (all of them from 128 on).
pub fn low_mask(bits: u32) -> u128 {
    1u128.checked_shl(bits).map_or(u128::MAX, |v| v - 1)
}

/// `n >> s`, zero once everything is shifted out.
pub fn shr(n: u128, s: u32) -> u128 {
    n.checked_shr(s).unwrap_or(0)
}

/// Interprets `b` as an unsigned number (up to 16 bytes).
pub fn to_uint(b: &[u8], order: ByteOrder) -> u128 {
    let it: Box<dyn Iterator<Item = &u8>> = match order {
        ByteOrder::Big => Box::new(b.iter()),
        ByteOrder::Host => Box::new(b.iter().rev()),
    };
    it.take(16).fold(0u128, |acc, x| (acc << 8) | *x as u128)
}

/// Formats `n` as nft's time (`1d2h3m4s`, `500ms`), from milliseconds.
pub fn time_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let (d, rem) = (ms / 86_400_000, ms % 86_400_000);
    let (h, rem) = (rem / 3_600_000, rem % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, ms) = (rem / 1000, rem % 1000);
    for (v, u) in [(d, "d"), (h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
        if v > 0 {
            let _ = write!(out, "{v}{u}");
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for seconds since the epoch.
pub fn date(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Gregorian, proleptic).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

extern "C" {
    /// C library: (re)reads `TZ` (not bound by the libc crate).
    fn tzset();
}

/// Seconds east of UTC of the local time zone at `secs` since the epoch.
pub fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // SAFETY: tzset reads the environment; localtime_r writes only into `tm`.
    unsafe {
        tzset();
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff as i64
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The quoted name of interface `index` (in this process's namespace;
/// the number when it has none).
pub fn ifname(index: u32) -> String {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: buf holds IF_NAMESIZE bytes as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return index.to_string();
    }
    let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
    format!("\"{}\"", String::from_utf8_lossy(&buf[..end]))
}

pub fn ipv4(b: &[u8]) -> String {
    match b {
        [a, b, c, d, ..] => format!("{a}.{b}.{c}.{d}"),
        _ => hex(b),
    }
}

pub fn ipv6(b: &[u8]) -> String {
    match <[u8; 16]>::try_from(b) {
        // inet_ntop writes IPv4-compatible addresses (::a.b.c.d) dotted.
        Ok(a) if a[..12].iter().all(|&x| x == 0) && a[12..14] != [0, 0] => {
            format!("::{}", ipv4(&a[12..]))
        }
        Ok(a) => std::net::Ipv6Addr::from(a).to_string(),
        Err(_) => hex(b),
    }
}

pub fn lladdr(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{x:02x}");
    }
    s
}

pub fn hex(b: &[u8]) -> String {
    let n = to_uint(b, ByteOrder::Big);
    format!("0x{n:x}")
}

/// A NUL-padded string as nft quotes it; a value without its NUL is a
/// prefix match and gets nft's trailing `*`.
pub fn string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0);
    let s = String::from_utf8_lossy(&b[..end.unwrap_or(b.len())]);
    match end {
        // A literal `*` in a full name is escaped; a bare one means prefix.
        Some(_) => format!("\"{}\"", s.replace('*', "\\*")),
        None => format!("\"{s}*\""),
    }
}

fn is_protocol(d: &Datatype) -> bool {
    d.id == crate::proto::datatype::INET_PROTO.id
}

/// Formats a value of type `t` held in `b`.
pub fn format(b: &[u8], t: ValueType, opts: &PrintOptions) -> String {
    let d = t.dtype;
    match d.format {
        Format::Ipv4 => ipv4(b),
        Format::Ipv6 => ipv6(b),
        Format::Lladdr => lladdr(b),
        Format::String => string(b),
        Format::Verdict => hex(b),
        _ => {
            let n = to_uint(b, t.byteorder);
            number(n, t, opts)
        }
    }
}

/// Formats a number of type `t` (symbols first, then the type's notation).
pub fn number(n: u128, t: ValueType, opts: &PrintOptions) -> String {
    let d = t.dtype;
    let sym_ok = !(opts.numeric_protocol && is_protocol(d));
    if d.format == Format::Bitmask && !d.symbols.is_empty() {
        return flags(n, d, ",");
    }
    if d.name == "ct_label" {
        return label_bits(n);
    }
    if sym_ok && n <= u64::MAX as u128 {
        if let Some(s) = d.symbol(n as u64) {
            return quote_symbol(d, s);
        }
    }
    match d.format {
        Format::HexPadded => {
            let w = (t.bits.div_ceil(8).max(1) * 2) as usize;
            format!("0x{n:0w$x}")
        }
        Format::Hex | Format::Bitmask => format!("0x{n:x}"),
        Format::Time => time_ms(n as u64),
        Format::TcHandle => match n {
            0 => "none".into(),
            0xffff_ffff => "root".into(),
            _ => format!("{:x}:{:x}", n >> 16, n & 0xffff),
        },
        // nft shows times in the local time zone (the `TZ` environment).
        Format::Date => {
            let secs = (n / 1_000_000_000) as i64;
            format!("\"{}\"", date(secs + local_offset(secs)))
        }
        Format::Hour => {
            let n = (n as i64 + local_offset(now())).rem_euclid(86_400);
            let (h, m, s) = (n / 3600, n / 60 % 60, n % 60);
            if s == 0 {
                format!("\"{h:02}:{m:02}\"")
            } else {
                format!("\"{h:02}:{m:02}:{s:02}\"")
            }
        }
        Format::Ifindex => ifname(n as u32),
        _ => n.to_string(),
    }
}

/// Device groups, realms and days print their names quoted.
fn quote_symbol(d: &Datatype, s: &str) -> String {
    if matches!(d.name, "devgroup" | "realm" | "day") {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

/// Conntrack label bits by number (no `connlabel.conf` names here).
fn label_bits(n: u128) -> String {
    (0..128)
        .filter(|b| n >> b & 1 == 1)
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// One end of a range: symbolic types print their number, times their
/// seconds (`60s-3600s`), everything else as usual.
pub fn range_end(n: u128, t: ValueType, opts: &PrintOptions) -> String {
    match t.dtype.format {
        Format::Time => format!("{}s", n / 1000),
        Format::Decimal if !t.dtype.symbols.is_empty() => n.to_string(),
        _ => number(n, t, opts),
    }
}

/// Names of the set bits of `n`, joined by `sep` (unknown bits in hex).
pub fn flags(n: u128, d: &Datatype, sep: &str) -> String {
    if n == 0 {
        return d
            .symbol(0)
            .map(str::to_string)
            .unwrap_or_else(|| "0x0".into());
    }
    let mut parts = Vec::new();
    let mut rest = n;
    for s in d.symbols {
        if s.value != 0 && (s.value as u128) & rest == s.value as u128 {
            parts.push(s.name.to_string());
            rest &= !(s.value as u128);
        }
    }
    if rest != 0 {
        parts.push(format!("0x{rest:x}"));
    }
    parts.join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::datatype as dt;

    const P: PrintOptions = PrintOptions {
        stateless: true,
        numeric_protocol: true,
    };

    fn vt(d: &'static Datatype, bo: ByteOrder) -> ValueType {
        ValueType {
            dtype: d,
            byteorder: bo,
            bits: d.bits,
        }
    }

    #[test]
    fn formats_like_nft() {
        assert_eq!(
            format(&[0, 22], vt(&dt::INET_SERVICE, ByteOrder::Big), &P),
            "22"
        );
        assert_eq!(format(&[6], vt(&dt::INET_PROTO, ByteOrder::Big), &P), "6");
        assert_eq!(
            format(&[0x2a, 0, 0, 0], vt(&dt::MARK, ByteOrder::Host), &P),
            "0x0000002a"
        );
        assert_eq!(
            format(&[6, 0, 0, 0], vt(&dt::CT_STATE, ByteOrder::Host), &P),
            "established,related"
        );
        assert_eq!(
            format(b"lo\0\0", vt(&dt::IFNAME, ByteOrder::Host), &P),
            "\"lo\""
        );
        assert_eq!(
            format(b"eth", vt(&dt::IFNAME, ByteOrder::Host), &P),
            "\"eth*\""
        );
        assert_eq!(time_ms(67_000), "1m7s");
        assert_eq!(date(1_656_673_200), "2022-07-01 11:00:00");
        assert_eq!(date(12_341_234), "1970-05-23 20:07:14");
        assert_eq!(
            format(b"dummy*\0", vt(&dt::IFNAME, ByteOrder::Host), &P),
            "\"dummy\\*\""
        );
        assert_eq!(
            format(&[0x34, 0x12, 1, 0], vt(&dt::TC_HANDLE, ByteOrder::Host), &P),
            "1:1234"
        );
        assert_eq!(
            time_ms(4 * 86_400_000 + 23 * 3_600_000 + 59 * 60_000 + 59_000),
            "4d23h59m59s"
        );
        assert_eq!(
            ipv6(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            "2001:db8::1"
        );
    }
}
