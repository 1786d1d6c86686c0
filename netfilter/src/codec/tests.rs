//! Codecs on bytes: what the kernel dumps decodes into values, values
//! encode into what nft sends, kernel-only facts are kept but never sent.

use super::*;
use crate::expr::quota::Quota;
use crate::expr::Expr;
use crate::model::{Chain, Element, Hook, ObjectData, Set};
use crate::netlink::attr::NLA_F_NESTED;
use crate::netlink::{Batch, Msgs};
use crate::sys::*;

/// One nf_tables message as the kernel sends it in a dump.
fn dumped(msg: u32, family: u32, attrs: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    let s = w.begin_msg(nft_msg_type(msg), NLM_F_MULTI, 1, family as u8, 0);
    attrs(&mut w);
    w.end_msg(s);
    w.into_bytes()
}

fn first(bytes: &[u8]) -> Msg<'_> {
    Msgs::new(bytes).next().unwrap().unwrap()
}

fn attrs_of(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    f(&mut w);
    w.into_bytes()
}

/// Top-level attributes as (type, payload), sorted: nft's order is not
/// the kernel's concern, the attributes are.
fn attr_set(bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut v: Vec<_> = Attrs::new(bytes)
        .map(|a| a.map(|a| (a.raw_type(), a.payload().to_vec())))
        .collect::<Result<_, _>>()
        .unwrap();
    v.sort();
    v
}

/// Every prefix of a message decodes to a value or an error, never a panic.
fn truncations_are_errors<T>(bytes: &[u8], decode: impl Fn(&Msg<'_>) -> Result<T, DecodeError>) {
    for cut in 20..bytes.len() {
        let mut b = bytes[..cut].to_vec();
        b[..4].copy_from_slice(&(cut as u32).to_ne_bytes());
        let _ = decode(&first(&b));
    }
}

#[test]
fn table_keeps_kernel_facts_and_unknown_attributes_but_sends_only_unknowns() {
    let bytes = dumped(NFT_MSG_NEWTABLE, NFPROTO_INET, |w| {
        w.put_str(NFTA_TABLE_NAME, "fw");
        w.put_u32_be(NFTA_TABLE_FLAGS, 1);
        w.put_u32_be(NFTA_TABLE_USE, 3);
        w.put_u64_be(NFTA_TABLE_HANDLE, 7);
        w.put(NFTA_TABLE_USERDATA, &[0, 3, b'h', b'i', 0]);
        w.put_u32_be(NFTA_TABLE_OWNER, 1234);
        w.put_u32_be(42, 9);
    });
    let t = table::decode(&first(&bytes)).unwrap();
    assert_eq!(
        (t.family, t.name.as_str(), t.flags),
        (Family::Inet, "fw", 1)
    );
    assert_eq!(
        (t.use_count, t.handle, t.owner),
        (Some(3), Some(7), Some(1234))
    );
    assert_eq!(t.comment(), Some("hi"));
    assert_eq!(
        t.unknown,
        vec![RawAttr {
            ty: 42,
            data: Bytes::from(vec![0, 0, 0, 9])
        }]
    );
    let mut w = Writer::new();
    table::encode(&mut w, &t);
    let want = attrs_of(|w| {
        w.put_str(NFTA_TABLE_NAME, "fw");
        w.put_u32_be(NFTA_TABLE_FLAGS, 1);
        w.put(NFTA_TABLE_USERDATA, &[0, 3, b'h', b'i', 0]);
        w.put_u32_be(42, 9);
    });
    assert_eq!(w.as_bytes(), want);
    truncations_are_errors(&bytes, table::decode);
}

#[test]
fn set_as_the_kernel_dumps_it_encodes_as_nft_sends_it() {
    // `set ipset { type ipv4_addr; }` in inet filter, dumped by Linux 6.18
    // (handle, backend, element count, empty DESC).
    let dump: &[u8] = &[
        0x0b, 0, 1, 0, b'f', b'i', b'l', b't', b'e', b'r', 0, 0, 0x0a, 0, 2, 0, b'i', b'p', b's',
        b'e', b't', 0, 0, 0, 0x0c, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 8, 0, 4, 0, 0, 0, 0, 7, 8,
        0, 5, 0, 0, 0, 0, 4, 0x0a, 0, 0x0d, 0, 0, 4, 2, 0, 0, 0, 0, 0, 4, 0, 9, 0, 0x0b, 0, 0x13,
        0, b'0', b'x', b'f', b'f', b'f', b'f', 0, 0, 8, 0, 0x14, 0, 0, 0, 0, 0,
    ];
    let bytes = dumped(NFT_MSG_NEWSET, NFPROTO_INET, |w| w.put_raw(dump));
    let d = set::decode(&first(&bytes)).unwrap();
    assert_eq!((d.family, d.table), (Family::Inet, "filter"));
    let s = d.value;
    assert_eq!(
        (s.name.as_str(), s.flags, s.key_type, s.key_len),
        ("ipset", 0, 7, 4)
    );
    assert_eq!(s.handle, Some(1));
    assert!(s.unknown.is_empty(), "{:?}", s.unknown);
    // What `nft add set inet filter ipset { type ipv4_addr; }` sends (strace).
    let nft = attrs_of(|w| {
        w.put_str(NFTA_SET_TABLE, "filter");
        w.put_str(NFTA_SET_NAME, "ipset");
        w.put_u32_be(NFTA_SET_FLAGS, 0);
        w.put_u32_be(NFTA_SET_KEY_TYPE, 7);
        w.put_u32_be(NFTA_SET_KEY_LEN, 4);
        w.put_u32_be(NFTA_SET_ID, 1);
        w.put(NFTA_SET_USERDATA, &[0, 4, 2, 0, 0, 0]);
    });
    let mut w = Writer::new();
    set::encode(&mut w, "filter", &s, None, Some(1));
    assert_eq!(attr_set(w.as_bytes()), attr_set(&nft));
    truncations_are_errors(&bytes, |m| set::decode(m).map(|_| ()));
}

#[test]
fn anonymous_set_is_sent_under_a_template_with_its_id() {
    let s = Set {
        flags: NFT_SET_ANONYMOUS | NFT_SET_CONSTANT,
        ..Set::new("__set3", 7, 4)
    };
    let mut w = Writer::new();
    let template = setref::anonymous_template(&s.name);
    assert_eq!(template, "__set%d");
    assert_eq!(setref::anonymous_template("__map12"), "__map%d");
    assert_eq!(setref::anonymous_template("plain"), "plain");
    set::encode(&mut w, "t", &s, Some(&template), Some(5));
    let got = attr_set(w.as_bytes());
    assert!(got.contains(&(NFTA_SET_NAME, b"__set%d\0".to_vec())));
    assert!(got.contains(&(NFTA_SET_ID, 5u32.to_be_bytes().to_vec())));
}

#[test]
fn chain_hook_device_dumped_twice_is_one_device_sent_once() {
    // The kernel dumps a single device as both HOOK_DEV and HOOK_DEVS.
    let bytes = dumped(NFT_MSG_NEWCHAIN, NFPROTO_INET, |w| {
        w.put_str(NFTA_CHAIN_TABLE, "filter");
        w.put_str(NFTA_CHAIN_NAME, "ingress");
        w.put_u64_be(NFTA_CHAIN_HANDLE, 1);
        w.nest(NFTA_CHAIN_HOOK, |w| {
            w.put_u32_be(NFTA_HOOK_HOOKNUM, 5);
            w.put_u32_be(NFTA_HOOK_PRIORITY, (-150i32) as u32);
            w.put_str(NFTA_HOOK_DEV, "lo");
            w.nest(NFTA_HOOK_DEVS, |w| w.put_str(NFTA_DEVICE_NAME, "lo"));
        });
        w.put_u32_be(NFTA_CHAIN_POLICY, 1);
        w.put_u32_be(NFTA_CHAIN_USE, 0);
        w.put_str(NFTA_CHAIN_TYPE, "filter");
        w.put_u32_be(NFTA_CHAIN_FLAGS, NFT_CHAIN_BASE);
    });
    let d = chain::decode(&first(&bytes)).unwrap();
    assert_eq!(d.table, "filter");
    let c = d.value;
    let hook = c.hook.clone().unwrap();
    assert_eq!((hook.num, hook.priority), (5, -150));
    assert_eq!(
        (hook.devices, hook.device_list),
        (vec!["lo".to_owned()], true)
    );
    assert_eq!(
        (c.policy, c.use_count, c.handle),
        (Some(1), Some(0), Some(1))
    );
    let mut w = Writer::new();
    chain::encode(&mut w, "filter", &c);
    let want = attrs_of(|w| {
        w.put_str(NFTA_CHAIN_TABLE, "filter");
        w.put_str(NFTA_CHAIN_NAME, "ingress");
        w.nest(NFTA_CHAIN_HOOK, |w| {
            w.put_u32_be(NFTA_HOOK_HOOKNUM, 5);
            w.put_u32_be(NFTA_HOOK_PRIORITY, (-150i32) as u32);
            w.nest(NFTA_HOOK_DEVS, |w| w.put_str(NFTA_DEVICE_NAME, "lo"));
        });
        w.put_u32_be(NFTA_CHAIN_POLICY, 1);
        w.put_str(NFTA_CHAIN_TYPE, "filter");
        w.put_u32_be(NFTA_CHAIN_FLAGS, NFT_CHAIN_BASE);
    });
    assert_eq!(w.as_bytes(), want);
    truncations_are_errors(&bytes, |m| chain::decode(m).map(|_| ()));
    // A single device without a list goes back as HOOK_DEV.
    let mut one = Chain::new("in");
    one.hook = Some(Hook {
        num: 0,
        priority: 0,
        devices: vec!["eth0".into()],
        device_list: false,
    });
    let mut w = Writer::new();
    chain::encode(&mut w, "t", &one);
    let hook = Attrs::new(w.as_bytes())
        .flatten()
        .find(|a| a.kind() == NFTA_CHAIN_HOOK)
        .unwrap();
    assert!(hook.nested().flatten().any(|a| a.kind() == NFTA_HOOK_DEV));
}

#[test]
fn rule_position_and_handle_are_not_sent() {
    let exprs = attrs_of(|w| {
        w.nest(NFTA_LIST_ELEM, |w| {
            w.put_str(NFTA_EXPR_NAME, "counter");
            w.nest(NFTA_EXPR_DATA, |w| {
                w.put_u64_be(NFTA_COUNTER_BYTES, 10);
                w.put_u64_be(NFTA_COUNTER_PACKETS, 1);
            });
        })
    });
    let bytes = dumped(NFT_MSG_NEWRULE, NFPROTO_IPV4, |w| {
        w.put_str(NFTA_RULE_TABLE, "t");
        w.put_str(NFTA_RULE_CHAIN, "c");
        w.put_u64_be(NFTA_RULE_HANDLE, 9);
        w.put(NFTA_RULE_EXPRESSIONS, &exprs);
        w.put_u64_be(NFTA_RULE_POSITION, 8);
        w.put(NFTA_RULE_USERDATA, &[0, 2, b'x', 0]);
    });
    let d = rule::decode(&first(&bytes)).unwrap();
    assert_eq!((d.table, d.parent), ("t", Some("c")));
    assert_eq!(d.value.handle, Some(9));
    assert_eq!(d.value.comment(), Some("x"));
    assert!(matches!(&d.value.exprs[..], [Expr::Counter(_)]));
    let mut w = Writer::new();
    rule::encode(&mut w, "t", "c", &d.value);
    let want = attrs_of(|w| {
        w.put_str(NFTA_RULE_TABLE, "t");
        w.put_str(NFTA_RULE_CHAIN, "c");
        w.put(NFTA_RULE_EXPRESSIONS, &exprs);
        w.put(NFTA_RULE_USERDATA, &[0, 2, b'x', 0]);
    });
    assert_eq!(w.as_bytes(), want);
    truncations_are_errors(&bytes, |m| rule::decode(m).map(|_| ()));
}

#[test]
fn many_elements_split_into_messages_under_the_attribute_limit() {
    let elems: Vec<Element> = (0..20_000u32)
        .map(|i| Element {
            key: Some(Bytes::from(i.to_be_bytes())),
            flags: (i % 2 == 1).then_some(NFT_SET_ELEM_INTERVAL_END),
            expiration: Some(5),
            ..Default::default()
        })
        .collect();
    let mut batch = Batch::new();
    let to = element::Target {
        family: NFPROTO_IPV4 as u8,
        table: "t",
        set: "s",
        set_id: None,
    };
    let n = element::add_to_batch(&mut batch, NLM_F_CREATE, to, &elems);
    assert!(n > 1 && n == batch.len());
    let mut back = Vec::new();
    for m in batch.messages() {
        let m = m.unwrap();
        assert!(m.bytes.len() < 65_536);
        let d = element::decode_into(&m, &mut back).unwrap();
        assert_eq!((d.table, d.parent), ("t", Some("s")));
    }
    // Expiry is the kernel's: not sent.
    let want: Vec<Element> = elems
        .into_iter()
        .map(|e| Element {
            expiration: None,
            ..e
        })
        .collect();
    assert_eq!(back, want);
    let one = batch.message_bytes(0).unwrap().to_vec();
    truncations_are_errors(&one, |m| element::decode(m).map(|_| ()));
}

#[test]
fn element_key_that_is_not_a_value_is_kept_raw() {
    let bytes = dumped(NFT_MSG_NEWSETELEM, NFPROTO_IPV4, |w| {
        w.put_str(NFTA_SET_ELEM_LIST_TABLE, "t");
        w.put_str(NFTA_SET_ELEM_LIST_SET, "s");
        w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
            w.nest(NFTA_LIST_ELEM, |w| {
                w.nest(NFTA_SET_ELEM_KEY, |w| w.put_u32_be(7, 1));
                w.put_u32_be(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_CATCHALL);
            })
        });
    });
    let d = element::decode(&first(&bytes)).unwrap();
    let e = &d.value[0];
    assert_eq!(
        (e.key.as_ref(), e.flags, e.unknown.len()),
        (None, Some(2), 1)
    );
    let mut w = Writer::new();
    element::encode_element(&mut w, e);
    // Same attributes inside the element (past the LIST_ELEM header).
    assert_eq!(attr_set(&w.as_bytes()[4..]), attr_set(&w_elem(&bytes)[4..]));
}

/// The first element's `NFTA_LIST_ELEM` of a NEWSETELEM message, whole.
fn w_elem(bytes: &[u8]) -> &[u8] {
    let m = first(bytes);
    let list = Attrs::new(m.attr_bytes())
        .flatten()
        .find(|a| a.kind() == NFTA_SET_ELEM_LIST_ELEMENTS)
        .unwrap();
    let p = list.payload();
    &p[..u16::from_ne_bytes([p[0], p[1]]) as usize]
}

#[test]
fn depleted_quota_object_is_sent_as_nft_sends_it() {
    let bytes = dumped(NFT_MSG_NEWOBJ, NFPROTO_IPV4, |w| {
        w.put_str(NFTA_OBJ_TABLE, "filter");
        w.put_str(NFTA_OBJ_NAME, "foo1");
        w.put_u32_be(NFTA_OBJ_TYPE, NFT_OBJECT_QUOTA);
        w.nest(NFTA_OBJ_DATA, |w| {
            w.put_u64_be(NFTA_QUOTA_BYTES, 0);
            w.put_u64_be(NFTA_QUOTA_CONSUMED, 0);
            w.put_u32_be(NFTA_QUOTA_FLAGS, NFT_QUOTA_F_DEPLETED);
        });
        w.put_u32_be(NFTA_OBJ_USE, 0);
        w.put_u64_be(NFTA_OBJ_HANDLE, 2);
        w.put(NFTA_OBJ_USERDATA, b"\x00\x04abc\x00");
    });
    let d = object::decode(&first(&bytes)).unwrap();
    let o = d.value;
    assert_eq!(
        (o.name.as_str(), o.handle, o.use_count),
        ("foo1", Some(2), Some(0))
    );
    let ObjectData::Quota(Quota { flags, .. }) = &o.data else {
        panic!("{:?}", o.data)
    };
    assert_eq!(*flags, Some(NFT_QUOTA_F_DEPLETED));
    // `nft add quota ip filter foo1 { comment "abc"; 0 bytes; }` (strace).
    let nft = attrs_of(|w| {
        w.put_str(NFTA_OBJ_TABLE, "filter");
        w.put_str(NFTA_OBJ_NAME, "foo1");
        w.put_u32_be(NFTA_OBJ_TYPE, NFT_OBJECT_QUOTA);
        w.put(NFTA_OBJ_USERDATA, b"\x00\x04abc\x00");
        w.nest(NFTA_OBJ_DATA | NLA_F_NESTED, |w| {
            w.put_u64_be(NFTA_QUOTA_BYTES, 0);
            w.put_u64_be(NFTA_QUOTA_CONSUMED, 0);
            w.put_u32_be(NFTA_QUOTA_FLAGS, 0);
        });
    });
    let mut w = Writer::new();
    object::encode(&mut w, "filter", &o);
    assert_eq!(attr_set(w.as_bytes()), attr_set(&nft));
    truncations_are_errors(&bytes, |m| object::decode(m).map(|_| ()));
}

#[test]
fn flowtable_round_trips() {
    let bytes = dumped(NFT_MSG_NEWFLOWTABLE, NFPROTO_INET, |w| {
        w.put_str(NFTA_FLOWTABLE_TABLE, "t");
        w.put_str(NFTA_FLOWTABLE_NAME, "f");
        w.nest(NFTA_FLOWTABLE_HOOK, |w| {
            w.put_u32_be(NFTA_FLOWTABLE_HOOK_NUM, 0);
            w.put_u32_be(NFTA_FLOWTABLE_HOOK_PRIORITY, 0);
            w.nest(NFTA_FLOWTABLE_HOOK_DEVS, |w| {
                w.put_str(NFTA_DEVICE_NAME, "eth0");
                w.put_str(NFTA_DEVICE_NAME, "eth1");
            });
        });
        w.put_u32_be(NFTA_FLOWTABLE_USE, 1);
        w.put_u64_be(NFTA_FLOWTABLE_HANDLE, 3);
        w.put_u32_be(NFTA_FLOWTABLE_FLAGS, 0);
    });
    let d = flowtable::decode(&first(&bytes)).unwrap();
    let f = d.value;
    assert_eq!(f.hook.as_ref().unwrap().devices, ["eth0", "eth1"]);
    assert_eq!(
        (f.use_count, f.handle, f.flags),
        (Some(1), Some(3), Some(0))
    );
    let mut w = Writer::new();
    flowtable::encode(&mut w, "t", &f);
    let sent = dumped(NFT_MSG_NEWFLOWTABLE, NFPROTO_INET, |x| {
        x.put_raw(w.as_bytes())
    });
    let mut again = flowtable::decode(&first(&sent)).unwrap().value;
    (again.use_count, again.handle) = (Some(1), Some(3));
    assert_eq!(again, f);
    truncations_are_errors(&bytes, |m| flowtable::decode(m).map(|_| ()));
}

#[test]
fn wrong_message_type_is_an_error() {
    let bytes = dumped(NFT_MSG_NEWCHAIN, NFPROTO_INET, |w| w.put_str(1, "x"));
    assert!(matches!(
        table::decode(&first(&bytes)),
        Err(DecodeError::UnexpectedMessage { .. })
    ));
    let nameless = dumped(NFT_MSG_NEWTABLE, NFPROTO_INET, |_| {});
    assert!(matches!(
        table::decode(&first(&nameless)),
        Err(DecodeError::Missing { .. })
    ));
}
