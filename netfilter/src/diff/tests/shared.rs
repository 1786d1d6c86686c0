//! Element lists shared between values: the diff's shortcuts give the
//! patch a diff of unshared copies gives.

use super::*;
use crate::model::Elements;

fn addr(i: u32) -> Element {
    Element {
        key: Some((0x0a00_0000 + i).to_be_bytes().to_vec().into()),
        ..Default::default()
    }
}

fn with_set(s: Set) -> Ruleset {
    let mut v = ruleset(vec![]);
    v.tables[0].sets.push(s);
    v
}

/// A value whose set holds `elements` (the very list given).
fn holding(template: &Set, elements: &Elements) -> Ruleset {
    with_set(Set {
        elements: elements.clone(),
        ..template.clone()
    })
}

/// The same value with its lists copied: nothing shared with anything.
fn unshared(v: &Ruleset) -> Ruleset {
    let mut v = v.clone();
    for s in &mut v.tables[0].sets {
        s.elements = Elements::from(s.elements.to_vec());
    }
    v
}

/// Sets of three kinds: plain, `counter` on every element (the current
/// side's elements carrying the kernel's counts, as pulled), intervals.
fn kinds() -> Vec<(Set, Vec<Element>, Vec<Element>)> {
    let plain = ip_set("s", 0);
    let old: Vec<Element> = (0..3000).map(addr).collect();
    // A few leave, a few arrive, the rest in another order.
    let mut new: Vec<Element> = (0..3000).filter(|i| i % 150 != 7).map(addr).collect();
    new.extend((5000..5020).map(addr));
    new.reverse();

    let mut counted = ip_set("s", 0);
    counted.exprs = vec![counter::Counter::default().into()];
    let live = |e: &Element, n: u64| Element {
        exprs: vec![counter::Counter {
            packets: Some(n),
            bytes: Some(60 * n),
            ..Default::default()
        }
        .into()],
        ..e.clone()
    };
    let old_counted: Vec<Element> = old
        .iter()
        .enumerate()
        .map(|(i, e)| live(e, i as u64))
        .collect();

    let mut ranges = ip_set("s", 0);
    ranges.flags = NFT_SET_INTERVAL;
    let interval = |i: u32| {
        let end = Element {
            flags: Some(NFT_SET_ELEM_INTERVAL_END),
            ..addr(4 * i + 2)
        };
        [addr(4 * i), end]
    };
    let old_ranges: Vec<Element> = (0..1000).flat_map(interval).collect();
    let new_ranges: Vec<Element> = (0..1000)
        .filter(|i| i % 100 != 3)
        .chain(2000..2005)
        .flat_map(interval)
        .collect();
    vec![
        (plain, old.clone(), new.clone()),
        (counted, old_counted, new),
        (ranges, old_ranges, new_ranges),
    ]
}

#[test]
fn a_delta_between_shared_lists_is_the_delta_of_unshared_copies() {
    for (template, old, new) in kinds() {
        let (old, new) = (Elements::from(old), Elements::from(new));
        // Two namespaces' known states hold the list pushed before.
        let (pod1, pod2) = (holding(&template, &old), holding(&template, &old));
        let want = holding(&template, &new);
        assert!(pod1.tables[0].sets[0].elements.is_shared());
        let plain = diff(&unshared(&pod1), &unshared(&want));
        let kinds: Vec<&str> = plain.ops.iter().map(op_name).collect();
        assert_eq!(kinds, ["delete elements", "add elements"], "{plain}");
        assert_eq!(diff(&pod1, &want), plain, "computed from the shared lists");
        assert_eq!(diff(&pod2, &want), plain, "taken again for the same pair");
        // Applied, the patch gives the desired value.
        assert!(diff(&applied(&pod1, &plain), &want).is_empty());
        // Set expressions are part of the pair: another set's counts.
        let mut other = template.clone();
        other.exprs = vec![];
        if template.exprs.is_empty() {
            continue;
        }
        let (a, b) = (holding(&other, &old), holding(&other, &new));
        assert_eq!(diff(&a, &b), diff(&unshared(&a), &unshared(&b)));
    }
}

#[test]
fn one_list_on_both_sides_is_no_change_and_needs_no_element_compared() {
    for (template, old, _) in kinds() {
        let old = Elements::from(old);
        let (cur, want) = (holding(&template, &old), holding(&template, &old));
        assert!(diff(&cur, &want).is_empty());
        // A constant set compares its elements to decide on recreating.
        let mut constant = template.clone();
        constant.flags |= NFT_SET_CONSTANT;
        let (cur, want) = (holding(&constant, &old), holding(&constant, &old));
        assert!(diff(&cur, &want).is_empty());
    }
}

#[test]
fn applying_toward_the_desired_value_keeps_its_very_lists() {
    for (template, old, new) in kinds() {
        let (old, new) = (Elements::from(old), Elements::from(new));
        let cur = holding(&template, &old);
        let mut want = holding(&template, &new);
        want.tables[0]
            .chains
            .push(chain("c", vec![lookup_rule("s")]));
        let p = diff(&cur, &want);
        let handles = added_handles(&p);
        let mut known = cur.clone();
        p.apply_toward(&mut known, &handles, &want).unwrap();
        let elements = &known.tables[0].sets[0].elements;
        assert!(elements.same(&new), "the desired list itself");
        assert!(diff(&known, &want).is_empty());
        // What applying every operation gives, but for where lists live.
        assert!(equal(&known, &applied(&cur, &p)));
        assert_eq!(known.tables[0].chains, applied(&cur, &p).tables[0].chains);
    }
}

#[test]
fn a_set_the_datapath_writes_keeps_its_own_elements() {
    let mut dynamic = ip_set("s", 0);
    dynamic.flags = NFT_SET_EVAL;
    let had: Elements = (0..5).map(addr).collect();
    let declared: Elements = (0..2).map(addr).collect();
    let mut known = holding(&dynamic, &had);
    let want = holding(&dynamic, &declared);
    let p = diff(&known, &want);
    assert!(p.is_empty(), "{p}");
    p.apply_toward(&mut known, &HashMap::new(), &want).unwrap();
    assert!(known.tables[0].sets[0].elements.same(&had));
    share_elements(&mut known, &want);
    assert!(known.tables[0].sets[0].elements.same(&had));
}

#[test]
fn an_unchanged_list_takes_the_previous_allocation() {
    let old: Elements = (0..300).map(addr).collect();
    let previous = holding(&ip_set("s", 0), &old);
    let mut again = holding(&ip_set("s", 0), &Elements::from(old.to_vec()));
    share_unchanged(&mut again, &previous);
    assert!(again.tables[0].sets[0].elements.same(&old));
    let mut changed = holding(&ip_set("s", 0), &(1..301).map(addr).collect());
    share_unchanged(&mut changed, &previous);
    assert!(!changed.tables[0].sets[0].elements.same(&old));
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::DeleteElements { .. } => "delete elements",
        Op::AddElements { .. } => "add elements",
        _ => "other",
    }
}
