use super::*;

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
