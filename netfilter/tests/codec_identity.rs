//! Acceptance test of the expression and object codecs against the real
//! kernel: every rule the conformance corpus says nft 1.0.6 accepts on this
//! kernel is loaded with nft into a throwaway namespace, dumped back over
//! netlink, decoded, re-encoded, and must come out byte for byte as the
//! kernel sent it, with every expression and attribute typed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use linx_netfilter::expr::Expr;
use linx_netfilter::sys::*;
use linx_netfilter::testing::TestNetns;

mod common;
use common::corpus::{group, read_rows, FileGroup};
use common::{check_exprs, check_object, dump_objects, dump_rules};

#[derive(Default)]
struct Tally {
    /// family -> (rows checked, rows passed)
    per_family: BTreeMap<String, (usize, usize)>,
    failures: Vec<String>,
    /// Files whose single batch failed and were loaded rule by rule.
    fallbacks: Vec<String>,
    /// Expression names seen, with counts.
    seen: BTreeMap<String, usize>,
}

fn run_file(g: &FileGroup, tally: &Mutex<Tally>) {
    let ns = TestNetns::new();
    let common::corpus::Loaded {
        rows: loaded,
        refused,
        batch_ok,
    } = common::corpus::load_group(&ns, g);
    let failures: Vec<String> = refused.into_iter().map(|(_, e)| e).collect();
    let dumped = dump_rules(&ns);
    let mut t = tally.lock().unwrap();
    for (_, rows) in g.chains.values() {
        for r in rows {
            t.per_family.entry(r.family.clone()).or_default().0 += 1;
        }
    }
    t.failures.extend(failures);
    if !batch_ok {
        t.fallbacks.push(g.file.clone());
    }
    for (k, rows) in &loaded {
        let got = dumped.get(k).map(Vec::as_slice).unwrap_or(&[]);
        if got.len() != rows.len() {
            t.failures.push(format!(
                "{} {:?}: loaded {} rules, dumped {}",
                g.file,
                k,
                rows.len(),
                got.len()
            ));
            continue;
        }
        for (r, raw) in rows.iter().zip(got) {
            match check_exprs(raw) {
                Ok(exprs) => {
                    t.per_family.get_mut(&r.family).unwrap().1 += 1;
                    for e in &exprs {
                        count_names(e, &mut t.seen);
                    }
                }
                Err(e) => t.failures.push(format!("{}: {e}", r.what())),
            }
        }
    }
    // Rules in chains nft made on its own (bindings) must round-trip too.
    for (k, raws) in &dumped {
        if !g.chains.contains_key(k) {
            for raw in raws {
                if let Err(e) = check_exprs(raw) {
                    t.failures
                        .push(format!("{} extra chain {k:?}: {e}", g.file));
                }
            }
        }
    }
}

fn count_names(e: &Expr, seen: &mut BTreeMap<String, usize>) {
    *seen.entry(e.name().to_owned()).or_default() += 1;
    if let Expr::Dynset(d) = e {
        d.expr.iter().for_each(|x| count_names(x, seen));
        d.exprs.iter().flatten().for_each(|x| count_names(x, seen));
    }
    if let Expr::Inner(i) = e {
        i.expr.iter().for_each(|x| count_names(x, seen));
    }
}

#[test]
fn every_accepted_conformance_rule_roundtrips_byte_exact() {
    if common::corpus::require().is_none() {
        return;
    }
    let groups = group(read_rows());
    assert!(!groups.is_empty(), "no accepted rows in rules.tsv");
    let tally = Arc::new(Mutex::new(Tally::default()));
    common::corpus::for_each_parallel(groups, tally.clone(), run_file);
    let t = tally.lock().unwrap();
    let (mut all, mut ok) = (0, 0);
    for (fam, (checked, passed)) in &t.per_family {
        println!("{fam:>7}: {passed}/{checked} rows round-trip");
        all += checked;
        ok += passed;
    }
    println!("  total: {ok}/{all}");
    println!("expressions seen: {:?}", t.seen);
    println!("files loaded rule by rule: {:?}", t.fallbacks);
    for f in t.failures.iter().take(60) {
        println!("FAIL {f}");
    }
    assert!(
        t.failures.is_empty() && ok == all,
        "{} failures, {ok}/{all} rows passed",
        t.failures.len()
    );
}

/// Named objects the corpus uses, plus the other object types nft 1.0.6
/// can create, dumped and re-encoded byte for byte.
#[test]
fn named_objects_roundtrip_byte_exact() {
    let ns = TestNetns::new();
    ns.load(
        "table inet t {
            counter c1 { packets 12 bytes 345 }
            quota q1 { over 25 mbytes used 1 kbytes }
            quota q2 { 1 kbytes }
            limit l1 { rate 400/minute }
            limit l2 { rate over 1024 bytes/second burst 512 bytes }
            ct helper h1 { type \"ftp\" protocol tcp; l3proto ip; }
            ct timeout tm1 { protocol tcp; l3proto ip; policy = { established: 122, close: 13 }; }
            ct expectation e1 { protocol tcp; dport 1234; timeout 2m; size 12; l3proto ip; }
            synproxy s1 { mss 1460 wscale 7 timestamp sack-perm }
        }",
    );
    let mut types = Vec::new();
    for (name, ty, data) in dump_objects(&ns) {
        if let Err(e) = check_object(ty, &data) {
            panic!("object {name}: {e}");
        }
        types.push(ty);
    }
    types.sort();
    assert_eq!(
        types,
        vec![
            NFT_OBJECT_COUNTER,
            NFT_OBJECT_QUOTA,
            NFT_OBJECT_QUOTA,
            NFT_OBJECT_CT_HELPER,
            NFT_OBJECT_LIMIT,
            NFT_OBJECT_LIMIT,
            NFT_OBJECT_CT_TIMEOUT,
            NFT_OBJECT_CT_EXPECT,
            NFT_OBJECT_SYNPROXY,
        ]
    );
}
