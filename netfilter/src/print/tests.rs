//! Unit tests on hand-built rules (the kernel conformance test is
//! `tests/print_conformance.rs`).

use super::*;
use crate::expr::cmp::{Cmp, CmpOp};
use crate::expr::immediate::Immediate;
use crate::expr::meta::{Meta, MetaKey};
use crate::expr::payload::{Payload, PayloadBase};
use crate::expr::{Data, Expr, Verdict};
use crate::model::{Chain, Hook, Table};

const O: PrintOptions = PrintOptions {
    stateless: true,
    numeric_protocol: true,
};

fn l4proto_tcp_dport(port: u16) -> Vec<Expr> {
    vec![
        Expr::Meta(Meta {
            key: Some(MetaKey::L4proto),
            dreg: Some(1),
            ..Default::default()
        }),
        Expr::Cmp(Cmp {
            sreg: Some(1),
            op: Some(CmpOp::Eq),
            data: Some(Data::value(vec![6])),
            ..Default::default()
        }),
        Expr::Payload(Payload {
            dreg: Some(1),
            base: Some(PayloadBase::Transport),
            offset: Some(2),
            len: Some(2),
            ..Default::default()
        }),
        Expr::Cmp(Cmp {
            sreg: Some(1),
            op: Some(CmpOp::Eq),
            data: Some(Data::value(port.to_be_bytes().to_vec())),
            ..Default::default()
        }),
        Expr::Immediate(Immediate {
            dreg: Some(0),
            data: Some(Data::Verdict(Verdict::Accept)),
            ..Default::default()
        }),
    ]
}

#[test]
fn tcp_dport_elides_its_dependency() {
    let t = Table::new(Family::Inet, "t");
    let r = Rule::new(l4proto_tcp_dport(22));
    assert_eq!(rule(Family::Inet, &t, &r, &O), "tcp dport 22 accept");
}

#[test]
fn ruleset_layout_matches_nft() {
    let mut t = Table::new(Family::Ip, "filter");
    let mut c = Chain::new("input");
    c.hook = Some(Hook {
        num: 1,
        priority: 10,
        devices: vec![],
        device_list: false,
    });
    c.chain_type = Some("filter".into());
    c.policy = Some(0);
    c.rules.push(Rule::new(l4proto_tcp_dport(80)));
    t.chains.push(c);
    t.chains.push(Chain::new("other"));
    let rs = Ruleset { tables: vec![t] };
    assert_eq!(
        ruleset(&rs, &O),
        "table ip filter {\n\tchain input {\n\t\ttype filter hook input priority filter + 10; policy drop;\n\t\ttcp dport 80 accept\n\t}\n\n\tchain other {\n\t}\n}\n"
    );
}

#[test]
fn priorities_print_by_name_within_ten() {
    assert_eq!(priority_text(Family::Ip, 1, -150), "mangle");
    assert_eq!(priority_text(Family::Inet, 1, 10), "filter + 10");
    assert_eq!(priority_text(Family::Ip6, 1, 40), "security - 10");
    assert_eq!(priority_text(Family::Ip, 1, -11), "-11");
    assert_eq!(priority_text(Family::Bridge, 1, -200), "filter");
    // Names valid on one hook only (measured with nft 1.0.6).
    assert_eq!(priority_text(Family::Ip, 0, -100), "dstnat");
    assert_eq!(priority_text(Family::Ip, 3, -100), "-100");
    assert_eq!(priority_text(Family::Ip, 4, 105), "srcnat + 5");
    assert_eq!(priority_text(Family::Ip, 1, 100), "100");
    assert_eq!(priority_text(Family::Bridge, 3, 110), "out + 10");
    assert_eq!(priority_text(Family::Arp, 0, -300), "-300");
}

fn set(
    name: &str,
    flags: u32,
    key_type: u32,
    key_len: u32,
    elements: Vec<crate::model::Element>,
) -> crate::model::Set {
    crate::model::Set {
        flags,
        elements: elements.into(),
        ..crate::model::Set::new(name, key_type, key_len)
    }
}

fn elem(key: &[u8], flags: Option<u32>) -> crate::model::Element {
    crate::model::Element {
        key: Some(crate::expr::Bytes::from(key)),
        flags,
        ..Default::default()
    }
}

#[test]
fn anonymous_set_lookup_prints_its_elements_sorted() {
    use crate::expr::lookup::Lookup;
    use crate::sys::*;
    let t = Table::new(Family::Ip, "t");
    let mut r = Rule::new(vec![
        Expr::Meta(Meta {
            key: Some(MetaKey::L4proto),
            dreg: Some(1),
            ..Default::default()
        }),
        Expr::Lookup(Lookup {
            set: Some("__set0".into()),
            sreg: Some(1),
            ..Default::default()
        }),
    ]);
    r.sets.push(set(
        "__set0",
        NFT_SET_ANONYMOUS | NFT_SET_CONSTANT,
        12,
        1,
        vec![elem(&[17], None), elem(&[6], None)],
    ));
    assert_eq!(rule(Family::Ip, &t, &r, &O), "meta l4proto { 6, 17 }");
    let named = PrintOptions::default();
    assert_eq!(
        rule(Family::Ip, &t, &r, &named),
        "meta l4proto { tcp, udp }"
    );
}

#[test]
fn named_interval_set_merges_ranges_into_prefixes() {
    use crate::sys::*;
    let mut t = Table::new(Family::Ip, "t");
    t.sets.push(set(
        "nets",
        NFT_SET_INTERVAL,
        7,
        4,
        vec![
            elem(&[0, 0, 0, 0], Some(NFT_SET_ELEM_INTERVAL_END)),
            elem(&[10, 0, 0, 0], None),
            elem(&[11, 0, 0, 0], Some(NFT_SET_ELEM_INTERVAL_END)),
            elem(&[192, 168, 1, 1], None),
            elem(&[192, 168, 1, 6], Some(NFT_SET_ELEM_INTERVAL_END)),
        ],
    ));
    let rs = Ruleset { tables: vec![t] };
    assert_eq!(
        ruleset(&rs, &O),
        "table ip t {\n\tset nets {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.0.0.0/8, 192.168.1.1-192.168.1.5 }\n\t}\n}\n"
    );
}
