//! Helpers shared by the kernel codec tests: dump rules, and check that
//! decode + encode reproduces the kernel's bytes with everything typed.

#![allow(dead_code)]

pub mod bytecode;
pub mod corpus;
pub mod listing;
pub mod report;
pub mod values;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;

use linx_netfilter::expr::{decode_list, encode_list, Expr};
use linx_netfilter::netlink::{Attrs, Writer};
use linx_netfilter::object::ObjectData;
use linx_netfilter::sys::*;
use linx_netfilter::testing::TestNetns;
use linx_netfilter::Socket;

/// One line on the terminal even though `cargo test` captures a passing
/// test's output (the capture takes `print!`/`eprint!`, not writes to the
/// process's stderr): for what a reader of a green run must still see.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Says that the calling test skips, and why.
pub fn skip(reason: &str) {
    let thread = std::thread::current();
    say(&format!(
        "skipped {}: {reason}",
        thread.name().unwrap_or("a test")
    ));
}

pub fn family_name(n: u8) -> &'static str {
    match n as u32 {
        NFPROTO_IPV4 => "ip",
        NFPROTO_IPV6 => "ip6",
        NFPROTO_INET => "inet",
        NFPROTO_ARP => "arp",
        NFPROTO_BRIDGE => "bridge",
        NFPROTO_NETDEV => "netdev",
        _ => "?",
    }
}

/// Checks that a decoded value holds nothing untyped: no unknown
/// expression, no unknown attribute, no raw data nest.
pub fn untyped_parts(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == "unknown" || k == "raw" {
                    out.push(format!("{path}.{k} = {x}"));
                } else {
                    untyped_parts(x, &format!("{path}.{k}"), out);
                }
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                untyped_parts(x, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// Decodes and re-encodes one rule's expression list; `Err` says why the
/// bytes differ or what stayed untyped.
pub fn check_exprs(raw: &[u8]) -> Result<Vec<Expr>, String> {
    let exprs = decode_list(Attrs::new(raw)).map_err(|e| format!("decode: {e}"))?;
    let mut w = Writer::new();
    encode_list(&exprs, &mut w);
    if w.as_bytes() != raw {
        // Name the first expression whose bytes differ.
        let mut detail = String::new();
        for (i, (a, e)) in Attrs::new(raw).zip(&exprs).enumerate() {
            let a = a.map_err(|e| e.to_string())?;
            let mut one = Writer::new();
            e.encode(&mut one);
            let mut orig = Writer::new();
            orig.put(a.raw_type(), a.payload());
            if one.as_bytes() != orig.as_bytes() {
                detail = format!(
                    "expr #{i} {}: kernel {} ours {} ({e:?})",
                    e.name(),
                    hex(orig.as_bytes()),
                    hex(one.as_bytes())
                );
                break;
            }
        }
        return Err(format!("bytes differ: {detail}"));
    }
    let mut bad = Vec::new();
    for e in &exprs {
        if matches!(e, Expr::Unknown { .. }) {
            bad.push(format!("unknown expression {}", e.name()));
        }
        let v = serde_json::to_value(e).map_err(|e| e.to_string())?;
        untyped_parts(&v, e.name(), &mut bad);
    }
    if bad.is_empty() {
        Ok(exprs)
    } else {
        Err(format!("untyped: {}", bad.join("; ")))
    }
}

/// Rules dumped from one namespace: (family, table, chain) -> expression
/// list payloads in chain order.
pub type Dumped = HashMap<(String, String, String), Vec<Vec<u8>>>;

pub fn dump_rules(ns: &TestNetns) -> Dumped {
    let mut sock = Socket::open(&ns.netns()).expect("open socket");
    let dump = sock
        .dump(NFT_MSG_GETRULE, NFPROTO_UNSPEC as u8, |_| {})
        .expect("dump rules");
    let mut out: Dumped = HashMap::new();
    for m in dump.iter() {
        let m = m.expect("message");
        let (family, attrs) = m.nfgen().expect("nfgenmsg");
        let (mut table, mut chain, mut exprs) = (String::new(), String::new(), Vec::new());
        for a in attrs {
            let a = a.expect("attribute");
            match a.kind() {
                NFTA_RULE_TABLE => table = a.str().unwrap().to_owned(),
                NFTA_RULE_CHAIN => chain = a.str().unwrap().to_owned(),
                NFTA_RULE_EXPRESSIONS => exprs = a.payload().to_vec(),
                _ => {}
            }
        }
        out.entry((family_name(family).to_owned(), table, chain))
            .or_default()
            .push(exprs);
    }
    out
}

/// Named objects dumped from one namespace: (name, `NFT_OBJECT_*`, the
/// payload of `NFTA_OBJ_DATA`).
pub fn dump_objects(ns: &TestNetns) -> Vec<(String, u32, Vec<u8>)> {
    let mut sock = Socket::open(&ns.netns()).expect("open socket");
    let dump = sock
        .dump(NFT_MSG_GETOBJ, NFPROTO_UNSPEC as u8, |_| {})
        .expect("dump objects");
    let mut out = Vec::new();
    for m in dump.iter() {
        let (_, attrs) = m.expect("message").nfgen().expect("nfgenmsg");
        let (mut name, mut ty, mut data) = (String::new(), 0, Vec::new());
        for a in attrs {
            let a = a.expect("attribute");
            match a.kind() {
                NFTA_OBJ_NAME => name = a.str().unwrap().to_owned(),
                NFTA_OBJ_TYPE => ty = a.u32_be().unwrap(),
                NFTA_OBJ_DATA => data = a.payload().to_vec(),
                _ => {}
            }
        }
        out.push((name, ty, data));
    }
    out
}

/// Decodes and re-encodes one object body; `Err` says why the bytes
/// differ or what stayed untyped.
pub fn check_object(ty: u32, data: &[u8]) -> Result<ObjectData, String> {
    let obj = ObjectData::decode(ty, Attrs::new(data)).map_err(|e| format!("decode: {e}"))?;
    let mut w = Writer::new();
    obj.encode_attrs(&mut w);
    if w.as_bytes() != data {
        return Err(format!(
            "bytes differ: kernel {} ours {} ({obj:?})",
            hex(data),
            hex(w.as_bytes())
        ));
    }
    let mut bad = Vec::new();
    untyped_parts(&serde_json::to_value(&obj).unwrap(), "object", &mut bad);
    if matches!(obj, ObjectData::Raw(_) | ObjectData::Bytes(_)) || !bad.is_empty() {
        return Err(format!("untyped: {obj:?} {bad:?}"));
    }
    Ok(obj)
}
