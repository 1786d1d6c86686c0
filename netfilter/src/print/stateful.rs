//! Stateful expressions as text (counter, limit, quota, ct count), as
//! rules, sets, elements and objects print them.

use crate::expr::Expr;

use super::options::PrintOptions;

/// Byte quantities as nft writes them (`25 mbytes`): nft 1.0.6 lists at
/// most mbytes (`4096 mbytes`) and refuses `gbytes` when reading.
pub fn bytes_unit(n: u64) -> String {
    let mut v = n;
    let mut unit = "bytes";
    for u in ["kbytes", "mbytes"] {
        if v >= 1024 && v % 1024 == 0 {
            v /= 1024;
            unit = u;
        } else {
            break;
        }
    }
    format!("{v} {unit}")
}

fn time_unit(secs: u64) -> &'static str {
    match secs {
        1 => "second",
        60 => "minute",
        3600 => "hour",
        86400 => "day",
        604800 => "week",
        _ => "second",
    }
}

/// Stateful expressions attached to sets, elements and dynset updates,
/// as one line (`limit rate 1/second counter packets 0 bytes 0`).
pub fn inline_exprs<'e>(exprs: impl IntoIterator<Item = &'e Expr>, opts: &PrintOptions) -> String {
    let mut out = Vec::new();
    for e in exprs {
        out.push(match e {
            Expr::Counter(c) if !opts.stateless => format!(
                "counter packets {} bytes {}",
                c.packets.unwrap_or(0),
                c.bytes.unwrap_or(0)
            ),
            Expr::Counter(_) => "counter".to_string(),
            Expr::Limit(l) => limit(l),
            Expr::Quota(q) => {
                let over = if q.flags.unwrap_or(0) & 1 != 0 {
                    "over "
                } else {
                    ""
                };
                format!("quota {over}{}", bytes_unit(q.bytes.unwrap_or(0)))
            }
            Expr::Connlimit(c) => {
                let over = if c.flags.unwrap_or(0) & 1 != 0 {
                    "over "
                } else {
                    ""
                };
                format!("ct count {over}{}", c.count.unwrap_or(0))
            }
            other => other.name().to_string(),
        });
    }
    out.join(" ")
}

/// A limit expression or object as nft writes it.
pub fn limit(l: &crate::expr::limit::Limit) -> String {
    limit_text(
        l.rate.unwrap_or(0),
        l.unit.unwrap_or(1),
        l.burst.unwrap_or(0),
        matches!(l.limit_type, Some(crate::expr::limit::LimitType::Bytes)),
        l.flags.unwrap_or(0) & 1 != 0,
    )
}

/// `limit rate [over] N/unit [burst B packets]` or its byte form.
pub fn limit_text(rate: u64, unit: u64, burst: u32, bytes: bool, over: bool) -> String {
    let over = if over { "over " } else { "" };
    let u = time_unit(unit);
    if bytes {
        let mut s = format!("limit rate {over}{}/{u}", bytes_unit(rate));
        if burst != 0 {
            s += &format!(" burst {}", bytes_unit(burst as u64));
        }
        s
    } else {
        let mut s = format!("limit rate {over}{rate}/{u}");
        if burst != 5 && burst != 0 {
            s += &format!(" burst {burst} packets");
        }
        s
    }
}
