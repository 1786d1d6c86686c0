use super::*;

#[test]
fn chain_policy_changes_in_place_but_a_hook_change_recreates() {
    let mut base = chain("input", vec![mark_rule(1)]);
    base.hook = Some(Hook {
        num: NF_INET_LOCAL_IN,
        priority: 0,
        devices: vec![],
        device_list: false,
    });
    base.chain_type = Some("filter".into());
    base.policy = Some(NF_ACCEPT);
    let cur = ruleset(vec![with_handles(base.clone())]);
    let mut want = base.clone();
    want.policy = Some(NF_DROP);
    let p = diff(&cur, &ruleset(vec![want.clone()]));
    assert_eq!(p.len(), 1, "{p}");
    assert!(matches!(&p.ops[0], Op::UpdateChain { chain, .. } if chain.policy == Some(NF_DROP)));
    want.hook.as_mut().unwrap().priority = 10;
    let p = diff(&cur, &ruleset(vec![want]));
    let kinds: Vec<&str> = p.ops.iter().map(op_kind).collect();
    assert_eq!(
        kinds,
        ["flush chain", "delete chain", "add chain", "add rule"],
        "{p}"
    );
}

fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::FlushChain { .. } => "flush chain",
        Op::DeleteChain { .. } => "delete chain",
        Op::AddChain { .. } => "add chain",
        Op::AddRule { .. } => "add rule",
        Op::DeleteRule { .. } => "delete rule",
        Op::DeleteSet { .. } => "delete set",
        Op::AddSet { .. } => "add set",
        Op::AddElements { .. } => "add element",
        Op::DeleteElements { .. } => "delete element",
        Op::DeleteTable { .. } => "delete table",
        Op::AddTable { .. } => "add table",
        Op::AddObject { .. } => "add object",
        Op::DeleteObject { .. } => "delete object",
        _ => "other",
    }
}

/// The kinds of a patch's operations, in order.
fn kinds(p: &Patch) -> Vec<&'static str> {
    p.ops.iter().map(op_kind).collect()
}

#[test]
fn set_elements_are_a_delta() {
    let mut cur = ruleset(vec![]);
    cur.tables[0].sets.push(ip_set("s", 100_000));
    let mut want = cur.clone();
    want.tables[0].sets[0].elements.push(Element {
        key: Some(vec![9, 9, 9, 9].into()),
        ..Default::default()
    });
    want.tables[0].sets[0].elements.remove(5);
    let p = diff(&cur, &want);
    assert_eq!(p.len(), 2, "{p}");
    let Op::DeleteElements { elements: del, .. } = &p.ops[0] else {
        panic!("{p}")
    };
    let Op::AddElements { elements: add, .. } = &p.ops[1] else {
        panic!("{p}")
    };
    assert_eq!(del.len(), 1);
    assert_eq!(del[0].key.as_ref().unwrap().as_slice(), 5u32.to_be_bytes());
    assert_eq!(add.len(), 1);
}

#[test]
fn a_recreated_set_takes_its_rules_with_it() {
    let mut cur = ruleset(vec![with_handles(chain(
        "c",
        vec![mark_rule(1), lookup_rule("s"), mark_rule(2)],
    ))]);
    cur.tables[0].sets.push(ip_set("s", 3));
    let mut want = ruleset(vec![chain(
        "c",
        vec![mark_rule(1), lookup_rule("s"), mark_rule(2)],
    )]);
    let mut s = ip_set("s", 3);
    s.flags = NFT_SET_TIMEOUT;
    want.tables[0].sets.push(s);
    let p = diff(&cur, &want);
    let kinds: Vec<&str> = p.ops.iter().map(op_kind).collect();
    assert_eq!(
        kinds,
        ["delete rule", "delete set", "add set", "add rule"],
        "{p}"
    );
    assert!(matches!(
        &p.ops[3],
        Op::AddRule {
            position: Position::After(100),
            ..
        }
    ));
}

#[test]
fn a_table_comment_change_recreates_the_table_in_the_same_patch() {
    let cur = ruleset(vec![with_handles(chain("c", vec![mark_rule(1)]))]);
    let mut want = ruleset(vec![chain("c", vec![mark_rule(1)])]);
    want.tables[0].userdata = Some(Userdata::with_comment(0, "new"));
    let kinds: Vec<&str> = diff(&cur, &want).ops.iter().map(op_kind).collect();
    assert_eq!(
        kinds,
        ["delete table", "add table", "add chain", "add rule"]
    );
}

#[test]
fn tables_not_desired_are_deleted() {
    let cur = ruleset(vec![chain("c", vec![])]);
    let p = diff(&cur, &Ruleset::default());
    assert_eq!(
        p.ops,
        vec![Op::DeleteTable {
            family: Family::Inet,
            name: "fw".into(),
            recreate: None,
        }]
    );
}

#[test]
fn a_rule_depending_on_a_recreated_set_is_replaced_even_inside_the_common_ends() {
    // The lookup rule is first (in the common prefix by content), yet its
    // set is recreated: it must go and come back.
    let mut cur = ruleset(vec![with_handles(chain(
        "c",
        vec![lookup_rule("s"), mark_rule(1), mark_rule(2)],
    ))]);
    cur.tables[0].sets.push(ip_set("s", 3));
    let mut want = ruleset(vec![chain(
        "c",
        vec![lookup_rule("s"), mark_rule(1), mark_rule(2)],
    )]);
    let mut s = ip_set("s", 3);
    s.key_len = 16;
    want.tables[0].sets.push(s);
    let p = diff(&cur, &want);
    let kinds: Vec<&str> = p.ops.iter().map(op_kind).collect();
    assert!(
        kinds.contains(&"delete rule") && kinds.contains(&"add rule"),
        "{p}"
    );
    assert!(
        matches!(
            p.ops.iter().find(|o| matches!(o, Op::AddRule { .. })),
            Some(Op::AddRule {
                position: Position::Before(101),
                ..
            })
        ),
        "{p}"
    );
}

fn counter_object(name: &str, packets: u64) -> Object {
    Object {
        name: name.into(),
        obj_type: NFT_OBJECT_COUNTER,
        data: ObjectData::Counter(counter::Counter {
            packets: Some(packets),
            bytes: Some(packets * 100),
            ..Default::default()
        }),
        userdata: None,
        handle: None,
        use_count: None,
        unknown: vec![],
    }
}

#[test]
fn objects_are_named_by_name_and_type_and_their_state_is_no_change() {
    let quota = Object {
        name: "user1".into(),
        obj_type: NFT_OBJECT_QUOTA,
        data: ObjectData::Quota(crate::expr::quota::Quota {
            bytes: Some(1000),
            flags: Some(1),
            consumed: Some(0),
            ..Default::default()
        }),
        ..counter_object("user1", 0)
    };
    let mut cur = ruleset(vec![]);
    cur.tables[0].objects = vec![counter_object("user1", 12), quota.clone()];
    let mut want = ruleset(vec![]);
    want.tables[0].objects = vec![counter_object("user1", 0), quota];
    assert!(diff(&cur, &want).is_empty(), "{}", diff(&cur, &want));
    // A quota of a new size is updated in place (it keeps what it used).
    let mut bigger = want.clone();
    if let ObjectData::Quota(q) = &mut bigger.tables[0].objects[1].data {
        q.bytes = Some(2000);
    }
    let p = diff(&cur, &bigger);
    assert_eq!(p.len(), 1, "{p}");
    assert!(matches!(&p.ops[0], Op::UpdateObject { .. }), "{p}");
    assert_eq!(p.recreated(), 0);
    // A limit of a new rate is recreated, and the patch says so.
    let limit = |rate: u64| Object {
        name: "l".into(),
        obj_type: NFT_OBJECT_LIMIT,
        data: ObjectData::Limit(crate::expr::limit::Limit {
            rate: Some(rate),
            unit: Some(1),
            ..Default::default()
        }),
        ..counter_object("l", 0)
    };
    cur.tables[0].objects.push(limit(10));
    let mut faster = want.clone();
    faster.tables[0].objects.push(limit(20));
    let p = diff(&cur, &faster);
    assert_eq!(p.len(), 2, "{p}");
    assert!(matches!(
        &p.ops[0],
        Op::DeleteObject {
            obj_type: NFT_OBJECT_LIMIT,
            recreate: Some(_),
            ..
        }
    ));
    assert_eq!(p.recreated(), 1);
    assert!(p.to_string().contains("(recreated: "), "{p}");
}

#[test]
fn a_constant_set_whose_elements_change_is_recreated_with_its_rules() {
    let mut s = ip_set("s", 3);
    s.flags = NFT_SET_CONSTANT;
    let mut cur = ruleset(vec![with_handles(chain("c", vec![lookup_rule("s")]))]);
    cur.tables[0].sets.push(s.clone());
    let mut want = ruleset(vec![chain("c", vec![lookup_rule("s")])]);
    s.elements.pop();
    want.tables[0].sets.push(s);
    let p = diff(&cur, &want);
    let kinds = kinds(&p);
    assert_eq!(kinds, ["delete rule", "delete set", "add set", "add rule"]);
    assert!(
        p.to_string()
            .contains("it refers to set @s, which is recreated"),
        "{p}"
    );
}

/// A verdict map `m` sending mark 1 to `chain`.
fn vmap_to(chain: &str) -> Set {
    let mut m = ip_set("m", 1);
    m.flags = NFT_SET_MAP;
    m.data_type = Some(NFT_DATA_VERDICT);
    m.elements[0].data = Some(Data::Verdict(Verdict::Jump(chain.into())));
    m
}

#[test]
fn a_patch_creates_objects_chains_sets_elements_then_rules_and_deletes_in_reverse() {
    let mut want = ruleset(vec![
        chain("c", vec![lookup_rule("m")]),
        chain("target", vec![]),
    ]);
    want.tables[0].sets.push(vmap_to("target"));
    want.tables[0].objects.push(counter_object("n", 0));
    let p = diff(&ruleset(vec![]), &want);
    let kinds: Vec<&str> = p.ops.iter().map(op_kind).collect();
    // The map's element jumps to a chain: the chain exists before it.
    assert_eq!(
        kinds,
        [
            "add object",
            "add chain",
            "add chain",
            "add set",
            "add rule"
        ],
        "{p}"
    );
    // Back to nothing: the chain's rules let go of the map before it goes,
    // the map of the chain it jumps to before that, the object last.
    let back = diff(&applied(&ruleset(vec![]), &p), &ruleset(vec![]));
    let kinds: Vec<&str> = back.ops.iter().map(op_kind).collect();
    assert_eq!(
        kinds,
        [
            "flush chain",
            "delete set",
            "delete chain",
            "delete chain",
            "delete object"
        ],
        "{back}"
    );
    // Recreating the chain the map jumps to takes the element out and back.
    let mut cur = applied(&ruleset(vec![]), &p);
    for c in &mut cur.tables[0].chains {
        c.handle = Some(1);
    }
    let mut moved = want.clone();
    moved.tables[0].chains[1].hook = Some(Hook {
        num: NF_INET_LOCAL_IN,
        priority: 0,
        devices: vec![],
        device_list: false,
    });
    moved.tables[0].chains[1].chain_type = Some("filter".into());
    let p = diff(&cur, &moved);
    let kinds: Vec<&str> = p.ops.iter().map(op_kind).collect();
    assert_eq!(
        kinds,
        ["delete element", "delete chain", "add chain", "add element"],
        "{p}"
    );
}

#[test]
fn interval_elements_are_deleted_start_then_end_whatever_order_the_kernel_dumped() {
    let el = |k: u32, end: bool| Element {
        key: Some(k.to_be_bytes().to_vec().into()),
        flags: end.then_some(NFT_SET_ELEM_INTERVAL_END),
        ..Default::default()
    };
    let mut set = Set::new("s", 7, 4);
    set.flags = NFT_SET_INTERVAL;
    // As dumped: from the top of the tree down.
    set.elements = vec![el(40, true), el(30, false), el(20, true), el(10, false)].into();
    let mut cur = ruleset(vec![]);
    cur.tables[0].sets.push(set.clone());
    let mut want = ruleset(vec![]);
    set.elements = vec![el(10, false), el(20, true)].into();
    want.tables[0].sets.push(set);
    let p = diff(&cur, &want);
    let Some(Op::DeleteElements { elements, .. }) = p.ops.first() else {
        panic!("{p}")
    };
    assert_eq!(elements, &vec![el(30, false), el(40, true)]);
}
