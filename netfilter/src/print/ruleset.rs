//! The layout of `nft list ruleset`: tables, sets and maps, objects,
//! chains with their hook line, rules, one tab per nesting level.

use std::fmt::Write;

use crate::model::{Chain, Family, Rule, Ruleset, Set, Table};
use crate::object::ObjectData;
use crate::proto::datatype::{self as dt, TYPE_BITS};
use crate::proto::udata::{self, TypeofExpr};
use crate::proto::ByteOrder;
use crate::sys::*;

use super::rule::Decompiler;
use super::set::{elements, KeyLayout};
use super::stmt::{bytes_unit, limit_text};
use super::value::{self, ValueType};
use super::PrintOptions;

pub(super) fn ruleset(rs: &Ruleset, opts: &PrintOptions) -> String {
    let mut out = String::new();
    for t in &rs.tables {
        table(&mut out, t, opts);
    }
    out
}

fn table(out: &mut String, t: &Table, opts: &PrintOptions) {
    let _ = writeln!(out, "table {} {} {{", t.family.name(), t.name);
    let mut blocks: Vec<String> = Vec::new();
    let mut head = String::new();
    if let Some(c) = t.comment() {
        let _ = writeln!(head, "\tcomment \"{c}\"");
    }
    let mut flags = Vec::new();
    if t.flags & NFT_TABLE_F_DORMANT != 0 {
        flags.push("dormant");
    }
    if t.flags & NFT_TABLE_F_OWNER != 0 {
        flags.push("owner");
    }
    if t.flags & NFT_TABLE_F_PERSIST != 0 {
        flags.push("persist");
    }
    if !flags.is_empty() {
        let _ = writeln!(head, "\tflags {}", flags.join(","));
    }
    for s in t.sets.iter().filter(|s| !s.is_anonymous()) {
        blocks.push(named_set(t, s, opts));
    }
    for o in &t.objects {
        blocks.push(object(o, opts));
    }
    for c in &t.chains {
        blocks.push(chain(t, c, opts));
    }
    out.push_str(&head);
    out.push_str(&blocks.join("\n"));
    out.push_str("}\n");
}

fn hook_name(family: Family, num: u32) -> String {
    let n = match family {
        Family::Netdev => match num {
            0 => "ingress",
            1 => "egress",
            _ => "",
        },
        Family::Arp => match num {
            0 => "input",
            1 => "output",
            _ => "",
        },
        _ => match num {
            0 => "prerouting",
            1 => "input",
            2 => "forward",
            3 => "output",
            4 => "postrouting",
            5 => "ingress",
            _ => "",
        },
    };
    if n.is_empty() {
        num.to_string()
    } else {
        n.to_string()
    }
}

/// nft's text for a base chain priority (`filter`, `mangle - 5`, `-11`).
pub fn priority_text(family: Family, prio: i32) -> String {
    let names: &[(&str, i32)] = match family {
        Family::Bridge => &[
            ("dstnat", -300),
            ("filter", -200),
            ("out", 100),
            ("srcnat", 300),
        ],
        Family::Arp | Family::Netdev => &[("filter", 0)],
        _ => &[
            ("raw", -300),
            ("mangle", -150),
            ("dstnat", -100),
            ("filter", 0),
            ("security", 50),
            ("srcnat", 100),
        ],
    };
    for (n, v) in names {
        let d = prio - v;
        if d == 0 {
            return n.to_string();
        }
        if (1..=10).contains(&d) {
            return format!("{n} + {d}");
        }
        if (-10..0).contains(&d) {
            return format!("{n} - {}", -d);
        }
    }
    prio.to_string()
}

/// `type filter hook input priority filter; policy accept;` for a base chain.
pub fn chain_header(family: Family, c: &Chain) -> Option<String> {
    let h = c.hook.as_ref()?;
    let mut s = format!(
        "type {} hook {}",
        c.chain_type.as_deref().unwrap_or("filter"),
        hook_name(family, h.num)
    );
    match h.devices.as_slice() {
        [] => {}
        [d] if !h.device_list => {
            let _ = write!(s, " device \"{d}\"");
        }
        ds => {
            let list = ds
                .iter()
                .map(|d| format!("\"{d}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = write!(s, " devices = {{ {list} }}");
        }
    }
    let _ = write!(s, " priority {};", priority_text(family, h.priority));
    if let Some(p) = c.policy {
        let _ = write!(
            s,
            " policy {};",
            if p == NF_ACCEPT { "accept" } else { "drop" }
        );
    }
    Some(s)
}

fn chain(t: &Table, c: &Chain, opts: &PrintOptions) -> String {
    let mut s = format!("\tchain {} {{\n", c.name);
    if let Some(cm) = c.comment() {
        let _ = writeln!(s, "\t\tcomment \"{cm}\"");
    }
    if let Some(h) = chain_header(t.family, c) {
        let _ = writeln!(s, "\t\t{h}");
    }
    for r in &c.rules {
        let _ = writeln!(s, "\t\t{}", print_rule(t, r, opts));
    }
    s.push_str("\t}\n");
    s
}

fn print_rule(t: &Table, r: &Rule, opts: &PrintOptions) -> String {
    Decompiler::new(t.family, t, r, opts).run()
}

/// Text of one `typeof` expression.
fn typeof_text(e: &TypeofExpr) -> String {
    match e {
        TypeofExpr::Payload(h, f) => format!("{} {}", h.name, f.name),
        TypeofExpr::Meta(k) if k.unqualified => k.name.to_string(),
        TypeofExpr::Meta(k) => format!("meta {}", k.name),
        TypeofExpr::Ct(k, dir) => match dir.and_then(crate::proto::keys::ct_dir_name) {
            Some(d) => format!("ct {d} {}", k.name),
            None => format!("ct {}", k.name),
        },
        TypeofExpr::Osf => "osf name".into(),
        TypeofExpr::Numgen {
            mode,
            modulus,
            offset,
        } => {
            let m = if *mode == 1 { "random" } else { "inc" };
            if *offset != 0 {
                format!("numgen {m} mod {modulus} offset {offset}")
            } else {
                format!("numgen {m} mod {modulus}")
            }
        }
        TypeofExpr::Exthdr { .. } => "exthdr".into(),
        TypeofExpr::Concat(p) => p.iter().map(typeof_text).collect::<Vec<_>>().join(" . "),
        TypeofExpr::Unknown(n) => format!("typeof-{n}"),
    }
}

fn type_names(id: u32, n: usize) -> String {
    dt::split_concat(id, n)
        .map(|ts| ts.iter().map(|t| t.name).collect::<Vec<_>>().join(" . "))
        .unwrap_or_else(|| format!("{id}"))
}

fn field_count(s: &Set) -> usize {
    match s.desc.as_ref().map(|d| d.concat.len()) {
        Some(n) if n > 1 => n,
        _ => {
            // Count the 6-bit type ids packed in key_type.
            let mut n = 1;
            while s.key_type >> (TYPE_BITS * n as u32) != 0 {
                n += 1;
            }
            n
        }
    }
}

/// Key layout of a named set from its declared types and lengths.
fn layout(s: &Set) -> KeyLayout {
    let n = field_count(s);
    let types = dt::split_concat(s.key_type, n).unwrap_or_else(|| vec![&dt::INTEGER; n]);
    let bo = s
        .userdata
        .as_ref()
        .and_then(|u| udata::key_byteorder(&u.0 .0));
    let lens: Vec<u32> = match s.desc.as_ref().map(|d| d.concat.clone()) {
        Some(c) if c.len() == n => c,
        _ if n == 1 => vec![s.key_len],
        _ => types.iter().map(|t| t.bytes().max(4)).collect(),
    };
    KeyLayout(
        types
            .iter()
            .zip(lens)
            .map(|(t, len)| {
                let byteorder = match (n, bo) {
                    (1, Some(b)) => b,
                    _ => t.byteorder,
                };
                let bits = if t.bits == 0 { len * 8 } else { t.bits };
                (
                    ValueType {
                        dtype: t,
                        byteorder,
                        bits,
                    },
                    len,
                    0,
                )
            })
            .collect(),
    )
}

fn set_flags(s: &Set) -> Vec<&'static str> {
    let mut f = Vec::new();
    if s.flags & NFT_SET_CONSTANT != 0 {
        f.push("constant");
    }
    if s.flags & NFT_SET_INTERVAL != 0 {
        f.push("interval");
    }
    if s.flags & NFT_SET_TIMEOUT != 0 {
        f.push("timeout");
    }
    if s.flags & NFT_SET_EVAL != 0 {
        f.push("dynamic");
    }
    f
}

/// The body lines of a named set or map (one tab-less line each).
pub fn set_body(t: &Table, s: &Set, opts: &PrintOptions) -> Vec<String> {
    let mut lines = Vec::new();
    let ud = s
        .userdata
        .as_ref()
        .map(|u| u.0 .0.as_slice())
        .unwrap_or(&[]);
    let key_typeof = udata::get(ud, udata::KEY_TYPEOF)
        .and_then(udata::decode_typeof)
        .filter(|t| !matches!(t, TypeofExpr::Concat(p) if p.is_empty()));
    let data_typeof = udata::get(ud, udata::DATA_TYPEOF).and_then(udata::decode_typeof);
    let key = match &key_typeof {
        Some(k) => Some(typeof_text(k)),
        None => None,
    };
    let data = if s.is_map() {
        Some(match (&data_typeof, s.data_type) {
            (Some(d), _) if key.is_some() => typeof_text(d),
            (_, Some(NFT_DATA_VERDICT)) => "verdict".into(),
            (_, Some(id)) => type_names(id, {
                let mut n = 1;
                while id >> (TYPE_BITS * n as u32) != 0 {
                    n += 1;
                }
                n
            }),
            _ => "?".into(),
        })
    } else if s.flags & NFT_SET_OBJECT != 0 {
        Some(
            match s.obj_type.unwrap_or(0) {
                NFT_OBJECT_COUNTER => "counter",
                NFT_OBJECT_QUOTA => "quota",
                NFT_OBJECT_LIMIT => "limit",
                NFT_OBJECT_CT_HELPER => "ct helper",
                NFT_OBJECT_CT_TIMEOUT => "ct timeout",
                NFT_OBJECT_SECMARK => "secmark",
                NFT_OBJECT_CT_EXPECT => "ct expectation",
                NFT_OBJECT_SYNPROXY => "synproxy",
                _ => "?",
            }
            .to_string(),
        )
    } else {
        None
    };
    let kw = if key.is_some() { "typeof" } else { "type" };
    let ktext = key.unwrap_or_else(|| type_names(s.key_type, field_count(s)));
    match data {
        Some(d) => lines.push(format!("{kw} {ktext} : {d}")),
        None => lines.push(format!("{kw} {ktext}")),
    }
    if let Some(size) = s.desc.as_ref().and_then(|d| d.size) {
        if s.flags & NFT_SET_EVAL != 0 || size != 0 {
            lines.push(format!("size {size}"));
        }
    }
    let flags = set_flags(s);
    if !flags.is_empty() {
        lines.push(format!("flags {}", flags.join(",")));
    }
    if let Some(to) = s.timeout {
        lines.push(format!("timeout {}", value::time_ms(to)));
    }
    if let Some(gc) = s.gc_interval {
        if s.timeout.is_some() && gc != 0 {
            lines.push(format!("gc-interval {}", value::time_ms(gc as u64)));
        }
    }
    for e in &s.exprs {
        if let crate::expr::Expr::Counter(_) = e {
            lines.push("counter".into());
        }
    }
    if let Some(c) = udata::comment(ud) {
        lines.push(format!("comment \"{c}\""));
    }
    if !s.elements.is_empty() {
        let empty = Rule::new(Vec::new());
        let d = Decompiler::new(t.family, t, &empty, opts);
        let items = elements(&d, s, &layout(s), ",");
        if !items.is_empty() {
            lines.push(format!("elements = {{ {} }}", items.join(", ")));
        }
    }
    let _ = ByteOrder::Big;
    lines
}

fn named_set(t: &Table, s: &Set, opts: &PrintOptions) -> String {
    let kind = if s.is_map() || s.flags & NFT_SET_OBJECT != 0 {
        "map"
    } else {
        "set"
    };
    let mut out = format!("\t{kind} {} {{\n", s.name);
    for l in set_body(t, s, opts) {
        let _ = writeln!(out, "\t\t{l}");
    }
    out.push_str("\t}\n");
    out
}

fn object(o: &crate::model::Object, opts: &PrintOptions) -> String {
    let (kind, body): (&str, Vec<String>) = match &o.data {
        ObjectData::Counter(c) => (
            "counter",
            vec![if opts.stateless {
                "packets 0 bytes 0".into()
            } else {
                format!(
                    "packets {} bytes {}",
                    c.packets.unwrap_or(0),
                    c.bytes.unwrap_or(0)
                )
            }],
        ),
        ObjectData::Quota(q) => {
            let over = if q.flags.unwrap_or(0) & 1 != 0 {
                "over "
            } else {
                ""
            };
            let used = q.consumed.unwrap_or(0);
            let mut l = format!("{over}{}", bytes_unit(q.bytes.unwrap_or(0)));
            if !opts.stateless {
                let _ = write!(l, " used {}", bytes_unit(used));
            }
            ("quota", vec![l])
        }
        ObjectData::Limit(l) => {
            let t = limit_text(
                l.rate.unwrap_or(0),
                l.unit.unwrap_or(1),
                l.burst.unwrap_or(0),
                l.limit_type.map(u32::from) == Some(NFT_LIMIT_PKT_BYTES),
                l.flags.unwrap_or(0) & 1 != 0,
            );
            ("limit", vec![t.trim_start_matches("limit ").to_string()])
        }
        _ => ("object", vec![]),
    };
    let mut out = format!("\t{kind} {} {{\n", o.name);
    if let Some(c) = o.userdata.as_ref().and_then(|u| u.comment(0)) {
        let _ = writeln!(out, "\t\tcomment \"{c}\"");
    }
    for l in body {
        let _ = writeln!(out, "\t\t{l}");
    }
    out.push_str("\t}\n");
    out
}
