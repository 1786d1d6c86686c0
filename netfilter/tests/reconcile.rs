//! Reconcile against the real kernel: minimal patches, handles and counters
//! kept, generation conflicts retried, nothing half-applied, ownership.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use linx_netfilter::diff::Op;
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::reconcile::{Options, Reconciler};
use linx_netfilter::sys::*;
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{Batch, Error, Family, Ruleset, Socket};

/// The value nft makes of `script` (nft is the oracle compiler here):
/// loaded into a scratch namespace and pulled back.
fn value_of(script: &str) -> Ruleset {
    let scratch = TestNetns::new();
    scratch.load(script);
    let mut sock = Socket::open(&scratch.netns()).unwrap();
    pull(&mut sock, &Selector::All).unwrap().ruleset
}

fn reconciler(ns: &TestNetns, opts: Options) -> Reconciler {
    Reconciler::new(Socket::open(&ns.netns()).unwrap(), opts)
}

fn chain_script(rules: &[String]) -> String {
    let mut s = String::from("table inet fw {\n chain c {\n");
    for r in rules {
        s.push_str("  ");
        s.push_str(r);
        s.push('\n');
    }
    s.push_str(" }\n}\n");
    s
}

fn handles_and_counters(ns: &TestNetns) -> Vec<(String, String)> {
    // "rule text # handle N" lines, with counters, as nft lists them.
    ns.nft(&["-a", "list", "chain", "inet", "fw", "c"])
        .unwrap()
        .lines()
        .filter(|l| l.contains("# handle") && l.contains("counter"))
        .map(|l| {
            let (rule, handle) = l.trim().rsplit_once(" # handle ").unwrap();
            (handle.to_owned(), rule.to_owned())
        })
        .collect()
}

#[test]
fn one_changed_rule_in_5000_is_one_deletion_and_one_insertion() {
    let ns = TestNetns::new();
    let rules: Vec<String> = (0..5000)
        .map(|i| format!("tcp dport {} counter accept", 1 + i))
        .collect();
    // The kernel's state, with live counter values, made by nft; Linx adopts it.
    let live: Vec<String> = (0..5000)
        .map(|i| {
            format!(
                "tcp dport {} counter packets {} bytes {} accept",
                1 + i,
                i + 1,
                64 * (i + 1)
            )
        })
        .collect();
    ns.load(&chain_script(&live));
    let before = handles_and_counters(&ns);
    let mut want = rules.clone();
    want[2500] = "tcp dport 65000 counter accept".into();
    let mut r = reconciler(
        &ns,
        Options {
            adopt: true,
            ..Default::default()
        },
    );
    let out = r.reconcile(&value_of(&chain_script(&want))).unwrap();
    let kinds: Vec<&str> = out
        .patch
        .ops
        .iter()
        .map(|o| match o {
            Op::DeleteRule { .. } => "delete rule",
            Op::AddRule { .. } => "add rule",
            Op::AddTable { .. } | Op::UpdateTable { .. } => "table",
            _ => "other",
        })
        .filter(|k| *k != "table")
        .collect();
    assert_eq!(kinds, ["delete rule", "add rule"], "{}", out.patch);
    let after = handles_and_counters(&ns);
    assert_eq!(after.len(), 5000);
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if i != 2500 {
            assert_eq!(b, a, "rule {i} lost its handle or counters");
        }
    }
    assert!(
        after[2500]
            .1
            .starts_with("tcp dport 65000 counter packets 0"),
        "{:?}",
        after[2500]
    );
}

#[test]
fn a_no_change_reconcile_sends_nothing() {
    let ns = TestNetns::new();
    let want = value_of(&chain_script(&[
        "tcp dport 22 accept".into(),
        "counter drop".into(),
    ]));
    let mut r = reconciler(&ns, Options::default());
    let first = r.reconcile(&want).unwrap();
    assert!(!first.patch.is_empty());
    let mut probe = Socket::open(&ns.netns()).unwrap();
    let g = probe.generation().unwrap().id;
    assert_eq!(g, first.generation);
    let again = r.reconcile(&want).unwrap();
    assert!(again.patch.is_empty(), "{}", again.patch);
    assert_eq!(
        (again.pulls, again.messages),
        (0, 0),
        "known state used, no batch sent"
    );
    assert_eq!(probe.generation().unwrap().id, g, "no commit happened");
}

#[test]
fn known_state_follows_small_changes_without_pulling() {
    let ns = TestNetns::new();
    let mut rules: Vec<String> = (0..50)
        .map(|i| format!("tcp dport {} accept", 100 + i))
        .collect();
    let mut r = reconciler(&ns, Options::default());
    r.reconcile(&value_of(&chain_script(&rules))).unwrap();
    for step in 0..5 {
        rules.insert(step * 7, format!("udp dport {} drop", 9000 + step));
        rules.remove(30);
        let out = r.reconcile(&value_of(&chain_script(&rules))).unwrap();
        assert_eq!(
            out.pulls, 0,
            "step {step}: known state should have been current"
        );
        let got = pull(&mut Socket::open(&ns.netns()).unwrap(), &Selector::All)
            .unwrap()
            .ruleset;
        let want = value_of(&chain_script(&rules));
        assert!(
            linx_netfilter::diff::diff(&got, &mark_all(want)).is_empty(),
            "step {step}"
        );
    }
}

/// Three chains of 40 rules each; chain `a`'s rule `changed` (if any) compares port 9999.
fn three_chains(changed: Option<usize>) -> String {
    let mut s = String::from("table inet fw {\n");
    for (k, name) in ["a", "b", "c"].iter().enumerate() {
        s.push_str(&format!(" chain {name} {{\n"));
        for i in 0..40 {
            let port = if *name == "a" && Some(i) == changed {
                9999
            } else {
                1000 * k + i
            };
            s.push_str(&format!("  tcp dport {port} counter accept\n"));
        }
        s.push_str(" }\n");
    }
    s + "}\n"
}

#[test]
fn unchanged_chains_are_skipped_until_another_writer_commits() {
    let ns = TestNetns::new();
    let oracle = TestNetns::new();
    let listing = |ns: &TestNetns| ns.nft(&["list", "ruleset"]).unwrap();
    let v1 = value_of(&three_chains(None));
    let mut r = reconciler(&ns, Options::default());
    r.reconcile(&v1).unwrap();
    // The next value shares chains b and c with the one pushed: only
    // chain a differs, and only a is diffed.
    let mut v2 = v1.clone();
    v2.tables[0].chains[0].rules = value_of(&three_chains(Some(7))).tables[0].chains[0]
        .rules
        .clone();
    assert!(v2.tables[0].chains[1]
        .rules
        .same(&v1.tables[0].chains[1].rules));
    let out = r.reconcile(&v2).unwrap();
    assert_eq!((out.pulls, out.patch.len()), (0, 2), "{}", out.patch);
    oracle.load(&three_chains(Some(7)));
    assert_eq!(listing(&ns), listing(&oracle));
    // Another writer changes chain b, which v2 still shares with what was
    // pushed: the generation moved, so the reconciler pulls and compares
    // everything again, and repairs b.
    ns.load("flush chain inet fw b\nadd rule inet fw b tcp dport 1 drop\n");
    assert_ne!(listing(&ns), listing(&oracle));
    let out = r.reconcile(&v2).unwrap();
    assert_eq!(out.pulls, 1);
    assert_eq!(listing(&ns), listing(&oracle));
    // Known again, and nothing to do.
    let out = r.reconcile(&v2).unwrap();
    assert_eq!((out.pulls, out.messages), (0, 0));
}

fn mark_all(mut v: Ruleset) -> Ruleset {
    v.tables
        .iter_mut()
        .for_each(linx_netfilter::reconcile::mark);
    v
}

#[test]
fn set_changes_are_element_deltas() {
    let ns = TestNetns::new();
    let mut script = String::from("table inet fw {\n set big {\n  type ipv4_addr\n  elements = { ");
    let elems: Vec<String> = (0..100_000u32)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    script.push_str(&elems.join(", "));
    script.push_str(" }\n }\n set ranges {\n  type ipv4_addr\n  flags interval\n  elements = { 192.168.0.0/24, 192.168.2.0-192.168.2.99, 172.16.0.0/16 }\n }\n}\n");
    let mut r = reconciler(&ns, Options::default());
    r.reconcile(&value_of(&script)).unwrap();

    let plus_one = script.replace("10.1.134.159 }", "10.1.134.159, 10.200.0.1 }");
    assert_ne!(plus_one, script);
    let out = r.reconcile(&value_of(&plus_one)).unwrap();
    assert_eq!(out.patch.ops.len(), 1, "{}", out.patch);
    assert!(
        matches!(&out.patch.ops[0], Op::AddElements { set, elements, .. } if set == "big" && elements.len() == 1),
        "{}",
        out.patch
    );
    assert!(ns
        .nft(&["get", "element", "inet", "fw", "big", "{ 10.200.0.1 }"])
        .is_ok());

    let fewer = plus_one.replace("192.168.2.0-192.168.2.99, ", "");
    let out = r.reconcile(&value_of(&fewer)).unwrap();
    assert!(
        out.patch
            .ops
            .iter()
            .all(|o| matches!(o, Op::DeleteElements { set, .. } if set == "ranges")),
        "{}",
        out.patch
    );
    let listed = ns.nft(&["list", "set", "inet", "fw", "ranges"]).unwrap();
    assert!(
        listed.contains("elements = { 172.16.0.0/16, 192.168.0.0/24 }"),
        "{listed}"
    );
}

#[test]
fn an_invalid_rule_applies_nothing_and_is_named() {
    let ns = TestNetns::new();
    ns.load("table ip other {\n chain x {\n  accept\n }\n}\n");
    let before = ns.ruleset();
    let mut want = value_of(&chain_script(&[
        "tcp dport 22 accept".into(),
        "tcp dport 80 accept".into(),
    ]));
    // The second rule jumps to a chain that does not exist.
    let rule = &mut want.tables[0].chains[0].rules[1];
    for e in &mut rule.exprs {
        if let linx_netfilter::expr::Expr::Immediate(i) = e {
            i.data = Some(linx_netfilter::expr::Data::Verdict(
                linx_netfilter::expr::Verdict::Jump("nowhere".into()),
            ));
        }
    }
    let mut r = reconciler(&ns, Options::default());
    let err = r.reconcile(&want).unwrap_err();
    let Error::Batch(f) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(f.first().op, "add rule", "{err}");
    assert!(f.first().object.starts_with("inet fw c"), "{err}");
    assert_eq!(f.first().errno, libc::ENOENT, "{err}");
    assert_eq!(ns.ruleset(), before, "nothing applied");
}

#[test]
fn a_foreign_table_of_the_same_name_is_refused_unless_adopted() {
    let ns = TestNetns::new();
    ns.load(&chain_script(&["tcp dport 1 accept".into()]));
    let want = value_of(&chain_script(&["tcp dport 2 accept".into()]));
    let err = reconciler(&ns, Options::default())
        .reconcile(&want)
        .unwrap_err();
    assert!(matches!(err, Error::NotOwned { .. }), "{err}");
    assert!(ns.ruleset().contains("tcp dport 1 accept"));
    reconciler(
        &ns,
        Options {
            adopt: true,
            ..Default::default()
        },
    )
    .reconcile(&want)
    .unwrap();
    let listed = ns.ruleset();
    assert!(
        listed.contains("tcp dport 2 accept") && !listed.contains("dport 1 "),
        "{listed}"
    );
    // Adopted, not marked (the kernel cannot add the marker in place): a
    // later reconciler needs adoption again. A table Linx creates is marked,
    // and the marker does not disturb nft's listing.
    assert!(matches!(
        reconciler(&ns, Options::default()).reconcile(&want),
        Err(Error::NotOwned { .. })
    ));
    let fresh = TestNetns::new();
    reconciler(&fresh, Options::default())
        .reconcile(&want)
        .unwrap();
    reconciler(&fresh, Options::default())
        .reconcile(&want)
        .unwrap();
    assert!(fresh.ruleset().contains("tcp dport 2 accept"));
}

/// After a restart: a new reconciler takes over exactly the tables Linx
/// marked (read with `pull::tables`), never a foreign one, so a desired
/// value without them deletes them and leaves the foreign table alone.
#[test]
fn a_restarted_reconciler_adopts_only_marked_tables() {
    let ns = TestNetns::new();
    ns.load("table ip foreign {\n chain x {\n  accept\n }\n}\n");
    let mut both = value_of(&chain_script(&["tcp dport 2 accept".into()]));
    let other = "table ip other {\n chain c {\n  udp dport 53 accept\n }\n}\n";
    both.tables.extend(value_of(other).tables);
    reconciler(&ns, Options::default())
        .reconcile(&both)
        .unwrap();
    let mut again = reconciler(&ns, Options::default());
    assert_eq!(again.adopt_marked().unwrap(), 2);
    let managed: std::collections::BTreeSet<(Family, String)> = again.managed().cloned().collect();
    let want = [
        (Family::Inet, "fw".to_owned()),
        (Family::Ip, "other".to_owned()),
    ];
    assert_eq!(managed, want.into_iter().collect());
    again.reconcile(&Ruleset::default()).unwrap();
    let listed = ns.ruleset();
    assert!(
        listed.contains("table ip foreign") && !listed.contains("fw") && !listed.contains("other"),
        "{listed}"
    );
}

#[test]
fn two_hundred_reconciles_against_a_concurrent_writer() {
    let ns = TestNetns::new();
    ns.load("table ip foreign {\n chain busy {\n }\n}\n");
    let a = value_of(&chain_script(&[
        "tcp dport 22 accept".into(),
        "tcp dport 80 accept".into(),
    ]));
    let b = value_of(&chain_script(&[
        "tcp dport 22 accept".into(),
        "udp dport 53 accept".into(),
        "tcp dport 443 accept".into(),
    ]));
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let path = ns.netns();
    let writer = {
        let stop = stop.clone();
        let written = written.clone();
        std::thread::spawn(move || {
            // Commits as fast as it can in a foreign table: adds a rule, deletes the oldest.
            let mut sock = Socket::open(&path).unwrap();
            let mut commits = 0u32;
            let mut handles = std::collections::VecDeque::new();
            while !stop.load(Ordering::Relaxed) {
                let mut batch = Batch::new();
                batch.add(
                    NFT_MSG_NEWRULE,
                    NLM_F_CREATE | NLM_F_APPEND | NLM_F_ECHO,
                    NFPROTO_IPV4 as u8,
                    |w| {
                        w.put_str(NFTA_RULE_TABLE, "foreign");
                        w.put_str(NFTA_RULE_CHAIN, "busy");
                        w.nest(NFTA_RULE_EXPRESSIONS, |w| {
                            w.nest(NFTA_LIST_ELEM, |w| {
                                w.put_str(NFTA_EXPR_NAME, "counter");
                                w.nest(NFTA_EXPR_DATA, |w| {
                                    w.put_u64_be(NFTA_COUNTER_BYTES, commits as u64);
                                    w.put_u64_be(NFTA_COUNTER_PACKETS, 0);
                                });
                            });
                        });
                    },
                );
                let (_, echo) = sock.commit_with_echo(&mut batch, None).unwrap();
                for m in echo
                    .iter()
                    .flatten()
                    .filter(|m| m.nft_msg() == Some(NFT_MSG_NEWRULE))
                {
                    let rule = linx_netfilter::codec::rule::decode(&m).unwrap();
                    handles.push_back(rule.value.handle.unwrap());
                }
                if handles.len() > 5 {
                    let h = handles.pop_front().unwrap();
                    let mut del = Batch::new();
                    del.add(NFT_MSG_DELRULE, 0, NFPROTO_IPV4 as u8, |w| {
                        w.put_str(NFTA_RULE_TABLE, "foreign");
                        w.put_str(NFTA_RULE_CHAIN, "busy");
                        w.put_u64_be(NFTA_RULE_HANDLE, h);
                    });
                    sock.commit(&mut del, None).unwrap();
                }
                commits += 1;
                written.store(commits, Ordering::Relaxed);
                // A busy writer, not a livelock: hundreds of commits a second.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            (commits, handles.len())
        })
    };
    let mut r = reconciler(
        &ns,
        Options {
            max_attempts: 50,
            ..Default::default()
        },
    );
    let mut conflicts = 0;
    let mut check = Socket::open(&ns.netns()).unwrap();
    // At least 200 reconciles, and on until the writer has really interleaved with them: how
    // often two threads meet depends on the machine's scheduler, so the loop waits for the
    // conflicts it needs (bounded) instead of hoping 200 rounds bring them.
    let mut i = 0;
    while i < 200 || ((conflicts == 0 || written.load(Ordering::Relaxed) < 20) && i < 20_000) {
        let want = if i % 2 == 0 { &a } else { &b };
        let out = r
            .reconcile(want)
            .unwrap_or_else(|e| panic!("reconcile {i}: {e}"));
        conflicts += out.conflicts;
        let got = pull(
            &mut check,
            &Selector::Tables(vec![(Family::Inet, "fw".into())]),
        )
        .unwrap()
        .ruleset;
        assert!(
            linx_netfilter::diff::diff(&got, &mark_all(want.clone())).is_empty(),
            "reconcile {i} did not converge"
        );
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let (commits, live) = writer.join().unwrap();
    println!(
        "reconciles: {i}, writer commits: {commits}, generation conflicts retried: {conflicts}"
    );
    assert!(
        commits >= 20,
        "the writer must really have been writing ({commits})"
    );
    assert!(
        conflicts > 0,
        "no generation conflict happened: the test proves nothing"
    );
    // Every foreign change survived: exactly the writer's live rules remain.
    let foreign = ns.nft(&["list", "chain", "ip", "foreign", "busy"]).unwrap();
    assert_eq!(foreign.matches("counter").count(), live, "{foreign}");
}

/// Holds an owner-flagged table until killed (run as a child process by
/// `owner_flagged_table_goes_with_its_process`).
#[test]
#[ignore = "helper process for owner_flagged_table_goes_with_its_process"]
fn owner_table_holder() {
    let Ok(path) = std::env::var("LINX_OWNER_NETNS") else {
        return;
    };
    let persist = std::env::var("LINX_OWNER_PERSIST").as_deref() == Ok("1");
    let sock = Socket::open(&linx_netfilter::Netns::Path(path.into())).unwrap();
    let mut r = Reconciler::new(
        sock,
        Options {
            owner: true,
            persist,
            ..Default::default()
        },
    );
    r.reconcile(&value_of(&chain_script(&["tcp dport 22 accept".into()])))
        .unwrap();
    println!("ready");
    std::thread::sleep(std::time::Duration::from_secs(120));
}

fn run_holder(ns: &TestNetns, persist: bool) -> String {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "owner_table_holder", "--ignored", "--nocapture"])
        .env("LINX_OWNER_NETNS", ns.path())
        .env("LINX_OWNER_PERSIST", if persist { "1" } else { "0" })
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().contains("ready")),
        "holder did not start"
    );
    let held = ns.ruleset();
    assert!(held.contains("table inet fw"), "{held}");
    // SIGKILL: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    ns.ruleset()
}

#[test]
fn owner_flagged_table_goes_with_its_process() {
    let ns = TestNetns::new();
    assert_eq!(
        run_holder(&ns, false),
        "",
        "an owned table must vanish with its owner"
    );
    let ns = TestNetns::new();
    assert!(
        run_holder(&ns, true).contains("table inet fw"),
        "owner|persist must stay"
    );
}

#[test]
fn replace_mode_recreates_the_tables_in_one_transaction() {
    let ns = TestNetns::new();
    ns.load("table ip foreign {\n chain x {\n  accept\n }\n}\n");
    let v1 = value_of(&chain_script(&[
        "tcp dport 1 counter accept".into(),
        "tcp dport 2 accept".into(),
    ]));
    let v2 = value_of(&chain_script(&[
        "tcp dport 2 accept".into(),
        "tcp dport 3 accept".into(),
    ]));
    let opts = || Options {
        mode: linx_netfilter::reconcile::Mode::Replace,
        ..Default::default()
    };
    let mut r = reconciler(&ns, opts());
    r.reconcile(&v1).unwrap();
    let mut probe = Socket::open(&ns.netns()).unwrap();
    let before = probe.generation().unwrap().id;
    let out = r.reconcile(&v2).unwrap();
    // One commit: the generation moved by exactly one.
    assert_eq!(probe.generation().unwrap().id, before + 1);
    assert_eq!(out.generation, before + 1);
    let listed = ns.nft(&["list", "table", "inet", "fw"]).unwrap();
    assert!(
        listed.contains("tcp dport 2 accept")
            && listed.contains("tcp dport 3 accept")
            && !listed.contains("dport 1 "),
        "{listed}"
    );
    assert!(
        ns.ruleset().contains("table ip foreign"),
        "foreign tables untouched"
    );
    // A dry run plans the same replacement without committing anything.
    let (plan, g) = reconciler(&ns, opts()).plan(&v1, true).unwrap();
    assert!(
        plan.ops.iter().any(|o| matches!(o, Op::DeleteTable { .. })),
        "{plan}"
    );
    assert_eq!(probe.generation().unwrap().id, g);
}

#[test]
fn reconcile_keeping_updates_named_tables_and_keeps_unnamed_managed_ones() {
    let ns = TestNetns::new();
    let a = "table ip a {\n chain c {\n  udp dport 53 accept\n }\n}\n";
    let a2 = "table ip a {\n chain c {\n  udp dport 53 accept\n  udp dport 123 accept\n }\n}\n";
    let fw = chain_script(&["tcp dport 22 accept".into()]);
    let mut both = value_of(a);
    both.tables.extend(value_of(&fw).tables);
    let mut r = reconciler(&ns, Options::default());
    r.reconcile(&both).unwrap();
    let fw_before = ns.nft(&["list", "table", "inet", "fw"]).unwrap();
    // Someone changes the kept table: keeping takes the kernel's copy as is.
    ns.nft(&[
        "add", "rule", "inet", "fw", "c", "tcp", "dport", "80", "accept",
    ])
    .unwrap();
    let fw_changed = ns.nft(&["list", "table", "inet", "fw"]).unwrap();
    assert_ne!(fw_changed, fw_before);
    // Only `a` named, with one more rule: `a` is updated, `fw` stays.
    let out = r.reconcile_keeping(&value_of(a2)).unwrap();
    assert_eq!(out.patch.len(), 1, "{}", out.patch);
    assert_eq!(
        ns.nft(&["list", "table", "inet", "fw"]).unwrap(),
        fw_changed
    );
    let scratch = TestNetns::new();
    scratch.load(a2);
    assert_eq!(
        ns.nft(&["list", "table", "ip", "a"]).unwrap(),
        scratch.nft(&["list", "table", "ip", "a"]).unwrap()
    );
    // Still managed: a plain reconcile without it removes it.
    r.reconcile(&value_of(a2)).unwrap();
    assert!(ns.nft(&["list", "table", "inet", "fw"]).is_err());
}

/// A one-shot reconcile (`remember: false`, the CLI's `apply`) sends added
/// rules without asking for their echo and keeps no state: the rules are
/// in the kernel all the same, and the next reconcile pulls and finds
/// nothing to do; a remembering one learns the handles and does not pull.
#[test]
fn a_one_shot_reconcile_asks_no_echo_and_keeps_no_state() {
    let rules: Vec<String> = (0..50)
        .map(|i| format!("tcp dport {} counter accept", 1 + i))
        .collect();
    let want = linx_netfilter::syntax::compile(&chain_script(&rules)).unwrap();
    for remember in [false, true] {
        let ns = TestNetns::new();
        let mut r = reconciler(
            &ns,
            Options {
                remember,
                ..Default::default()
            },
        );
        let first = r.reconcile(&want).unwrap();
        assert_eq!(first.patch.len(), 52, "{}", first.patch);
        assert_eq!(handles_and_counters(&ns).len(), 50);
        let mut patch = first.patch.clone();
        linx_netfilter::push::name_patch(&mut patch, &Ruleset::default());
        let sent = if remember {
            linx_netfilter::push::encode_named_patch(&patch)
        } else {
            linx_netfilter::push::encode_named_patch_without_echo(&patch)
        };
        let echoing = sent
            .batch
            .messages()
            .map(|m| m.unwrap())
            .filter(|m| m.nft_msg() == Some(NFT_MSG_NEWRULE) && m.flags & NLM_F_ECHO != 0)
            .count();
        assert_eq!(echoing, if remember { 50 } else { 0 });
        let again = r.reconcile(&want).unwrap();
        assert!(again.patch.is_empty(), "{}", again.patch);
        assert_eq!(again.pulls, u32::from(!remember));
    }
}

#[test]
fn namespaces_given_one_value_hold_its_element_list_and_send_the_delta() {
    let script = |from: u32| {
        let elems: Vec<String> = (from..from + 1000)
            .map(|i| format!("10.9.{}.{}", i >> 8, i & 255))
            .collect();
        format!(
            "table inet fw {{\n set api {{\n  type ipv4_addr\n  elements = {{ {} }}\n }}\n \
             chain c {{\n  ip saddr @api counter accept\n }}\n}}\n",
            elems.join(", ")
        )
    };
    let (v1, v2) = (value_of(&script(0)), value_of(&script(20)));
    let spaces: Vec<TestNetns> = (0..3).map(|_| TestNetns::new()).collect();
    let mut recs: Vec<Reconciler> = spaces
        .iter()
        .map(|ns| reconciler(ns, Options::default()))
        .collect();
    for r in &mut recs {
        r.reconcile(&v1).unwrap();
    }
    for (ns, r) in spaces.iter().zip(&mut recs) {
        let out = r.reconcile(&v2).unwrap();
        let ops: Vec<(&str, usize)> = out
            .patch
            .ops
            .iter()
            .map(|o| match o {
                Op::DeleteElements { elements, .. } => ("delete", elements.len()),
                Op::AddElements { elements, .. } => ("add", elements.len()),
                _ => ("other", 0),
            })
            .collect();
        assert_eq!(ops, [("delete", 20), ("add", 20)], "{}", out.patch);
        assert_eq!(out.pulls, 0);
        // The kernel holds the new list; nothing is left to do.
        let mut sock = Socket::open(&ns.netns()).unwrap();
        let pulled = pull(&mut sock, &Selector::All).unwrap().ruleset;
        assert!(
            linx_netfilter::diff::equal(&pulled, &mark_all(v2.clone())),
            "{}",
            linx_netfilter::diff::diff(&pulled, &mark_all(v2.clone()))
        );
        let again = r.reconcile(&v2).unwrap();
        assert_eq!((again.messages, again.pulls), (0, 0), "{}", again.patch);
    }
    // And back, from the list each known state now holds.
    for r in &mut recs {
        let out = r.reconcile(&v1).unwrap();
        assert_eq!(out.patch.ops.len(), 2, "{}", out.patch);
    }
}

/// `prefetch` (the CLI pulls while it compiles) holds every table of the
/// namespace: a reconcile right after pulls nothing, changes only its own
/// table and leaves a foreign one as it was; after another writer's commit
/// the prefetched state is stale and the reconcile pulls again, so that
/// writer's rule is seen and removed.
#[test]
fn a_prefetched_state_spares_the_pull_until_another_writer_commits() {
    let ns = TestNetns::new();
    ns.load("table ip other {\n chain c {\n  tcp dport 9 drop\n }\n}\n");
    let rules: Vec<String> = (0..20)
        .map(|i| format!("tcp dport {} accept", 1 + i))
        .collect();
    let want = linx_netfilter::syntax::compile(&chain_script(&rules)).unwrap();
    let mut r = reconciler(&ns, Options::default());
    r.prefetch().unwrap();
    let first = r.reconcile(&want).unwrap();
    assert_eq!(first.pulls, 0, "the prefetched state served");
    assert_eq!(first.patch.len(), 22, "{}", first.patch);
    let other = ns.nft(&["list", "table", "ip", "other"]).unwrap();
    assert!(other.contains("tcp dport 9 drop"), "{other}");

    let mut r = reconciler(&ns, Options::default());
    r.prefetch().unwrap();
    ns.nft(&[
        "add", "rule", "inet", "fw", "c", "tcp", "dport", "99", "drop",
    ])
    .unwrap();
    let second = r.reconcile(&want).unwrap();
    assert_eq!(second.pulls, 1, "a commit since the prefetch: pulled again");
    assert_eq!(second.patch.len(), 1, "{}", second.patch);
    let listed = ns.nft(&["list", "table", "inet", "fw"]).unwrap();
    assert!(!listed.contains("dport 99"), "{listed}");
    assert_eq!(listed.matches("accept").count(), 20, "{listed}");
}
