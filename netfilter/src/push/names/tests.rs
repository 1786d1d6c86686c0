//! Naming anonymous sets, without a kernel: what a patch and a whole push
//! send (the kernel side is `tests/anonymous_names.rs`).

use super::*;
use crate::codec;
use crate::diff::{diff, Position};
use crate::model::Family;
use crate::push::{encode, encode_named_patch, Existing, PushOptions};
use crate::sys::*;

fn compiled(src: &str) -> Ruleset {
    crate::syntax::compile(src).unwrap_or_else(|d| panic!("{d}"))
}

/// Every anonymous set name a rule's expressions refer to, in order.
fn refs(r: &Rule) -> Vec<String> {
    r.exprs
        .iter()
        .filter_map(|e| e.set_name().map(str::to_owned))
        .collect()
}

/// Table `inet t`: a named set `set`, a chain `c` of two rules with an
/// anonymous set each.
fn two_rules_beside(set: &str) -> Ruleset {
    compiled(&format!(
        "table inet t {{
            set {set} {{ type inet_service; }}
            chain c {{
                tcp dport {{ 1, 2 }} accept
                udp dport {{ 3, 4 }} accept
            }}
        }}"
    ))
}

fn set_names(r: &Rule) -> Vec<&str> {
    r.sets.iter().map(|s| s.name.as_str()).collect()
}

/// A rule of `src`'s first table and chain `c`, with its sets named `names`
/// (as values from elsewhere name them: another compile, a pull).
fn rule_named(src: &str, names: &[&str]) -> Rule {
    let rs = compiled(src);
    let mut r = rs.tables[0].chains[0].rules[0].clone();
    let mut it = names.iter();
    rename(&mut r, |_| it.next().unwrap().to_string());
    r
}

fn add_rule(table: &str, rule: Rule) -> Op {
    Op::AddRule {
        family: Family::Inet,
        table: table.into(),
        chain: "c".into(),
        rule,
        position: Position::Append,
        id: 1,
        bound: vec![],
    }
}

#[test]
fn a_patch_keeps_free_names_and_numbers_the_rest_above_the_table() {
    // The kernel's state: anonymous sets __set0 and __set4, a named set
    // whose name ends in 9.
    let mut state = two_rules_beside("ports9");
    {
        let rules = &mut state.tables[0].chains[0].rules;
        let mut names = ["__set0", "__set4"].into_iter();
        for r in rules.iter_mut() {
            let n = names.next().unwrap();
            rename(r, |_| n.to_owned());
        }
    }
    let two =
        "table inet t { chain c { ip saddr { 10.0.0.1, 10.0.0.2 } tcp dport { 7, 8 } accept } }";
    let map = "table inet t { chain c { tcp dport vmap { 9 : accept, 10 : drop } } }";
    let mut patch = Patch {
        ops: vec![
            // Both names taken or about to be: numbered from 10, in order;
            // the second set's old name is the first one's new name.
            add_rule("t", rule_named(two, &["__set0", "__set10"])),
            // Free: kept.
            add_rule("t", rule_named(two, &["__set5", "__map4"])),
            // Taken now (by the rule before): numbered.
            add_rule("t", rule_named(map, &["__set5"])),
            // Another table, absent from the state: its own numbers.
            add_rule("u", rule_named(two, &["__set0", "x%d"])),
        ],
    };
    name_patch(&mut patch, &state);
    let rules: Vec<&Rule> = patch
        .ops
        .iter()
        .map(|o| match o {
            Op::AddRule { rule, .. } => rule,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(set_names(rules[0]), ["__set10", "__set11"]);
    assert_eq!(refs(rules[0]), ["__set10", "__set11"]);
    assert_eq!(set_names(rules[1]), ["__set5", "__map4"]);
    assert_eq!(refs(rules[1]), ["__set5", "__map4"]);
    assert_eq!(set_names(rules[2]), ["__map12"]);
    assert_eq!(refs(rules[2]), ["__map12"]);
    assert_eq!(set_names(rules[3]), ["__set0", "__set1"]);
    assert_eq!(refs(rules[3]), ["__set0", "__set1"]);
    // Names are no part of equality: the renamed rule is still the rule.
    let one = |r: &Rule| {
        let mut rs = compiled("table inet t { chain c { } }");
        rs.tables[0].chains[0].rules.push(r.clone());
        rs
    };
    assert!(diff(
        &one(rules[0]),
        &one(&compiled(two).tables[0].chains[0].rules[0])
    )
    .is_empty());
}

#[test]
fn a_rule_whose_names_are_free_is_not_copied() {
    let r = rule_named(
        "table inet t { chain c { tcp dport { 1, 2 } accept } }",
        &["__set3"],
    );
    let mut patch = Patch {
        ops: vec![add_rule("t", r.clone())],
    };
    name_patch(&mut patch, &Ruleset::default());
    let Op::AddRule { rule, .. } = &patch.ops[0] else {
        unreachable!()
    };
    assert!(rule.exprs.same(&r.exprs), "expressions still shared");
}

/// (NEWSET names with their flags, NEWRULE lookup names) of a batch.
fn sent(batch: &crate::netlink::Batch) -> (Vec<(String, u16)>, Vec<String>) {
    let (mut sets, mut lookups) = (vec![], vec![]);
    for m in batch.messages() {
        let m = m.unwrap();
        match m.nft_msg() {
            Some(NFT_MSG_NEWSET) => {
                let s = codec::set::decode(&m).unwrap().value;
                sets.push((s.name, m.flags & NLM_F_EXCL));
            }
            Some(NFT_MSG_NEWRULE) => {
                let r = codec::rule::decode(&m).unwrap().value;
                lookups.extend(refs(&r));
            }
            _ => {}
        }
    }
    (sets, lookups)
}

#[test]
fn a_whole_push_names_sets_unless_merging_into_a_table_of_unknown_sets() {
    let mut rs = two_rules_beside("__set1");
    // Two rules naming their sets alike (values built rule by rule do).
    for r in rs.tables[0].chains[0].rules.iter_mut() {
        rename(r, |_| "__set0".to_owned());
    }
    let (sets, lookups) = sent(&encode(&rs, &PushOptions::default()).batch);
    let excl = NLM_F_EXCL;
    assert_eq!(
        sets,
        [
            ("__set1".to_owned(), excl),
            ("__set0".to_owned(), excl),
            ("__set2".to_owned(), excl)
        ]
    );
    assert_eq!(lookups, ["__set0", "__set2"]);

    let merge = PushOptions {
        existing: Existing::Merge,
        ..Default::default()
    };
    let (sets, lookups) = sent(&encode(&rs, &merge).batch);
    assert_eq!(
        sets,
        [
            ("__set1".to_owned(), 0),
            ("__set%d".to_owned(), 0),
            ("__set%d".to_owned(), 0)
        ]
    );
    assert_eq!(lookups, ["__set%d", "__set%d"]);
}

#[test]
fn a_named_patch_is_sent_under_its_names() {
    let state = compiled("table inet t { chain c { tcp dport { 1, 2 } accept } }");
    let desired = compiled(
        "table inet t { chain c { tcp dport { 1, 2 } accept
                                  udp dport { 3, 4 } accept } }",
    );
    let mut patch = diff(&state, &desired);
    name_patch(&mut patch, &state);
    let (sets, lookups) = sent(&encode_named_patch(&patch).batch);
    // The compile named the new rule's set __set1, free in the table.
    assert_eq!(sets, [("__set1".to_owned(), NLM_F_EXCL)]);
    assert_eq!(lookups, ["__set1"]);
    // The state's own set was named __set0 by the same compile: a second
    // compile's first set clashes and is numbered.
    let other = compiled("table inet t { chain c { udp dport { 3, 4 } accept } }");
    let mut patch = Patch {
        ops: vec![add_rule("t", other.tables[0].chains[0].rules[0].clone())],
    };
    name_patch(&mut patch, &state);
    let (sets, _) = sent(&encode_named_patch(&patch).batch);
    assert_eq!(sets, [("__set1".to_owned(), NLM_F_EXCL)]);
}
