use super::*;
use crate::netlink::Attrs;

fn roundtrip(exprs: &[Expr]) {
    let mut w = Writer::new();
    encode_list(exprs, &mut w);
    let back = decode_list(Attrs::new(w.as_bytes())).unwrap();
    assert_eq!(back, exprs);
    let mut w2 = Writer::new();
    encode_list(&back, &mut w2);
    assert_eq!(w.as_bytes(), w2.as_bytes());
}

#[test]
fn accept_encodes_as_nft_sends_it() {
    let e: Expr = immediate::Immediate {
        dreg: Some(NFT_REG_VERDICT),
        data: Some(Data::Verdict(Verdict::Accept)),
        ..Default::default()
    }
    .into();
    let mut w = Writer::new();
    e.encode(&mut w);
    // LIST_ELEM { NAME "immediate", DATA { DREG 0, DATA { VERDICT { CODE 1 } } } }
    let want: &[u8] = &[
        0x30, 0x00, 0x01, 0x00, // list elem, 48 bytes
        0x0e, 0x00, 0x01, 0x00, b'i', b'm', b'm', b'e', b'd', b'i', b'a', b't', b'e', 0, 0,
        0, // name
        0x1c, 0x00, 0x02, 0x00, // data
        0x08, 0x00, 0x01, 0x00, 0, 0, 0, 0, // dreg 0
        0x10, 0x00, 0x02, 0x00, // immediate data
        0x0c, 0x00, 0x02, 0x00, // verdict
        0x08, 0x00, 0x01, 0x00, 0, 0, 0, 1, // code accept
    ];
    assert_eq!(w.as_bytes(), want);
    roundtrip(&[e]);
}

#[test]
fn unknown_expressions_and_attributes_survive() {
    let mut w = Writer::new();
    w.nest(NFTA_LIST_ELEM, |w| {
        w.put_str(NFTA_EXPR_NAME, "frobnicate");
        w.nest(NFTA_EXPR_DATA, |w| w.put_u32_be(1, 42));
    });
    w.nest(NFTA_LIST_ELEM, |w| {
        w.put_str(NFTA_EXPR_NAME, "counter");
        w.nest(NFTA_EXPR_DATA, |w| {
            w.put_u64_be(NFTA_COUNTER_BYTES, 1);
            w.put_u64_be(NFTA_COUNTER_PACKETS, 2);
            w.put_u32_be(77, 9);
        });
    });
    let exprs = decode_list(Attrs::new(w.as_bytes())).unwrap();
    assert!(matches!(&exprs[0], Expr::Unknown { name, .. } if name == "frobnicate"));
    let Expr::Counter(c) = &exprs[1] else {
        panic!()
    };
    assert_eq!((c.bytes, c.packets, c.unknown.len()), (Some(1), Some(2), 1));
    let mut again = Writer::new();
    encode_list(&exprs, &mut again);
    assert_eq!(again.as_bytes(), w.as_bytes());
}

#[test]
fn malformed_expression_is_an_error() {
    let mut w = Writer::new();
    w.nest(NFTA_LIST_ELEM, |w| {
        w.put_str(NFTA_EXPR_NAME, "cmp");
        w.nest(NFTA_EXPR_DATA, |w| w.put_u16_be(NFTA_CMP_SREG, 1));
    });
    assert!(decode_list(Attrs::new(w.as_bytes())).is_err());
    let bytes = w.as_bytes();
    for cut in 0..bytes.len() {
        let _ = decode_list(Attrs::new(&bytes[..cut]));
    }
}

#[test]
fn set_refs_reach_lookup_dynset_and_objref_maps_only() {
    let mut exprs: Vec<Expr> = vec![
        lookup::Lookup {
            set: Some("__set0".into()),
            sreg: Some(1),
            ..Default::default()
        }
        .into(),
        dynset::Dynset {
            set_name: Some("__set1".into()),
            ..Default::default()
        }
        .into(),
        objref::Objref {
            set_name: Some("__map2".into()),
            set_sreg: Some(1),
            ..Default::default()
        }
        .into(),
        objref::Objref {
            imm_name: Some("c1".into()),
            imm_type: Some(NFT_OBJECT_COUNTER),
            ..Default::default()
        }
        .into(),
        counter::Counter::default().into(),
    ];
    for (i, e) in exprs.iter_mut().enumerate() {
        if let Some((name, id)) = e.set_refs_mut() {
            *name = None;
            *id = Some(i as u32);
        }
    }
    let ids: Vec<_> = exprs
        .iter_mut()
        .map(|e| e.set_refs_mut().map(|(n, id)| (n.clone(), *id)))
        .collect();
    assert_eq!(
        ids,
        [
            Some((None, Some(0))),
            Some((None, Some(1))),
            Some((None, Some(2))),
            None,
            None
        ]
    );
    let Expr::Lookup(l) = &exprs[0] else { panic!() };
    assert_eq!((l.set.as_deref(), l.set_id), (None, Some(0)));
    roundtrip(&exprs);
}

#[test]
fn clear_state_zeroes_runtime_values_only() {
    let counter = |n| -> Expr {
        counter::Counter {
            bytes: Some(n),
            packets: Some(n),
            ..Default::default()
        }
        .into()
    };
    let quota = quota::Quota {
        bytes: Some(1000),
        flags: Some(1),
        consumed: Some(77),
        ..Default::default()
    };
    let mut exprs: Vec<Expr> = vec![
        counter(5),
        quota.clone().into(),
        last::Last {
            set: Some(1),
            msecs: Some(1234),
            ..Default::default()
        }
        .into(),
        dynset::Dynset {
            set_name: Some("s".into()),
            expr: Some(Box::new(counter(9))),
            exprs: Some(vec![counter(3), quota.clone().into()]),
            ..Default::default()
        }
        .into(),
        limit::Limit {
            rate: Some(10),
            unit: Some(1),
            ..Default::default()
        }
        .into(),
    ];
    let limit_before = exprs[4].clone();
    clear_state_all(&mut exprs);
    let cleared_quota: Expr = quota::Quota {
        consumed: Some(0),
        ..quota
    }
    .into();
    assert_eq!(exprs[0], counter(0));
    assert_eq!(exprs[1], cleared_quota);
    assert_eq!(
        exprs[2],
        last::Last {
            set: Some(0),
            msecs: Some(0),
            ..Default::default()
        }
        .into()
    );
    let Expr::Dynset(d) = &exprs[3] else { panic!() };
    assert_eq!(d.expr.as_deref(), Some(&counter(0)));
    assert_eq!(d.exprs.as_deref(), Some(&[counter(0), cleared_quota][..]));
    assert_eq!(exprs[4], limit_before, "configuration is untouched");
    // Absent runtime attributes stay absent, so encoding keeps the layout.
    let mut empty: Expr = counter::Counter::default().into();
    empty.clear_state();
    assert_eq!(empty, counter::Counter::default().into());
}

#[test]
fn modelled_expressions_roundtrip_and_keep_their_names() {
    // Forms this kernel cannot load (queue, flow_offload): the codec must
    // still be lossless and name them as the kernel does.
    let exprs: Vec<Expr> = vec![
        queue::Queue {
            num: Some(3),
            total: Some(2),
            flags: Some(NFT_QUEUE_FLAG_BYPASS as u16),
            ..Default::default()
        }
        .into(),
        queue::Queue {
            sreg_qnum: Some(NFT_REG32_00),
            flags: Some(0),
            ..Default::default()
        }
        .into(),
        flow_offload::FlowOffload {
            table_name: Some("ft".into()),
            ..Default::default()
        }
        .into(),
        notrack::Notrack::default().into(),
    ];
    roundtrip(&exprs);
    let names: Vec<_> = exprs.iter().map(Expr::name).collect();
    assert_eq!(names, ["queue", "queue", "flow_offload", "notrack"]);
    // notrack carries no data nest at all, as the kernel dumps it.
    let mut w = Writer::new();
    exprs[3].encode(&mut w);
    assert_eq!(w.len(), 4 + 12);
}

#[test]
fn expressions_stay_small() {
    // Every rule holds a vector of these, and the agent keeps every pod's
    // rules: a large new variant must be boxed (`as box` in the list).
    assert!(
        std::mem::size_of::<Expr>() <= 88,
        "{}",
        std::mem::size_of::<Expr>()
    );
    assert!(
        std::mem::size_of::<Data>() <= 32,
        "{}",
        std::mem::size_of::<Data>()
    );
}
