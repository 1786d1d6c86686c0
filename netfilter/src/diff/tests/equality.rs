use super::*;

#[test]
fn counters_and_handles_do_not_make_rules_differ() {
    let mut counted = mark_rule(1);
    counted.exprs.insert(
        0,
        counter::Counter {
            bytes: Some(0),
            packets: Some(0),
            ..Default::default()
        }
        .into(),
    );
    let mut live = counted.clone();
    live.exprs[0] = counter::Counter {
        bytes: Some(1234),
        packets: Some(7),
        ..Default::default()
    }
    .into();
    let cur = ruleset(vec![with_handles(chain("c", vec![live]))]);
    assert!(diff(&cur, &ruleset(vec![chain("c", vec![counted])])).is_empty());
}

/// The kernel reports `NFT_CHAIN_BASE` on every base chain; a desired value
/// (compiled, or built by hand) does not carry it. That alone must not
/// recreate the chain with all its rules.
#[test]
fn the_kernel_set_base_chain_flag_does_not_make_chains_differ() {
    let mut want = chain("input", vec![mark_rule(1)]);
    want.hook = Some(Hook {
        num: NF_INET_LOCAL_IN,
        priority: 0,
        devices: vec![],
        device_list: false,
    });
    want.chain_type = Some("filter".into());
    want.policy = Some(NF_DROP);
    let mut cur = with_handles(want.clone());
    cur.flags = Some(NFT_CHAIN_BASE);
    assert!(diff(&ruleset(vec![cur.clone()]), &ruleset(vec![want.clone()])).is_empty());
    // A flag the writer sets (offload) still counts.
    cur.flags = Some(NFT_CHAIN_BASE | NFT_CHAIN_HW_OFFLOAD);
    assert!(!diff(&ruleset(vec![cur]), &ruleset(vec![want])).is_empty());
}

#[test]
fn anonymous_sets_compare_by_content_not_by_listing_hints() {
    let with_set = |name: &str, userdata: Option<Userdata>, key: u32| {
        let mut r = lookup_rule(name);
        let mut s = ip_set(name, 0);
        s.flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT;
        s.userdata = userdata;
        s.elements = vec![Element {
            key: Some(key.to_be_bytes().to_vec().into()),
            ..Default::default()
        }]
        .into();
        r.sets.push(s);
        r
    };
    // The kernel's numbering and nft's userdata hints differ: same rule.
    let cur = ruleset(vec![with_handles(chain(
        "c",
        vec![with_set("__set7", Some(Userdata::with_comment(0, "x")), 1)],
    ))]);
    let want = ruleset(vec![chain("c", vec![with_set("__set0", None, 1)])]);
    assert!(diff(&cur, &want).is_empty());
    // Different elements: a different rule.
    let other = ruleset(vec![chain("c", vec![with_set("__set0", None, 2)])]);
    assert_eq!(diff(&cur, &other).len(), 2);
}

/// A rule whose anonymous set (named `name`) holds `keys`, in that order.
fn anonymous(name: &str, keys: &[u32]) -> Rule {
    let mut r = lookup_rule(name);
    let mut s = ip_set(name, 0);
    s.flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT;
    s.elements = keys
        .iter()
        .map(|k| Element {
            key: Some(k.to_be_bytes().to_vec().into()),
            ..Default::default()
        })
        .collect();
    r.sets.push(s);
    r
}

#[test]
fn anonymous_sets_compare_as_sets_whatever_order_the_kernel_dumps() {
    // The kernel dumps a hash set in an order seeded per set: a pull after
    // nft loads `{ 1, 2, 3 }` may hold them in any order.
    let cur = ruleset(vec![with_handles(chain(
        "c",
        vec![anonymous("__set4", &[3, 1, 2]), mark_rule(1)],
    ))]);
    let want = ruleset(vec![chain(
        "c",
        vec![anonymous("__set0", &[1, 2, 3]), mark_rule(1)],
    )]);
    assert!(diff(&cur, &want).is_empty(), "{}", diff(&cur, &want));
    assert!(equal(&cur, &want));
    let fewer = ruleset(vec![chain(
        "c",
        vec![anonymous("__set0", &[1, 2]), mark_rule(1)],
    )]);
    assert_eq!(diff(&cur, &fewer).len(), 2);
}

#[test]
fn two_anonymous_sets_of_one_rule_are_told_apart() {
    let mut two = anonymous("__set0", &[1, 2]);
    let b = anonymous("__set1", &[7, 8]);
    two.exprs.extend(b.exprs.iter().cloned());
    two.sets.extend(b.sets);
    let cur = ruleset(vec![with_handles(chain("c", vec![two.clone()]))]);
    let mut swapped = two.clone();
    swapped.sets[0].elements.swap(0, 1);
    swapped.sets[1].elements = anonymous("x", &[8, 9]).sets[0].elements.clone();
    let want = ruleset(vec![chain("c", vec![swapped])]);
    assert_eq!(diff(&cur, &want).len(), 2, "the second set changed");
    assert!(diff(&cur, &ruleset(vec![chain("c", vec![two])])).is_empty());
}

#[test]
fn what_the_datapath_put_in_a_dynamic_set_is_no_change() {
    let mut dynamic = ip_set("seen", 0);
    dynamic.flags = NFT_SET_EVAL | NFT_SET_TIMEOUT;
    let mut cur = ruleset(vec![]);
    let mut filled = dynamic.clone();
    filled.elements = ip_set("seen", 3).elements;
    for e in &mut filled.elements {
        e.expiration = Some(1234);
    }
    cur.tables[0].sets.push(filled);
    let mut want = ruleset(vec![]);
    want.tables[0].sets.push(dynamic);
    assert!(diff(&cur, &want).is_empty(), "{}", diff(&cur, &want));
}

/// A counter expression that counted `packets`.
fn counted(packets: u64) -> Expr {
    counter::Counter {
        packets: Some(packets),
        bytes: Some(packets * 100),
        ..Default::default()
    }
    .into()
}

#[test]
fn elements_carry_their_sets_expressions_without_it_being_a_change() {
    let mut set = ip_set("s", 2);
    set.exprs = vec![counted(0)];
    let mut cur = ruleset(vec![]);
    let mut held = set.clone();
    for e in &mut held.elements {
        e.exprs = vec![counted(5)];
        e.expiration = Some(10);
    }
    cur.tables[0].sets.push(held);
    let mut want = ruleset(vec![]);
    want.tables[0].sets.push(set);
    assert!(diff(&cur, &want).is_empty(), "{}", diff(&cur, &want));
}

/// A rule jumping to bound chain `name` (`jump { … }`), and that chain.
fn binding(name: &str, inner: Vec<Rule>) -> (Rule, Chain) {
    let mut c = chain(name, inner);
    c.flags = Some(NFT_CHAIN_BINDING);
    (jump_rule(name), c)
}

#[test]
fn bound_chains_compare_through_their_rules_and_travel_with_the_rule_binding_them() {
    // The kernel numbered the bound chain itself; the compiled value did too.
    let (r, b) = binding("__chain75", vec![mark_rule(1)]);
    let cur = ruleset(vec![with_handles(chain("c", vec![r, mark_rule(9)])), b]);
    let (r, b) = binding("__chain0", vec![mark_rule(1)]);
    let want = ruleset(vec![chain("c", vec![r, mark_rule(9)]), b]);
    assert!(diff(&cur, &want).is_empty(), "{}", diff(&cur, &want));
    // A rule inside the bound chain changes: the binding rule is replaced,
    // its chain with it, in two operations.
    let (r, b) = binding("__chain0", vec![mark_rule(2)]);
    let edited = ruleset(vec![chain("c", vec![r, mark_rule(9)]), b]);
    let p = diff(&cur, &edited);
    assert_eq!(p.len(), 2, "{p}");
    let Op::AddRule { bound, .. } = &p.ops[1] else {
        panic!("{p}")
    };
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].rules.len(), 1);
    // Applied to the value, the old bound chain goes, the new one comes.
    let got = applied(&cur, &p);
    let names: Vec<&str> = got.tables[0]
        .chains
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["c", "__chain0"]);
    assert!(diff(&got, &edited).is_empty());
}

#[test]
fn hook_devices_compare_as_a_set() {
    let base = |devices: &[&str], list: bool| {
        let mut c = chain("in", vec![]);
        c.hook = Some(Hook {
            num: 0,
            priority: -500,
            devices: devices.iter().map(|d| d.to_string()).collect(),
            device_list: list,
        });
        c.chain_type = Some("filter".into());
        let mut v = ruleset(vec![c]);
        v.tables[0].family = Family::Netdev;
        v
    };
    assert!(diff(&base(&["b", "a"], true), &base(&["a", "b"], false)).is_empty());
    assert!(!diff(&base(&["a"], false), &base(&["a", "b"], false)).is_empty());
}
