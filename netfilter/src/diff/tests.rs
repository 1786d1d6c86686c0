use super::*;
use crate::expr::{cmp, counter, immediate, lookup, meta, Verdict};
use crate::model::{Hook, Userdata};
use crate::object::ObjectData;
use crate::sys::*;
use crate::testing::unshared;

fn mark_rule(v: u32) -> Rule {
    Rule::new(vec![
        meta::Meta {
            key: Some(meta::MetaKey::Mark),
            dreg: Some(1),
            ..Default::default()
        }
        .into(),
        cmp::Cmp {
            sreg: Some(1),
            op: Some(cmp::CmpOp::Eq),
            data: Some(Data::value(v.to_ne_bytes())),
            ..Default::default()
        }
        .into(),
        immediate::Immediate {
            dreg: Some(0),
            data: Some(Data::Verdict(Verdict::Accept)),
            ..Default::default()
        }
        .into(),
    ])
}

fn jump_rule(to: &str) -> Rule {
    Rule::new(vec![immediate::Immediate {
        dreg: Some(0),
        data: Some(Data::Verdict(Verdict::Jump(to.into()))),
        ..Default::default()
    }
    .into()])
}

fn chain(name: &str, rules: Vec<Rule>) -> Chain {
    let mut c = Chain::new(name);
    c.rules = rules.into();
    c
}

fn with_handles(mut c: Chain) -> Chain {
    for (i, r) in c.rules.iter_mut().enumerate() {
        r.handle = Some(100 + i as u64);
    }
    c
}

fn ruleset(chains: Vec<Chain>) -> Ruleset {
    let mut t = Table::new(Family::Inet, "fw");
    t.chains = chains;
    Ruleset { tables: vec![t] }
}

#[test]
fn equal_values_give_an_empty_patch() {
    let cur = ruleset(vec![with_handles(chain(
        "c",
        (0..50).map(mark_rule).collect(),
    ))]);
    let want = ruleset(vec![chain("c", (0..50).map(mark_rule).collect())]);
    assert!(diff(&cur, &want).is_empty());
}

#[test]
fn one_changed_rule_in_5000_is_one_delete_and_one_insert() {
    let cur = ruleset(vec![with_handles(chain(
        "c",
        (0..5000).map(mark_rule).collect(),
    ))]);
    let mut rules: Vec<Rule> = (0..5000).map(mark_rule).collect();
    rules[2500] = mark_rule(999_999);
    let want = ruleset(vec![chain("c", rules)]);
    let p = diff(&cur, &want);
    assert_eq!(p.len(), 2, "{p}");
    assert!(
        matches!(&p.ops[0], Op::DeleteRule { handle: 2600, .. }),
        "{p}"
    );
    assert!(
        matches!(
            &p.ops[1],
            Op::AddRule {
                position: Position::After(2599),
                ..
            }
        ),
        "{p}"
    );
}

#[test]
fn new_rules_at_the_head_go_before_the_first_kept_rule_in_order() {
    let cur = ruleset(vec![with_handles(chain(
        "c",
        (0..3).map(mark_rule).collect(),
    ))]);
    let rules: Vec<Rule> = [10, 11, 0, 1, 2].into_iter().map(mark_rule).collect();
    let p = diff(&cur, &ruleset(vec![chain("c", rules)]));
    assert_eq!(p.len(), 2, "{p}");
    let Op::AddRule {
        position: Position::Before(100),
        id: first,
        ..
    } = &p.ops[0]
    else {
        panic!("{p}")
    };
    assert!(
        matches!(&p.ops[1], Op::AddRule { position: Position::AfterAdded(x), .. } if x == first),
        "{p}"
    );
}

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

fn ip_set(name: &str, n: u32) -> Set {
    Set {
        elements: (0..n)
            .map(|i| Element {
                key: Some(i.to_be_bytes().to_vec().into()),
                ..Default::default()
            })
            .collect(),
        ..Set::new(name, 7, 4)
    }
}

fn lookup_rule(set: &str) -> Rule {
    Rule::new(vec![
        meta::Meta {
            key: Some(meta::MetaKey::Mark),
            dreg: Some(1),
            ..Default::default()
        }
        .into(),
        lookup::Lookup {
            set: Some(set.into()),
            sreg: Some(1),
            ..Default::default()
        }
        .into(),
    ])
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

/// Reference LCS length by dynamic programming.
fn lcs_len(a: &[u8], b: &[u8]) -> usize {
    let mut dp = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in 0..a.len() {
        for j in 0..b.len() {
            dp[i + 1][j + 1] = if a[i] == b[j] {
                dp[i][j] + 1
            } else {
                dp[i][j + 1].max(dp[i + 1][j])
            };
        }
    }
    dp[a.len()][b.len()]
}

/// A reproducible pseudo-random source: `rnd(k)` is in `0..k`.
fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |k| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % k
    }
}

#[test]
fn lcs_is_optimal_and_ordered_on_random_inputs() {
    let mut rnd = xorshift(0x2545_f491);
    for _ in 0..500 {
        let a: Vec<u8> = (0..rnd(40)).map(|_| rnd(4) as u8).collect();
        let b: Vec<u8> = (0..rnd(40)).map(|_| rnd(4) as u8).collect();
        let pairs = lcs(a.len(), b.len(), |i, j| a[i] == b[j]);
        assert_eq!(pairs.len(), lcs_len(&a, &b), "{a:?} {b:?}");
        for w in pairs.windows(2) {
            assert!(w[0].0 < w[1].0 && w[0].1 < w[1].1);
        }
        for &(i, j) in &pairs {
            assert_eq!(a[i], b[j]);
        }
    }
}

/// Strips what the kernel assigns, to compare values by intent.
fn without_handles(mut v: Ruleset) -> Ruleset {
    for t in &mut v.tables {
        for c in &mut t.chains {
            c.rules.iter_mut().for_each(|r| r.handle = None);
        }
    }
    v
}

#[test]
fn applying_the_patch_gives_the_desired_value() {
    let mut cur = ruleset(vec![
        with_handles(chain("a", (0..40).map(mark_rule).collect())),
        with_handles(chain("gone", vec![mark_rule(1)])),
    ]);
    cur.tables[0].sets.push(ip_set("s", 10));
    let mut want_rules: Vec<Rule> = (0..40).filter(|i| i % 7 != 3).map(mark_rule).collect();
    want_rules.insert(0, mark_rule(1000));
    want_rules.insert(5, mark_rule(1001));
    want_rules.insert(6, mark_rule(1002));
    want_rules.push(mark_rule(1003));
    let mut want = ruleset(vec![
        chain("a", want_rules),
        chain("new", vec![mark_rule(7)]),
    ]);
    let mut s = ip_set("s", 12);
    s.elements.remove(0);
    want.tables[0].sets.push(s);
    let p = diff(&cur, &want);
    let handles = added_handles(&p);
    let mut got = cur.clone();
    p.apply_to(&mut got, &handles).unwrap();
    let mut got_sorted = without_handles(got.clone());
    let mut want_sorted = without_handles(want.clone());
    for v in [&mut got_sorted, &mut want_sorted] {
        for t in &mut v.tables {
            for set in &mut t.sets {
                set.elements.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
    }
    assert_eq!(got_sorted, want_sorted, "{p}");
    // And now nothing is left to do.
    assert!(diff(&got, &want).is_empty());
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
        }];
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

/// Applies `p` to `cur` with handles handed out as the kernel would.
fn applied(cur: &Ruleset, p: &Patch) -> Ruleset {
    let mut got = cur.clone();
    p.apply_to(&mut got, &added_handles(p)).unwrap();
    got
}

/// The patch turns `cur` into `want` with the fewest rule operations:
/// every rule outside a longest common subsequence, and no other.
fn assert_minimal_rule_patch(a: &[u32], b: &[u32]) {
    let cur = ruleset(vec![with_handles(chain(
        "c",
        a.iter().map(|&v| mark_rule(v)).collect(),
    ))]);
    let want = ruleset(vec![chain("c", b.iter().map(|&v| mark_rule(v)).collect())]);
    let p = diff(&cur, &want);
    let bytes = |v: &[u32]| v.iter().map(|&x| x as u8).collect::<Vec<u8>>();
    let common = lcs_len(&bytes(a), &bytes(b));
    assert_eq!(
        p.len(),
        a.len() + b.len() - 2 * common,
        "{a:?} -> {b:?}: {p}"
    );
    let got = applied(&cur, &p);
    assert_eq!(without_handles(got.clone()), want, "{a:?} -> {b:?}: {p}");
    assert!(diff(&got, &want).is_empty());
}

#[test]
fn a_change_at_either_end_of_a_chain_is_one_delete_and_one_insert() {
    let base: Vec<u32> = (0..300).collect();
    for at in [0, 1, 298, 299] {
        let mut b = base.clone();
        b[at] = 9;
        assert_minimal_rule_patch(&base, &b);
    }
    // Added or removed at either end, and a chain emptied or filled.
    assert_minimal_rule_patch(&base, &base[1..]);
    assert_minimal_rule_patch(&base, &base[..299]);
    assert_minimal_rule_patch(&base[1..], &base);
    assert_minimal_rule_patch(&base[..299], &base);
    assert_minimal_rule_patch(&base, &[]);
    assert_minimal_rule_patch(&[], &base);
}

#[test]
fn duplicated_and_reordered_rules_give_minimal_correct_patches() {
    // Two equal rules side by side: which one goes must not matter.
    assert_minimal_rule_patch(&[1, 2, 2, 3], &[1, 2, 3]);
    assert_minimal_rule_patch(&[1, 2, 3], &[1, 2, 2, 3]);
    assert_minimal_rule_patch(&[5, 5, 5, 5], &[5, 5, 5]);
    // Swapped neighbours, and a rule moved from the end to the front.
    assert_minimal_rule_patch(&[1, 2, 3, 4], &[1, 3, 2, 4]);
    assert_minimal_rule_patch(&[1, 2, 3, 4], &[4, 1, 2, 3]);
    // Random small-alphabet chains (many duplicates) with random edits.
    let mut rnd = xorshift(0x9e37_79b9);
    for _ in 0..300 {
        let a: Vec<u32> = (0..rnd(30)).map(|_| rnd(4) as u32).collect();
        let b = edited(&mut rnd, &a, 3, 4);
        assert_minimal_rule_patch(&a, &b);
    }
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

/// Random edits (delete, insert, replace) of a chain of mark values.
fn edited(rnd: &mut impl FnMut(u64) -> u64, a: &[u32], edits: u64, alphabet: u64) -> Vec<u32> {
    let mut b = a.to_vec();
    for _ in 0..rnd(edits + 1) {
        match rnd(3) {
            0 if !b.is_empty() => {
                let i = rnd(b.len() as u64) as usize;
                b.remove(i);
            }
            1 => {
                let i = rnd(b.len() as u64 + 1) as usize;
                b.insert(i, rnd(alphabet) as u32);
            }
            _ if !b.is_empty() => {
                let i = rnd(b.len() as u64) as usize;
                b[i] = rnd(alphabet) as u32;
            }
            _ => {}
        }
    }
    b
}

#[test]
fn the_parallel_diff_gives_the_sequential_patch() {
    let mut rnd = xorshift(0x51_7cc1_b727);
    let rules = |v: &[u32]| v.iter().copied().map(mark_rule).collect::<Vec<_>>();
    for round in 0..300 {
        // One chain (scanned from both ends) or several (split in two).
        let chains = if round % 2 == 0 { 1 } else { 1 + rnd(5) };
        let alphabet = 2 + rnd(6);
        let mut cur = Vec::new();
        let mut want = Vec::new();
        for c in 0..chains {
            let a: Vec<u32> = (0..rnd(200)).map(|_| rnd(alphabet) as u32).collect();
            // Often unchanged, so both scans meet in the middle.
            let b = if rnd(3) == 0 {
                a.clone()
            } else {
                edited(&mut rnd, &a, 3, alphabet)
            };
            cur.push(with_handles(chain(&format!("c{c}"), rules(&a))));
            want.push(chain(&format!("c{c}"), rules(&b)));
        }
        let (cur, want) = (ruleset(cur), ruleset(want));
        let sequential = diff_with(&cur, &want, None, usize::MAX);
        assert_eq!(diff_with(&cur, &want, None, 0), sequential, "round {round}");
        assert_eq!(diff(&cur, &want), sequential);
    }
}

/// Handles for a patch's added rules, handed out as the kernel would (by
/// added-rule id).
fn added_handles(p: &Patch) -> HashMap<u32, u64> {
    p.ops
        .iter()
        .filter_map(|o| match o {
            Op::AddRule { id, .. } => Some((*id, 10_000 + *id as u64)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_diff_from_a_baseline_gives_the_full_diffs_patch() {
    let mut rnd = xorshift(0x0ba5_e11e);
    for round in 0..300 {
        let chains = 1 + rnd(6);
        let alphabet = 2 + rnd(6);
        let mut pushed = Vec::new();
        for c in 0..chains {
            let a: Vec<u32> = (0..rnd(100)).map(|_| rnd(alphabet) as u32).collect();
            let mut rules: Vec<Rule> = a.into_iter().map(mark_rule).collect();
            if c > 0 && rnd(3) == 0 {
                rules.push(jump_rule("c0"));
            }
            pushed.push(chain(&format!("c{c}"), rules));
        }
        // `pushed` is what the kernel was made equal to; the kernel's
        // state is the same rules in allocations of its own, with handles.
        let pushed = ruleset(pushed);
        let mut state = unshared(&pushed);
        state.tables[0].chains = state.tables[0].chains.drain(..).map(with_handles).collect();
        // The next desired value: `pushed` with some chains edited in place
        // (copied on write), some chains dropped or added, or a set
        // redefined (which forces out the rules that use it).
        let mut want = pushed.clone();
        for c in want.tables[0].chains.iter_mut() {
            if rnd(3) == 0 {
                let a: Vec<u32> = c.rules.iter().map(|_| rnd(alphabet) as u32).collect();
                let b = edited(&mut rnd, &a, 3, alphabet);
                c.rules = b.into_iter().map(mark_rule).collect();
            } else if rnd(2) == 0 && !c.rules.is_empty() {
                // Edited in place: the list is copied, its rules still
                // share their expressions with `pushed`'s.
                for _ in 0..1 + rnd(3) {
                    let i = rnd(c.rules.len() as u64) as usize;
                    match rnd(3) {
                        0 => c.rules[i] = mark_rule(rnd(alphabet) as u32),
                        1 => c.rules.insert(i, mark_rule(rnd(alphabet) as u32)),
                        _ => {
                            c.rules.remove(i);
                        }
                    }
                    if c.rules.is_empty() {
                        break;
                    }
                }
            }
        }
        if rnd(5) == 0 {
            // A changed comment recreates the chain, and with it every rule
            // jumping there, shared lists included.
            want.tables[0].chains[0].userdata = Some(Userdata::with_comment(0, "new"));
        }
        if rnd(5) == 0 && want.tables[0].chains.len() > 1 {
            want.tables[0].chains.pop();
        }
        if rnd(5) == 0 {
            want.tables[0].chains.push(chain("new", vec![mark_rule(1)]));
        }
        // As small as the full diff's patch (both keep a longest common
        // subsequence; among equal rules they may keep other ones), and it
        // makes the state equal to `want`.
        let from = diff_from(&state, &want, &Baseline::of(&pushed));
        assert_eq!(from.len(), diff(&state, &want).len(), "round {round}");
        assert!(
            diff(&applied(&state, &from), &want).is_empty(),
            "round {round}"
        );
    }
}

#[test]
fn a_value_built_anew_shares_what_it_has_in_common_with_the_previous_one() {
    let previous = ruleset(vec![
        chain("a", (0..10).map(mark_rule).collect()),
        chain("b", (0..10).map(mark_rule).collect()),
        chain("c", (0..10).map(mark_rule).collect()),
    ]);
    // A fresh compile of the edited ruleset: equal content, other allocations.
    let mut fresh = unshared(&previous);
    fresh.tables[0].chains[1].rules[5] = mark_rule(55);
    fresh.tables[0].chains[2].userdata = Some(Userdata::with_comment(0, "c"));
    let before = unshared(&fresh);
    share_unchanged(&mut fresh, &previous);
    assert_eq!(fresh, before, "content unchanged");
    let (new, old) = (&fresh.tables[0].chains, &previous.tables[0].chains);
    assert!(new[0].rules.same(&old[0].rules));
    assert!(
        new[2].rules.same(&old[2].rules),
        "rules shared, header differs"
    );
    assert!(!new[1].rules.same(&old[1].rules));
    for i in 0..10 {
        let shared = new[1].rules[i].exprs.same(&old[1].rules[i].exprs);
        assert_eq!(shared, i != 5, "rule {i}");
    }
    // The kernel holds `previous`: the diff from its baseline finds the one
    // edited rule and the recreated chain without reading the other rules.
    let mut state = unshared(&previous);
    state.tables[0].chains = state.tables[0].chains.drain(..).map(with_handles).collect();
    let from = diff_from(&state, &fresh, &Baseline::of(&previous));
    assert_eq!(from, diff(&state, &fresh));
}

#[test]
fn a_baseline_is_trusted_for_the_chains_still_shared_with_it() {
    // The contract, shown with a false premise: a chain the desired value
    // still shares with the baseline is not compared at all.
    let pushed = ruleset(vec![
        chain("a", (0..10).map(mark_rule).collect()),
        chain("b", (0..10).map(mark_rule).collect()),
    ]);
    let mut state = unshared(&pushed);
    state.tables[0].chains = state.tables[0].chains.drain(..).map(with_handles).collect();
    state.tables[0].chains[0].rules[3].exprs = mark_rule(77).exprs;
    let mut want = pushed.clone();
    want.tables[0].chains[1].rules[5] = mark_rule(55);
    assert!(want.tables[0].chains[0]
        .rules
        .same(&pushed.tables[0].chains[0].rules));
    assert!(!want.tables[0].chains[1]
        .rules
        .same(&pushed.tables[0].chains[1].rules));
    let full = diff(&state, &want);
    assert_eq!(full.len(), 4, "{full}");
    let from = diff_from(&state, &want, &Baseline::of(&pushed));
    assert_eq!(from.len(), 2, "{from}");
    assert!(from.ops.iter().all(|op| match op {
        Op::DeleteRule { chain, .. } | Op::AddRule { chain, .. } => chain == "b",
        _ => false,
    }));
    // Edited in place, the shared list is copied first: the baseline's
    // value is untouched and the edited chain is compared again.
    assert_eq!(pushed.tables[0].chains[1].rules[5], mark_rule(5));
}

#[test]
fn both_sided_common_ends_equal_the_sequential_ones() {
    let mut rnd = xorshift(0x2f6b_3a91);
    for _ in 0..2000 {
        let alphabet = 1 + rnd(4);
        let a: Vec<u32> = (0..rnd(300)).map(|_| rnd(alphabet) as u32).collect();
        let b = if rnd(4) == 0 {
            a.clone()
        } else {
            edited(&mut rnd, &a, 4, alphabet)
        };
        let eq = |i: usize, j: usize| a[i] == b[j];
        let want = common_ends(a.len(), b.len(), eq);
        let got = common_ends_all(&[(a.len(), b.len())], 0, |_, i, j| eq(i, j));
        assert_eq!(got, vec![want], "{a:?} {b:?}");
    }
}

#[test]
fn a_rule_is_found_by_handle_from_any_hint() {
    let mut rnd = xorshift(0x1234_5678_9abc);
    for _ in 0..200 {
        let n = rnd(40) as usize;
        // Distinct handles in no order, some rules without one.
        let mut rules: Vec<Rule> = (0..n).map(|i| mark_rule(i as u32)).collect();
        for (i, r) in rules.iter_mut().enumerate() {
            r.handle = (rnd(5) != 0).then_some(1000 - 7 * i as u64);
        }
        let h = 1000 - 7 * rnd(n as u64 + 2);
        let hint = rnd(n as u64 + 3) as usize;
        let want = rules.iter().position(|r| r.handle == Some(h));
        assert_eq!(find_rule(&rules, h, hint), want, "n {n} h {h} hint {hint}");
    }
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
    set.elements = vec![el(40, true), el(30, false), el(20, true), el(10, false)];
    let mut cur = ruleset(vec![]);
    cur.tables[0].sets.push(set.clone());
    let mut want = ruleset(vec![]);
    set.elements = vec![el(10, false), el(20, true)];
    want.tables[0].sets.push(set);
    let p = diff(&cur, &want);
    let Some(Op::DeleteElements { elements, .. }) = p.ops.first() else {
        panic!("{p}")
    };
    assert_eq!(elements, &vec![el(30, false), el(40, true)]);
}
