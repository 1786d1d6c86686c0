//! A batch that creates a table sends the rules carrying anonymous sets
//! first and places the others around them by predicted handle
//! (`push/order.rs`). What the kernel then holds is what nft holds after
//! loading the same file, rule for rule in every chain shape (rules before
//! the first set-carrying one, between, after the last; chains with none or
//! only such rules; a rule with two sets; several tables), through every
//! path that creates tables: a whole push, a replace, a reconcile (whose
//! echoed handles must still pair with the right rules). Each test in its
//! own namespace.

use linx_netfilter::diff::diff;
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{encode, push, Existing, PushOptions};
use linx_netfilter::reconcile::{Options, Reconciler};
use linx_netfilter::syntax::compile;
use linx_netfilter::sys::*;
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{codec, Ruleset, Socket};

const FILE: &str = "table inet t {
	counter hits {
	}
	quota q {
		over 1 mbytes
	}
	set allowed {
		type ipv4_addr
		elements = { 10.0.0.1, 10.0.0.2 }
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		iifname \"lo\" accept
		jump mixed
		jump plain
		jump last
		jump only
	}
	chain mixed {
		ip saddr @allowed accept comment \"head 1\"
		tcp dport 22 counter name \"hits\" comment \"head 2\"
		tcp dport { 80, 443 } accept comment \"set 1\"
		udp dport 53 accept comment \"between 1\"
		ip saddr { 10.1.0.0/16, 10.2.0.0/16 } tcp dport { 8080, 8443 } accept comment \"two sets\"
		udp dport { 67, 68 } accept comment \"set 3\"
		udp dport 123 accept comment \"between 2\"
		udp dport 124 accept comment \"between 3\"
		tcp dport vmap { 25 : drop, 26 : jump plain } comment \"vmap\"
		ip daddr 192.0.2.1 drop comment \"tail 1\"
		ip daddr 192.0.2.2 quota name \"q\" drop comment \"tail 2\"
	}
	chain plain {
		tcp dport 1 accept
		tcp dport 2 accept
		tcp dport 3 accept
	}
	chain last {
		tcp dport 4 accept comment \"before\"
		tcp dport { 5, 6 } accept comment \"last set\"
	}
	chain only {
		tcp dport { 7, 8 } accept
		tcp dport { 9, 10 } drop
	}
}
table ip u {
	chain c {
		tcp dport 11 accept
		tcp dport { 12, 13 } accept
		tcp dport 14 accept
	}
}
";

/// An older version of table `t` for a replace to overwrite.
const OLD: &str = "table inet t {
	chain mixed {
		tcp dport { 1000, 1001 } accept
		tcp dport 1002 accept
	}
}
";

fn compiled(src: &str) -> Ruleset {
    compile(src).unwrap_or_else(|d| panic!("{d}"))
}

/// `nft list ruleset` after nft itself loads `src` into a fresh namespace.
fn nft_listing(src: &str) -> String {
    let ns = TestNetns::new();
    ns.load(src);
    ns.ruleset()
}

/// For each rule the batch adds, in batch order: whether an anonymous set
/// was created for it (sent since the previous rule).
fn rules_with_sets(value: &Ruleset, opts: &PushOptions) -> Vec<bool> {
    let enc = encode(value, opts);
    let (mut out, mut set) = (Vec::new(), false);
    for m in enc.batch.messages() {
        let m = m.unwrap();
        match m.nft_msg() {
            Some(NFT_MSG_NEWSET) => set |= codec::set::decode(&m).unwrap().value.is_anonymous(),
            Some(NFT_MSG_NEWRULE) => out.push(std::mem::take(&mut set)),
            _ => {}
        }
    }
    out
}

#[test]
fn a_whole_push_sends_set_rules_first_and_the_kernel_holds_what_nft_loads() {
    let value = compiled(FILE);
    let with_sets = value
        .tables
        .iter()
        .flat_map(|t| &t.chains)
        .flat_map(|c| &c.rules)
        .filter(|r| !r.sets.is_empty())
        .count();
    assert_eq!(with_sets, 8);
    // On the wire: every set-carrying rule before every other one.
    let order = rules_with_sets(&value, &PushOptions::default());
    assert_eq!(order.len(), 27);
    assert!(order[..with_sets].iter().all(|&s| s), "{order:?}");
    assert!(order[with_sets..].iter().all(|&s| !s), "{order:?}");
    // Merging into tables of unknown handles keeps the file's order.
    let merge = PushOptions {
        existing: Existing::Merge,
        ..Default::default()
    };
    assert!(!rules_with_sets(&value, &merge)[..with_sets]
        .iter()
        .all(|&s| s));

    // In the kernel: nft's listing of its own load, and the fixed point.
    let ns = TestNetns::new();
    let mut sock = Socket::open(&ns.netns()).unwrap();
    push(&mut sock, &value, &PushOptions::default()).unwrap();
    assert_eq!(ns.ruleset(), nft_listing(FILE));
    let pulled = pull(&mut sock, &Selector::All).unwrap().ruleset;
    assert!(diff(&pulled, &value).is_empty());
    // The same with a merge, which sends the file's order.
    let merged = TestNetns::new();
    push(&mut Socket::open(&merged.netns()).unwrap(), &value, &merge).unwrap();
    assert_eq!(merged.ruleset(), ns.ruleset());
}

#[test]
fn a_replace_places_the_rules_as_nft_does() {
    let ns = TestNetns::new();
    ns.load(OLD);
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let opts = PushOptions {
        existing: Existing::Replace,
        ..Default::default()
    };
    push(&mut sock, &compiled(FILE), &opts).unwrap();
    assert_eq!(ns.ruleset(), nft_listing(FILE));
    // Twice: the second replaces a table holding rules with handles above
    // the new table's.
    push(&mut sock, &compiled(FILE), &opts).unwrap();
    assert_eq!(ns.ruleset(), nft_listing(FILE));
}

#[test]
fn a_reconcile_creating_the_tables_learns_the_right_handles() {
    let ns = TestNetns::new();
    let mut r = Reconciler::new(Socket::open(&ns.netns()).unwrap(), Options::default());
    let out = r.reconcile(&compiled(FILE)).unwrap();
    assert!(out.messages > 0);
    assert_eq!(ns.ruleset(), nft_listing(FILE));

    // Deleting rules by the handles the echo taught: the rules sent out of
    // the file's order must have been paired with their own handles, or
    // other rules would go.
    let edited = FILE
        .replace("\t\tudp dport 53 accept comment \"between 1\"\n", "")
        .replace("\t\tudp dport { 67, 68 } accept comment \"set 3\"\n", "")
        .replace("\t\ttcp dport 4 accept comment \"before\"\n", "")
        .replace("\t\ttcp dport 14 accept\n", "");
    assert_ne!(edited, FILE);
    let out = r.reconcile(&compiled(&edited)).unwrap();
    assert_eq!(out.pulls, 0, "the known state was used");
    assert_eq!(ns.ruleset(), nft_listing(&edited));

    // A table deleted and created again in one reconcile (replace mode)
    // goes the same way.
    let mut r = Reconciler::new(
        Socket::open(&ns.netns()).unwrap(),
        Options {
            mode: linx_netfilter::reconcile::Mode::Replace,
            ..Options::default()
        },
    );
    r.reconcile(&compiled(FILE)).unwrap();
    assert_eq!(ns.ruleset(), nft_listing(FILE));
}

/// The helper object `ftp` does not exist: nft's load of this fails on that rule alone.
const REFUSED: &str = "table inet t {
	chain c {
		tcp dport 1 accept
		tcp dport { 2, 3 } ct helper set \"ftp\"
		tcp dport 4 accept
		tcp dport { 5, 6 } accept
		tcp dport 7 accept
	}
}
";

#[test]
fn a_refused_rule_is_the_only_error_as_with_nft() {
    let e = TestNetns::new().nft_load(REFUSED).unwrap_err();
    assert!(
        e.contains("ct helper set") && e.matches("Error:").count() == 1,
        "{e}"
    );

    // A whole push: the set-carrying rules went first and one was refused,
    // so the handles the others were placed by are off; the batch is sent
    // again in the file's order, which the kernel refuses for that rule
    // only. Nothing is applied either time.
    let ns = TestNetns::new();
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let err = push(&mut sock, &compiled(REFUSED), &PushOptions::default()).unwrap_err();
    let linx_netfilter::Error::Batch(failure) = &err else {
        panic!("{err}")
    };
    assert_eq!(failure.0.len(), 1, "{err}");
    assert_eq!(failure.0[0].errno, libc::ENOENT, "{err}");
    assert!(failure.0[0].object.contains("c rule #2"), "{err}");
    assert_eq!(ns.ruleset(), "");

    // A reconcile, and its dry run: the same single error.
    let mut r = Reconciler::new(Socket::open(&ns.netns()).unwrap(), Options::default());
    for validate in [true, false] {
        let err = if validate {
            r.plan(&compiled(REFUSED), true).unwrap_err()
        } else {
            r.reconcile(&compiled(REFUSED)).unwrap_err()
        };
        let text = err.to_string();
        let linx_netfilter::Error::Batch(failure) = err else {
            panic!("{text}")
        };
        assert_eq!(failure.0.len(), 1, "{text}");
        assert_eq!(failure.0[0].errno, libc::ENOENT, "{text}");
        // Its place in the file's order: the table, the chain, rule 1, the
        // set and its elements, rule 2; named by its text.
        assert_eq!(failure.0[0].index, 6, "{text}");
        assert_eq!(failure.0[0].operation, Some(3), "{text}");
        assert_eq!(
            failure.0[0].object, "inet t c tcp dport { 2, 3 } ct helper set \"ftp\"",
            "{text}"
        );
    }
    assert_eq!(ns.ruleset(), "");
}
