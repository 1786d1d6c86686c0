//! Push options and pull selection against the kernel.

use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{push, Existing, PushOptions};
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{Error, Family, Socket};

const FW: &str = "table inet fw {
	chain input {
		type filter hook input priority filter; policy drop;
		tcp dport { 22, 80 } accept
		ip saddr { 10.0.0.1, 10.0.0.2 } drop
	}
}
table ip other {
	chain c {
		counter
	}
}
";

fn setup() -> (TestNetns, Socket) {
    let ns = TestNetns::new();
    ns.load(FW);
    let sock = Socket::open(&ns.netns()).unwrap();
    (ns, sock)
}

#[test]
fn anonymous_sets_belong_to_their_rules_and_selection_narrows_the_pull() {
    let (_ns, mut sock) = setup();
    let all = pull(&mut sock, &Selector::All).unwrap();
    assert_eq!(all.ruleset.tables.len(), 2);
    let only = pull(
        &mut sock,
        &Selector::Tables(vec![(Family::Inet, "fw".into())]),
    )
    .unwrap();
    assert_eq!(only.generation, all.generation);
    let [fw] = &only.ruleset.tables[..] else {
        panic!("{:?}", only.ruleset)
    };
    assert!(fw.sets.is_empty(), "anonymous sets stay out of the table");
    let rules = &fw.chain("input").unwrap().rules;
    assert_eq!(rules.len(), 2);
    for r in rules {
        let [s] = &r.sets[..] else { panic!("{r:?}") };
        assert!(s.is_anonymous() && s.elements.len() == 2, "{s:?}");
    }
    assert_eq!(fw, &all.ruleset.tables[0]);
    let none = pull(
        &mut sock,
        &Selector::Tables(vec![(Family::Ip6, "fw".into())]),
    )
    .unwrap();
    assert!(none.ruleset.tables.is_empty());
}

#[test]
fn existing_tables_fail_merge_or_are_replaced() {
    let (ns, mut sock) = setup();
    let value = pull(&mut sock, &Selector::All).unwrap().ruleset;
    let listing = ns.ruleset();

    // Fail: the kernel refuses the first existing table; nothing changes.
    let e = push(&mut sock, &value, &PushOptions::default()).unwrap_err();
    let Error::Batch(f) = &e else { panic!("{e}") };
    assert_eq!((f.first().op, f.first().errno), ("add table", libc::EEXIST));
    assert_eq!(ns.ruleset(), listing);

    // Replace: extra state in the table goes, the table is the value's.
    ns.nft(&["add", "chain", "inet", "fw", "extra"]).unwrap();
    ns.nft(&["add", "rule", "inet", "fw", "input", "accept"])
        .unwrap();
    let replace = PushOptions {
        existing: Existing::Replace,
        ..Default::default()
    };
    push(&mut sock, &value, &replace).unwrap();
    assert_eq!(ns.ruleset(), listing);

    // Merge: as nft -f, rules are appended.
    let merge = PushOptions {
        existing: Existing::Merge,
        ..Default::default()
    };
    push(&mut sock, &value, &merge).unwrap();
    let merged = pull(&mut sock, &Selector::All).unwrap().ruleset;
    assert_eq!(merged.tables[0].chain("input").unwrap().rules.len(), 4);
}

#[test]
fn generation_guard_refuses_a_stale_push() {
    let (ns, mut sock) = setup();
    let pulled = pull(&mut sock, &Selector::All).unwrap();
    ns.nft(&["add", "table", "ip", "meanwhile"]).unwrap();
    let listing = ns.ruleset();
    let opts = PushOptions {
        generation: Some(pulled.generation),
        existing: Existing::Replace,
    };
    let e = push(&mut sock, &pulled.ruleset, &opts).unwrap_err();
    assert!(matches!(e, Error::GenerationMismatch { .. }), "{e}");
    assert_eq!(ns.ruleset(), listing);
    let fresh = pull(&mut sock, &Selector::All).unwrap();
    assert!(fresh.generation != pulled.generation);
    let opts = PushOptions {
        generation: Some(fresh.generation),
        existing: Existing::Replace,
    };
    push(&mut sock, &fresh.ruleset, &opts).unwrap();
}

#[test]
fn a_refused_rule_is_named_by_its_place() {
    let (_ns, mut sock) = setup();
    let mut value = pull(&mut sock, &Selector::All).unwrap().ruleset;
    value.tables.truncate(1);
    value.tables[0].name = "copy".into();
    // Point the second rule's verdict at a chain that does not exist.
    let chain = &mut value.tables[0].chains[0];
    let rule = &mut chain.rules[1];
    let exprs = serde_json::to_string(&rule.exprs).unwrap();
    rule.exprs =
        serde_json::from_str(&exprs.replace("\"drop\"", "{\"jump\":\"missing\"}")).unwrap();
    let e = push(&mut sock, &value, &PushOptions::default()).unwrap_err();
    let Error::Batch(f) = &e else { panic!("{e}") };
    assert_eq!(f.first().object, "inet copy input rule #2", "{e}");
    assert_eq!(f.first().errno, libc::ENOENT);
}
