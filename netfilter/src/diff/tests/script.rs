use super::*;

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
