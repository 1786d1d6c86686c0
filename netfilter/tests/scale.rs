//! Big rulesets pull and push back correctly, in reasonable time.
//! The 1,000,000-element interval set runs only with `LINX_SCALE=1`: the
//! kernel alone spends minutes dumping it (see NFTABLES-NOTES.md).

use std::time::Instant;

use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{push, PushOptions};
use linx_netfilter::testing::{synthetic_interval_set, synthetic_ruleset, TestNetns};
use linx_netfilter::Socket;

/// Loads `script` into A, pulls, pushes into B; A and B must list the same.
fn pull_push(what: &str, script: &str) -> (usize, usize) {
    let a = TestNetns::new();
    let t = Instant::now();
    a.load(script);
    eprintln!("{what}: nft -f {:?}", t.elapsed());
    let mut sa = Socket::open(&a.netns()).unwrap();
    let t = Instant::now();
    let pulled = pull(&mut sa, &Selector::All).unwrap();
    eprintln!("{what}: pull {:?}", t.elapsed());
    let b = TestNetns::new();
    let mut sb = Socket::open(&b.netns()).unwrap();
    let t = Instant::now();
    let pushed = push(&mut sb, &pulled.ruleset, &PushOptions::default()).unwrap();
    eprintln!(
        "{what}: push {:?} ({} messages)",
        t.elapsed(),
        pushed.messages
    );
    let (la, lb) = (a.ruleset(), b.ruleset());
    assert!(la == lb, "{what}: listings of A and B differ");
    (pushed.rules, pushed.elements)
}

#[test]
fn hundred_thousand_rules_pull_and_push_back() {
    let (rules, _) = pull_push("100k rules", &synthetic_ruleset(100_000, 1_000));
    assert_eq!(rules, 100_000 + 100);
}

#[test]
fn interval_set_with_many_elements_pulls_and_pushes_back() {
    let n = if std::env::var("LINX_SCALE").as_deref() == Ok("1") {
        1_000_000
    } else {
        100_000
    };
    let (_, elements) = pull_push(&format!("{n} intervals"), &synthetic_interval_set(n));
    // Each range is a start and an end element (plus the leading 0.0.0.0 end).
    assert!(elements >= 2 * n, "{elements} elements for {n} ranges");
}
