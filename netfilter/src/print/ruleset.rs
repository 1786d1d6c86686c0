//! The layout of `nft list ruleset`: tables, sets and maps, objects,
//! chains with their hook line, rules, one tab per nesting level.

use std::fmt::Write;

use crate::model::{Chain, Family, Rule, Ruleset, Set, Table};
use crate::object::ObjectData;
use crate::proto::datatype as dt;
use crate::proto::udata::{self, TypeofExpr};
use crate::proto::ByteOrder;
use crate::sys::*;

use super::decompiler::Decompiler;
use super::options::PrintOptions;
use super::regs::KeyLayout;
use super::set::elements;
use super::stateful::{bytes_unit, limit};
use super::value::{self, ValueType};

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
    // nft 1.0.6 separates the head from the blocks only when it has flags.
    let blank_after_head = !flags.is_empty();
    if let Some(c) = t.comment() {
        let _ = writeln!(head, "\tcomment \"{c}\"");
    }
    // nft lists objects, then sets and maps, then chains.
    for o in &t.objects {
        blocks.push(object(o, opts));
    }
    for s in t.sets.iter().filter(|s| !s.is_anonymous()) {
        blocks.push(named_set(t, s, opts));
    }
    for f in &t.flowtables {
        blocks.push(flowtable(f));
    }
    // Bound chains print inside the rule that jumps to them.
    for c in t
        .chains
        .iter()
        .filter(|c| c.flags.unwrap_or(0) & NFT_CHAIN_BINDING == 0)
    {
        blocks.push(chain(t, c, opts));
    }
    out.push_str(&head);
    if blank_after_head && !blocks.is_empty() {
        out.push('\n');
    }
    out.push_str(&blocks.join("\n"));
    out.push_str("}\n");
}

/// nft's name for hook `num` of `family` (`input`, `ingress`), or the number.
pub fn hook_name(family: Family, num: u32) -> String {
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

/// nft's text for a base chain priority on hook number `hook` (`filter`,
/// `mangle - 5`, `-11`): the name of a value within 10 when that name is
/// valid on this hook ([`crate::syntax::vocab::priority_names`]), else
/// the number.
pub fn priority_text(family: Family, hook: u32, prio: i32) -> String {
    for (n, v) in crate::syntax::vocab::priority_names(family, hook) {
        let d = prio.saturating_sub(*v);
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

/// `{ a, b }` as nft 1.0.6 lists device names: sorted, unquoted.
fn device_list(devs: &[String]) -> String {
    let mut ds: Vec<&str> = devs.iter().map(String::as_str).collect();
    ds.sort_unstable();
    format!("{{ {} }}", ds.join(", "))
}

/// A flowtable block (unverified against nft: this kernel has none).
fn flowtable(f: &crate::model::Flowtable) -> String {
    let mut s = format!("\tflowtable {} {{\n", f.name);
    if let Some(h) = &f.hook {
        let _ = writeln!(
            s,
            "\t\thook {} priority {}",
            hook_name(Family::Netdev, h.num),
            priority_text(Family::Netdev, h.num, h.priority)
        );
        if !h.devices.is_empty() {
            let _ = writeln!(s, "\t\tdevices = {}", device_list(&h.devices));
        }
    }
    if f.flags.unwrap_or(0) & 1 != 0 {
        let _ = writeln!(s, "\t\tflags offload");
    }
    s.push_str("\t}\n");
    s
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
        [d] => {
            let _ = write!(s, " device \"{d}\"");
        }
        ds => {
            let _ = write!(s, " devices = {}", device_list(ds));
        }
    }
    let _ = write!(s, " priority {};", priority_text(family, h.num, h.priority));
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
        TypeofExpr::RawPayload { base, offset, len } => {
            let b = ["?", "ll", "nh", "th", "ih"]
                .get(*base as usize)
                .copied()
                .unwrap_or("?");
            format!("@{b},{offset},{len}")
        }
        TypeofExpr::Xfrm { key, dir, spnum } => {
            let d = if *dir == 0 { "in" } else { "out" };
            let sp = if *spnum != 0 {
                format!(" spnum {spnum}")
            } else {
                String::new()
            };
            format!("ipsec {d}{sp} {}", super::stmt::xfrm_key(*key).0)
        }
        TypeofExpr::Concat(p) => p.iter().map(typeof_text).collect::<Vec<_>>().join(" . "),
        TypeofExpr::Fib { result, flags } => {
            let res = match *result {
                NFT_FIB_RESULT_OIF => "oif",
                NFT_FIB_RESULT_OIFNAME => "oifname",
                NFT_FIB_RESULT_ADDRTYPE => "type",
                _ => "?",
            };
            format!("fib {} {res}", super::stmt::fib_keys(*flags as u16))
        }
        TypeofExpr::Unknown(n) => format!("typeof-{n}"),
    }
}

/// Key layout of a named set from its declared types and lengths.
fn layout(s: &Set) -> KeyLayout {
    let n = s.field_count();
    let mut types = dt::split_concat(s.key_type, n).unwrap_or_else(|| vec![&dt::INTEGER; n]);
    // Raw payload members of a `typeof` print in hex.
    let ud = s
        .userdata
        .as_ref()
        .map(|u| u.0 .0.as_slice())
        .unwrap_or(&[]);
    let members = match udata::get(ud, udata::KEY_TYPEOF).and_then(udata::decode_typeof) {
        Some(TypeofExpr::Concat(p)) => p,
        Some(t) => vec![t],
        None => Vec::new(),
    };
    for (t, m) in types.iter_mut().zip(&members) {
        if matches!(m, TypeofExpr::RawPayload { .. }) {
            *t = &dt::BITMASK;
        }
    }
    let bo = s
        .userdata
        .as_ref()
        .and_then(|u| udata::key_byteorder(&u.0 .0));
    let lens: Vec<u32> = match s.desc.as_ref().map(|d| d.concat.clone()) {
        Some(c) if c.len() == n => c,
        _ if n == 1 => vec![s.key_len],
        _ => types
            .iter()
            .map(|t| if t.bytes() == 0 { 4 } else { t.bytes() })
            .collect(),
    };
    // Header fields of a `typeof` are as long as the field.
    let lens: Vec<u32> = lens
        .into_iter()
        .enumerate()
        .map(|(i, l)| match members.get(i) {
            Some(TypeofExpr::Payload(_, f)) if n > 1 => f.len.div_ceil(8).min(l),
            _ => l,
        })
        .collect();
    // Integer members of a `typeof` take the order of what they came from.
    let member_order = |i: usize| match members.get(i) {
        Some(TypeofExpr::Payload(..)) => Some(ByteOrder::Big),
        Some(TypeofExpr::Meta(k)) | Some(TypeofExpr::Ct(k, _)) => Some(k.dtype.byteorder),
        _ => None,
    };
    KeyLayout(
        types
            .iter()
            .zip(lens)
            .enumerate()
            .map(|(i, (t, len))| {
                // Interval keys are kept in network order (nft converts
                // them); plain integers follow the order nft recorded.
                let byteorder = match (n, bo, member_order(i)) {
                    _ if s.is_interval() || t.id == dt::BITMASK.id => ByteOrder::Big,
                    (1, Some(b), _) if t.id == dt::INTEGER.id => b,
                    (_, _, Some(b)) if t.id == dt::INTEGER.id => b,
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
    if s.flags & NFT_SET_EVAL != 0 {
        f.push("dynamic");
    }
    if s.flags & NFT_SET_INTERVAL != 0 {
        f.push("interval");
    }
    // A default timeout implies the flag: nft then lists no flags line
    // when it would hold only `timeout` (measured with nft 1.0.6).
    if s.flags & NFT_SET_TIMEOUT != 0 && (s.timeout.is_none() || !f.is_empty()) {
        f.push("timeout");
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
    let key = key_typeof.as_ref().map(typeof_text);
    let data = if s.is_map() {
        let interval = match udata::get(ud, udata::DATA_INTERVAL).and_then(udata::u32_of) {
            Some(v) if v != 0 => "interval ",
            _ => "",
        };
        Some(match (&data_typeof, s.data_type) {
            (_, Some(NFT_DATA_VERDICT)) => "verdict".into(),
            (Some(d), _) if key.is_some() => format!("{interval}{}", typeof_text(d)),
            (_, Some(id)) => format!("{interval}{}", dt::type_names(id, dt::concat_len(id))),
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
    let ktext = key.unwrap_or_else(|| dt::type_names(s.key_type, s.field_count()));
    match data {
        Some(d) => lines.push(format!("{kw} {ktext} : {d}")),
        None => lines.push(format!("{kw} {ktext}")),
    }
    if s.policy == Some(NFT_SET_POL_MEMORY) {
        lines.push("policy memory".into());
    }
    if let Some(size) = s.desc.as_ref().and_then(|d| d.size) {
        // Constant sets get a size from nft itself; it is not listed.
        if s.flags & NFT_SET_CONSTANT == 0 && size != 0 {
            lines.push(format!("size {size}"));
        }
    }
    let flags = set_flags(s);
    if !flags.is_empty() {
        lines.push(format!("flags {}", flags.join(",")));
    }
    if !s.exprs.is_empty() {
        let stateless = PrintOptions {
            stateless: true,
            ..*opts
        };
        lines.push(super::stateful::inline_exprs(&s.exprs, &stateless));
    }
    if udata::get(ud, udata::MERGE_ELEMENTS).is_some() {
        lines.push("auto-merge".into());
    }
    if let Some(to) = s.timeout {
        lines.push(format!("timeout {}", value::time_ms(to)));
    }
    if let Some(gc) = s.gc_interval {
        if s.timeout.is_some() && gc != 0 {
            lines.push(format!("gc-interval {}", value::time_ms(gc as u64)));
        }
    }
    if let Some(c) = udata::comment(ud) {
        lines.push(format!("comment \"{c}\""));
    }
    if !s.elements.is_empty() {
        let empty = Rule::new(Vec::new());
        let d = Decompiler::new(t.family, t, &empty, opts);
        let layout = layout(s);
        let items = elements(&d, s, &layout, " | ");
        if !items.is_empty() {
            lines.push(wrap_elements(&items, per_line(&layout)));
        }
    }
    lines
}

/// How many elements nft puts on one line of a named set's listing.
fn per_line(layout: &KeyLayout) -> usize {
    // By the key's datatype, as nft 1.0.6 lists them (measured type by
    // type); concatenations and every other type get one per line.
    match layout.0.as_slice() {
        [(vt, _, _)] => match vt.dtype.name {
            "integer" | "nf_proto" | "arp_op" | "inet_proto" | "inet_service" | "tcp_flag"
            | "dccp_pkttype" | "mark" | "iface_index" | "classid" | "uid" | "gid" | "ct_dir"
            | "bitmask" => 5,
            "ipv4_addr" | "ct_state" | "ct_status" | "pkttype" => 2,
            _ => 1,
        },
        _ => 1,
    }
}

/// `elements = { a, b,\n\t\t\t     c }`: continuation lines align under
/// the first element.
fn wrap_elements(items: &[String], per_line: usize) -> String {
    let mut s = String::from("elements = { ");
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
            if i % per_line.max(1) == 0 {
                s.push_str("\n\t\t\t     ");
            } else {
                s.push(' ');
            }
        }
        s.push_str(it);
    }
    s.push_str(" }");
    s
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

fn l3_name(p: u16) -> String {
    match p as u32 {
        NFPROTO_IPV4 => "ip".into(),
        NFPROTO_IPV6 => "ip6".into(),
        NFPROTO_INET => "inet".into(),
        n => n.to_string(),
    }
}

fn l4_name(p: u8) -> String {
    dt::INET_PROTO
        .symbol(p as u64)
        .map_or(p.to_string(), str::to_string)
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
            if !opts.stateless && used > 0 {
                let _ = write!(l, " used {}", bytes_unit(used));
            }
            ("quota", vec![l])
        }
        ObjectData::CtHelper(h) => (
            "ct helper",
            vec![
                format!(
                    "type \"{}\" protocol {}",
                    h.name.as_deref().unwrap_or(""),
                    l4_name(h.l4proto.unwrap_or(0))
                ),
                format!("l3proto {}", l3_name(h.l3proto.unwrap_or(0))),
            ],
        ),
        ObjectData::CtExpect(e) => (
            "ct expectation",
            vec![
                format!("protocol {}", l4_name(e.l4proto.unwrap_or(0))),
                format!("dport {}", e.dport.unwrap_or(0)),
                // The kernel keeps this one in host order.
                format!(
                    "timeout {}",
                    value::time_ms(u32::from_ne_bytes(e.timeout.unwrap_or(0).to_be_bytes()) as u64)
                ),
                format!("size {}", e.size.unwrap_or(0)),
                format!("l3proto {}", l3_name(e.l3proto.unwrap_or(0))),
            ],
        ),
        ObjectData::Synproxy(sp) => {
            let f = sp.flags.unwrap_or(0);
            let mut v = vec![
                format!("mss {}", sp.mss.unwrap_or(0)),
                format!("wscale {}", sp.wscale.unwrap_or(0)),
            ];
            let opts: Vec<&str> = [(8, "timestamp"), (4, "sack-perm")]
                .iter()
                .filter(|(b, _)| f & b != 0)
                .map(|(_, n)| *n)
                .collect();
            if !opts.is_empty() {
                v.push(opts.join(" "));
            }
            ("synproxy", v)
        }
        ObjectData::Secmark(sm) => (
            "secmark",
            vec![format!("\"{}\"", sm.ctx.as_deref().unwrap_or(""))],
        ),
        ObjectData::Limit(l) => (
            "limit",
            vec![limit(l).trim_start_matches("limit ").to_string()],
        ),
        ObjectData::CtTimeout(to) => {
            let l4 = to.l4proto.unwrap_or(0);
            let states = crate::proto::keys::ct_timeout_states(l4);
            // nft lists only the states whose timeout is not the default.
            let policy: Vec<String> = to
                .policy
                .iter()
                .flat_map(|p| p.0.iter())
                .filter_map(|(ty, secs)| {
                    let (name, default) = states.get((*ty as usize).checked_sub(1)?)?;
                    (secs != default).then(|| format!("{name} : {secs}"))
                })
                .collect();
            (
                "ct timeout",
                vec![
                    format!("protocol {}", l4_name(l4)),
                    format!("l3proto {}", l3_name(to.l3proto.unwrap_or(0))),
                    format!("policy = {{ {} }}", policy.join(", ")),
                ],
            )
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
