//! Anonymous sets named by the push (`__setN`) instead of numbered by the
//! kernel (`__set%d`, a scan of the table per set): on this kernel they are
//! anonymous in every way that matters — bound to their rule, freed with it,
//! with a flushed or deleted table, listed inline by nft — and nft's own
//! later sets are numbered around them. Each test in its own namespace.

use std::collections::BTreeSet;

use linx_netfilter::diff::{diff, Op};
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{push, PushOptions};
use linx_netfilter::reconcile::{Options, Reconciler};
use linx_netfilter::syntax::compile;
use linx_netfilter::sys::*;
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{codec, Rule, Ruleset, Socket};

const FILE: &str = "table inet t {
	chain c {
		tcp dport { 22, 80 } accept comment \"a\"
		ip saddr { 10.0.0.1, 10.0.0.2 } drop comment \"b\"
		tcp dport vmap { 443 : accept, 8443 : drop } comment \"c\"
	}
}
";

/// Every set of the namespace as the kernel holds it: (name, anonymous).
fn kernel_sets(sock: &mut Socket) -> Vec<(String, bool)> {
    let dump = sock
        .dump(NFT_MSG_GETSET, NFPROTO_UNSPEC as u8, |_| {})
        .unwrap();
    let mut out: Vec<(String, bool)> = dump
        .iter()
        .map(|m| {
            let s = codec::set::decode(&m.unwrap()).unwrap().value;
            let anonymous = s.is_anonymous();
            (s.name, anonymous)
        })
        .collect();
    out.sort();
    out
}

fn names(sets: &[(String, bool)]) -> Vec<&str> {
    sets.iter().map(|(n, _)| n.as_str()).collect()
}

/// Gives `r`'s anonymous sets these names, in order (as a value from
/// elsewhere may name them).
fn rename(r: &mut Rule, to: &[&str]) {
    for (s, new) in r.sets.iter_mut().zip(to) {
        for e in r.exprs.iter_mut() {
            if let Some((Some(n), _)) = e.set_refs_mut() {
                if *n == s.name {
                    *n = new.to_string();
                }
            }
        }
        s.name = new.to_string();
    }
}

fn compiled(src: &str) -> Ruleset {
    compile(src).unwrap_or_else(|d| panic!("{d}"))
}

/// `src` compiled, the set of its first chain's last rule named `name`.
fn last_set_named(src: &str, name: &str) -> Ruleset {
    let mut rs = compiled(src);
    if let Some(r) = rs.tables[0].chains[0].rules.iter_mut().last() {
        rename(r, &[name]);
    }
    rs
}

/// `nft list ruleset` after nft itself loads `src` into a fresh namespace.
fn nft_listing(src: &str) -> String {
    let ns = TestNetns::new();
    ns.load(src);
    ns.ruleset()
}

#[test]
fn sets_we_name_are_anonymous_in_every_way() {
    let ns = TestNetns::new();
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let mut value = compiled(FILE);
    // Names no kernel would pick first: the kernel keeps what we send.
    for (r, to) in value.tables[0].chains[0]
        .rules
        .iter_mut()
        .zip(["__set7", "__set9", "__map11"])
    {
        rename(r, &[to]);
    }
    push(&mut sock, &value, &PushOptions::default()).unwrap();
    let sets = kernel_sets(&mut sock);
    assert_eq!(names(&sets), ["__map11", "__set7", "__set9"]);
    assert!(sets.iter().all(|(_, anonymous)| *anonymous), "{sets:?}");

    // Listed inline, exactly as nft lists its own load of the file.
    assert_eq!(ns.ruleset(), nft_listing(FILE));
    // The fixed point: the pull equals the compile, names and all.
    let pulled = pull(&mut sock, &Selector::All).unwrap().ruleset;
    assert!(diff(&pulled, &value).is_empty());
    let pulled_names: Vec<&str> = pulled.tables[0].chains[0]
        .rules
        .iter()
        .flat_map(|r| r.sets.iter().map(|s| s.name.as_str()))
        .collect();
    assert_eq!(pulled_names, ["__set7", "__set9", "__map11"]);

    // Bound to its rule: the set alone cannot be deleted.
    let e = ns
        .nft(&["delete", "set", "inet", "t", "__set7"])
        .unwrap_err();
    assert!(e.contains("Device or resource busy"), "{e}");
    assert_eq!(kernel_sets(&mut sock).len(), 3);

    // Freed with its rule.
    let h = ns.handle_of("tcp dport { 22, 80 } accept comment \"a\"");
    ns.nft(&["delete", "rule", "inet", "t", "c", "handle", &h.to_string()])
        .unwrap();
    assert_eq!(names(&kernel_sets(&mut sock)), ["__map11", "__set9"]);

    // nft's own anonymous sets are numbered around ours: thirteen more, all
    // distinct, ours untouched, every rule listed inline.
    let mut more = String::from("table inet t {\n\tchain c {\n");
    for p in 0..13 {
        more.push_str(&format!(
            "\t\tudp dport {{ {}, {} }} accept\n",
            1000 + p,
            2000 + p
        ));
    }
    more.push_str("\t}\n}\n");
    ns.load(&more);
    let sets = kernel_sets(&mut sock);
    let distinct: BTreeSet<&str> = names(&sets).into_iter().collect();
    assert_eq!((sets.len(), distinct.len()), (15, 15), "{sets:?}");
    assert!(distinct.contains("__set9") && distinct.contains("__map11"));
    assert!(sets.iter().all(|(_, anonymous)| *anonymous), "{sets:?}");
    let listing = ns.ruleset();
    assert!(
        !listing.contains("__set") && !listing.contains("__map"),
        "{listing}"
    );
    assert!(
        listing.contains("udp dport { 1012, 2012 } accept"),
        "{listing}"
    );

    // Freed with a flushed table, and with a deleted one.
    ns.nft(&["flush", "table", "inet", "t"]).unwrap();
    assert_eq!(kernel_sets(&mut sock), []);
    push(
        &mut sock,
        &value,
        &PushOptions {
            existing: linx_netfilter::push::Existing::Replace,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(kernel_sets(&mut sock).len(), 3);
    ns.nft(&["delete", "table", "inet", "t"]).unwrap();
    assert_eq!(kernel_sets(&mut sock), []);
}

#[test]
fn a_reconcile_names_around_the_kernels_sets_and_keeps_the_fixed_point() {
    let ns = TestNetns::new();
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let mut r = Reconciler::new(Socket::open(&ns.netns()).unwrap(), Options::default());
    let first = compiled(FILE);
    r.reconcile(&first).unwrap();
    // The compile's names were free: kept.
    assert_eq!(
        names(&kernel_sets(&mut sock)),
        ["__map2", "__set0", "__set1"]
    );

    // nft adds a rule of its own; the kernel numbers its set.
    ns.nft(&[
        "add", "rule", "inet", "t", "c", "udp", "dport", "{", "53, 5353", "}", "accept",
    ])
    .unwrap();
    let before = kernel_sets(&mut sock);
    assert_eq!(before.len(), 4);
    let nfts = names(&before)
        .into_iter()
        .find(|n| !["__map2", "__set0", "__set1"].contains(n))
        .unwrap()
        .to_owned();

    // Desired: all of that plus a rule whose set is named as nft's is in
    // the kernel (the generation moved: the reconciler pulls, then numbers
    // the new set around what it found).
    let src = FILE.replace(
        "\t}\n}",
        "\t\tudp dport { 53, 5353 } accept\n\t\tip daddr { 10.1.1.1, 10.1.1.2 } accept comment \"d\"\n\t}\n}",
    );
    let second = last_set_named(&src, &nfts);
    let out = r.reconcile(&second).unwrap();
    assert_eq!(out.pulls, 1);
    let added: Vec<&Rule> = out
        .patch
        .ops
        .iter()
        .filter_map(|o| match o {
            Op::AddRule { rule, .. } => Some(rule),
            _ => None,
        })
        .collect();
    assert_eq!(added.len(), 1, "{:?}", out.patch);
    let ours = added[0].sets[0].name.clone();
    assert_ne!(ours, nfts);
    let sets = kernel_sets(&mut sock);
    assert_eq!(sets.len(), 5);
    assert!(
        names(&sets).contains(&ours.as_str()),
        "{sets:?} lacks {ours}"
    );
    assert_eq!(ns.ruleset(), nft_listing(&src));
    // The fixed point (the table carries Linx's ownership marker).
    let pulled = pull(&mut sock, &Selector::All).unwrap().ruleset;
    let mut marked = second.clone();
    marked
        .tables
        .iter_mut()
        .for_each(linx_netfilter::reconcile::mark);
    let d = diff(&pulled, &marked);
    assert!(d.is_empty(), "{d}");

    // The known state carries the kernel's names: another set added from
    // it (no pull) is numbered around them too.
    let src3 = src.replace(
        "comment \"d\"\n",
        "comment \"d\"\n\t\tip daddr { 10.2.2.1, 10.2.2.2 } accept comment \"e\"\n",
    );
    let third = last_set_named(&src3, &ours);
    let out = r.reconcile(&third).unwrap();
    assert_eq!(out.pulls, 0, "the known state was current");
    let sets = kernel_sets(&mut sock);
    let distinct: BTreeSet<&str> = names(&sets).into_iter().collect();
    assert_eq!((sets.len(), distinct.len()), (6, 6), "{sets:?}");
    assert_eq!(ns.ruleset(), nft_listing(&src3));
    assert!(r.reconcile(&third).unwrap().patch.is_empty());
}

#[test]
fn the_realistic_mix_pushes_as_nft_loads_it() {
    let src = linx_netfilter::testing::realistic_ruleset(400);
    let value = compiled(&src);
    let ns = TestNetns::new();
    let mut sock = Socket::open(&ns.netns()).unwrap();
    push(&mut sock, &value, &PushOptions::default()).unwrap();
    let sets = kernel_sets(&mut sock);
    assert_eq!(sets.len(), 20, "5% of 400 rules");
    let want: Vec<String> = (0..20).map(|i| format!("__set{i}")).collect();
    let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(names(&sets), want, "the compile's names, kept");
    assert_eq!(ns.ruleset(), nft_listing(&src));
    let pulled = pull(&mut sock, &Selector::All).unwrap().ruleset;
    let d = diff(&pulled, &value);
    assert!(d.is_empty(), "{d}");
}
