//! Printer conformance against nft itself: every rule the corpus says
//! nft 1.0.6 accepts is loaded with nft into a throwaway namespace,
//! pulled back (`linx_netfilter::pull`: rule expressions, anonymous sets
//! and their elements), printed with `print::rule` as `nft -s -p` would, and
//! compared with the listing nft printed (`listed` in rules.tsv).
//! As upstream does, elements inside `{ ... }` may come in any order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use linx_netfilter::expr::{Data, Expr};
use linx_netfilter::model::{Family, Rule, Table};
use linx_netfilter::print::{self, PrintOptions};
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::testing::TestNetns;
use linx_netfilter::Socket;

mod common;
use common::corpus::{group, load_group, read_rows, FileGroup, Row};
use common::listing::normalize;

const OPTS: PrintOptions = PrintOptions {
    stateless: true,
    numeric_protocol: true,
};

/// What one namespace holds, as `pull` reads it: tables by (family,
/// name), each with its chains' rules (anonymous sets attached).
fn dump(ns: &TestNetns) -> HashMap<(Family, String), Table> {
    let mut sock = Socket::open(&ns.netns()).expect("open socket");
    let pulled = pull(&mut sock, &Selector::All).expect("pull");
    pulled
        .ruleset
        .tables
        .into_iter()
        .map(|t| ((t.family, t.name.clone()), t))
        .collect()
}

/// A short name for why `got` differs from `want`: the first differing words.
fn cause(want: &str, got: &str) -> String {
    let w: Vec<&str> = want.split_whitespace().collect();
    let g: Vec<&str> = got.split_whitespace().collect();
    let i = w.iter().zip(&g).take_while(|(a, b)| a == b).count();
    let ctx = if i > 0 { w[i - 1] } else { "^" };
    format!(
        "after `{ctx}`: want `{}` got `{}`",
        w.get(i).copied().unwrap_or("$"),
        g.get(i).copied().unwrap_or("$")
    )
}

/// Damaged copies of a rule (short or long values, odd offsets and
/// lengths, missing expressions): the printer must cope without panicking.
fn mutations(rule: &Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    for i in 0..rule.exprs.len() {
        let mut r = rule.clone();
        r.exprs.remove(i);
        out.push(r);
        for variant in 0..3 {
            let mut r = rule.clone();
            match &mut r.exprs[i] {
                Expr::Cmp(c) => {
                    if let Some(Data::Value(b)) = &mut c.data {
                        match variant {
                            0 => b.0.truncate(1),
                            1 => b.0.resize(b.0.len() + 20, 0xff),
                            _ => b.0.clear(),
                        }
                    }
                }
                Expr::Payload(p) => {
                    p.len = Some([0, 200, 3][variant]);
                    p.offset = Some([1000, 0, 7][variant]);
                }
                Expr::Bitwise(b) => {
                    b.mask = [
                        None,
                        Some(Data::value(vec![0xff; 40])),
                        Some(Data::value(vec![])),
                    ][variant]
                        .clone();
                }
                Expr::Lookup(l) => l.sreg = Some([0, 30, 9][variant]),
                _ => continue,
            }
            out.push(r);
        }
    }
    out
}

#[derive(Default)]
struct Tally {
    /// family -> (rows, equal)
    per_family: BTreeMap<String, (usize, usize)>,
    /// cause -> (count, example)
    causes: HashMap<String, (usize, String)>,
    /// Damaged rules printed, and those that made the printer panic.
    mutated: usize,
    panics: Vec<String>,
}

impl Tally {
    fn fail(&mut self, cause: String, example: String) {
        // Files run in parallel: keep the smallest example, so the report
        // does not depend on which file finished first.
        let e = self.causes.entry(cause).or_insert((0, example.clone()));
        e.0 += 1;
        if example < e.1 {
            e.1 = example;
        }
    }
}

fn run_file(g: &FileGroup, tally: &Mutex<Tally>) {
    let ns = TestNetns::new();
    let loaded = load_group(&ns, g);
    let refused: Vec<&Row> = loaded.refused.iter().filter_map(|(r, _)| *r).collect();
    let loaded = loaded.rows;
    let d = dump(&ns);
    let mut t = tally.lock().unwrap();
    for r in refused {
        t.per_family.entry(r.family.clone()).or_default().0 += 1;
        t.fail("nft refused the rule here".into(), r.what());
    }
    for ((fam, table, chain), rows) in &loaded {
        let f = family_of(fam);
        let empty = Table::new(f, table.clone());
        let tbl = d.get(&(f, table.clone())).unwrap_or(&empty);
        let got = tbl.chain(chain).map(|c| c.rules.as_slice()).unwrap_or(&[]);
        for (i, r) in rows.iter().enumerate() {
            let e = t.per_family.entry(r.family.clone()).or_default();
            e.0 += 1;
            let Some(rule) = got.get(i) else {
                t.fail("rule missing from dump".into(), r.what());
                continue;
            };
            for m in mutations(rule) {
                t.mutated += 1;
                if std::panic::catch_unwind(|| print::rule(f, tbl, &m, &OPTS)).is_err() {
                    t.panics
                        .push(format!("{} (damaged: {:?})", r.what(), m.exprs));
                }
            }
            let text = print::rule(f, tbl, rule, &OPTS);
            if normalize(&text) == normalize(&r.listed) {
                t.per_family.get_mut(&r.family).unwrap().1 += 1;
            } else {
                let c = cause(&normalize(&r.listed), &normalize(&text));
                t.fail(
                    c,
                    format!(
                        "{}\n      want: {}\n      got:  {}",
                        r.what(),
                        r.listed,
                        text
                    ),
                );
            }
        }
    }
}

fn family_of(name: &str) -> Family {
    Family::from_name(name).unwrap_or(Family::Netdev)
}

#[test]
fn printed_rules_match_nft_listing() {
    if common::corpus::require().is_none() {
        return;
    }
    // The corpus was listed as upstream runs it, two hours east of UTC;
    // nft (loading) and the printer (listing) both follow `TZ`.
    std::env::set_var("TZ", "UTC-2");
    let groups = group(read_rows());
    assert!(!groups.is_empty(), "no accepted rows in rules.tsv");
    let tally = Arc::new(Mutex::new(Tally::default()));
    common::corpus::for_each_parallel(groups, tally.clone(), run_file);
    let t = tally.lock().unwrap();
    let (mut all, mut ok) = (0, 0);
    let mut worst = 100.0f64;
    for (fam, (rows, equal)) in &t.per_family {
        let share = 100.0 * *equal as f64 / (*rows).max(1) as f64;
        println!("{fam:>7}: {equal}/{rows} rows print as nft lists them ({share:.1}%)");
        all += rows;
        ok += equal;
        worst = worst.min(share);
    }
    println!("  total: {ok}/{all}");
    let mut causes: Vec<_> = t.causes.iter().collect();
    causes.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(b.0)));
    for (c, (n, ex)) in causes.iter().take(80) {
        println!("{n:>5}  {c}\n      e.g. {ex}");
    }
    println!(
        "damaged rules printed: {}, panics: {}",
        t.mutated,
        t.panics.len()
    );
    for p in t.panics.iter().take(5) {
        println!("PANIC {p}");
    }
    assert!(t.panics.is_empty(), "the printer panicked on damaged rules");
    let families: Vec<(String, usize, usize)> = t
        .per_family
        .iter()
        .map(|(f, (n, e))| (f.to_string(), *n, *e))
        .collect();
    let mut section = common::report::family_table(&families, "printed as nft lists them");
    section.push_str("\nRemaining differences, by cause:\n\n");
    for (c, (n, ex)) in &causes {
        let ex = ex.split_whitespace().collect::<Vec<_>>().join(" ");
        section.push_str(&format!("- {n} × {c}: e.g. `{ex}`\n"));
    }
    common::report::check_section("print", &section);
    let min: f64 = std::env::var("LINX_PRINT_MIN_SHARE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(99.0);
    assert!(
        worst >= min,
        "a family prints below {min}% of rows as nft does ({ok}/{all} overall)"
    );
}
