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
