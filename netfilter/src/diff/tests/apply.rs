use super::*;

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
