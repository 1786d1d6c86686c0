//! The compiler against the kernel: every accepted rule of the nftables
//! conformance corpus is added by nft 1.0.6 in a throwaway namespace, the
//! table is pulled, and the rule `compile_rule` makes must equal the
//! kernel's under the diff's equality (`diff::equal`: nothing to do
//! between them; anonymous sets compare as sets of elements).

use std::collections::{BTreeMap, HashMap, VecDeque};

use linx_netfilter::expr::Expr;
use linx_netfilter::netlink::Attrs;
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::syntax::{compile, compile_rule};
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{Chain, Family, Rule, Ruleset, Socket, Table};

mod common;

struct Row {
    file: String,
    family: String,
    chain_spec: String,
    set_specs: String,
    rule: String,
    table: String,
    chain: String,
    obj_specs: String,
}

fn rows(name: &str) -> Vec<(Row, bool)> {
    let text = std::fs::read_to_string(format!("{}/{name}", common::corpus::corpus()))
        .expect("corpus present");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 14).then(|| {
                (
                    Row {
                        file: f[0].into(),
                        family: f[1].into(),
                        chain_spec: f[2].into(),
                        set_specs: f[3].into(),
                        rule: f[4].into(),
                        table: f[8].into(),
                        chain: f[9].into(),
                        obj_specs: f[13].into(),
                    },
                    f[5] == "yes",
                )
            })
        })
        .collect()
}

fn family(name: &str) -> Family {
    Family::from_name(name).unwrap_or(Family::Netdev)
}

/// The nft script creating a row's table, chain, sets and objects.
/// `with_elements` adds the `?` element lines (for the kernel, not for us).
fn setup(rows: &[&Row], with_elements: bool) -> String {
    let r0 = rows[0];
    let (fam, t) = (&r0.family, &r0.table);
    let mut s = format!("add table {fam} {t}\n");
    let mut seen = std::collections::HashSet::new();
    for r in rows {
        if let Some((name, spec)) = r.chain_spec.trim_start_matches(':').split_once(';') {
            if seen.insert(format!("c{name}")) {
                s += &format!("add chain {fam} {t} {name} {{ {spec}; }}\n");
            }
        }
        for spec in r.set_specs.split(" ; ").filter(|x| !x.is_empty()) {
            let spec = spec.trim_end_matches(";ok");
            if let Some(rest) = spec.strip_prefix('!') {
                let (name, body) = rest.split_once(' ').unwrap_or((rest, ""));
                if !seen.insert(format!("s{name}")) {
                    continue;
                }
                let kind = if body.contains(" : ") { "map" } else { "set" };
                let body = body
                    .replace(" timeout ", "; timeout ")
                    .replace(" flags ", "; flags ");
                s += &format!("add {kind} {fam} {t} {name} {{ {body}; }}\n");
            } else if let Some(rest) = spec.strip_prefix('?') {
                if with_elements {
                    let (name, body) = rest.split_once(' ').unwrap_or((rest, ""));
                    s += &format!("add element {fam} {t} {name} {{ {body} }}\n");
                }
            }
        }
        for spec in r.obj_specs.split(" | ").filter(|x| !x.is_empty()) {
            let spec = spec.trim_end_matches(";ok");
            if let Some(rest) = spec.strip_prefix('%') {
                let (name, body) = rest.split_once(' ').unwrap_or((rest, ""));
                if !seen.insert(format!("o{name}")) {
                    continue;
                }
                let body = body.trim_start_matches("type ");
                let (kind, args) = if let Some(b) = body.strip_prefix("ct ") {
                    let (k, a) = b.split_once(' ').unwrap_or((b, ""));
                    (format!("ct {k}"), a.to_string())
                } else {
                    let (k, a) = body.split_once(' ').unwrap_or((body, ""));
                    (k.to_string(), a.to_string())
                };
                s += &format!("add {kind} {fam} {t} {name} {args}\n");
            }
        }
    }
    s
}

/// A value holding `rule` alone, in a plain chain of a plain table: what
/// two rules are compared as.
fn alone(family: Family, table: &str, chain: &str, rule: Rule) -> Ruleset {
    let mut c = Chain::new(chain);
    c.rules = vec![rule].into();
    let mut t = Table::new(family, table);
    t.chains = vec![c];
    Ruleset { tables: vec![t] }
}

/// The rules of a table as the kernel holds them, per chain in order, with
/// their anonymous sets.
fn kernel_rules(sock: &mut Socket, family: Family, table: &str) -> HashMap<String, VecDeque<Rule>> {
    let pulled =
        pull(sock, &Selector::Tables(vec![(family, table.to_owned())])).expect("pull the table");
    let mut out: HashMap<String, VecDeque<Rule>> = HashMap::new();
    for t in pulled.ruleset.tables {
        for c in t.chains {
            out.entry(c.name.clone())
                .or_default()
                .extend(c.rules.iter().cloned());
        }
    }
    out
}

fn cause(msg: &str) -> String {
    if msg.starts_with("unknown expression") {
        return msg.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    }
    // Group messages by their shape: drop quoted specifics.
    let mut out = String::new();
    let mut quoted = false;
    for c in msg.chars() {
        if c == '\'' {
            quoted = !quoted;
            out.push_str(if quoted { "'…" } else { "'" });
        } else if !quoted {
            out.push(c);
        }
    }
    out.chars().take(90).collect()
}

fn first_diff(ours: &[Expr], theirs: &[Expr]) -> String {
    // Set references aside: anonymous sets are numbered apart.
    let unnamed = |e: Option<&Expr>| {
        e.cloned().map(|mut e| {
            if let Some((name, id)) = e.set_refs_mut() {
                if name.as_deref().is_some_and(|n| n.starts_with("__")) {
                    (*name, *id) = (None, None);
                }
            }
            e
        })
    };
    for i in 0..ours.len().max(theirs.len()) {
        let (a, b) = (ours.get(i), theirs.get(i));
        if unnamed(a) != unnamed(b) {
            let n = |e: Option<&Expr>| e.map(|e| e.name().to_owned()).unwrap_or_else(|| "-".into());
            return format!("expr #{i}: ours {} vs kernel {}", n(a), n(b));
        }
    }
    "anonymous set (its key type, typeof or elements)".into()
}

#[test]
fn compiled_rules_equal_what_nft_loads() {
    if common::corpus::require().is_none() {
        return;
    }
    let verbose = std::env::var("LINX_CONF_VERBOSE").ok();
    let all = rows("rules.tsv");
    let mut groups: BTreeMap<(String, String), Vec<Row>> = BTreeMap::new();
    for (r, ok) in all {
        if ok {
            groups
                .entry((r.file.clone(), r.family.clone()))
                .or_default()
                .push(r);
        }
    }
    let mut stats: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut causes: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let ns = TestNetns::new();
    let mut sock = Socket::open(&ns.netns()).unwrap();
    for ((file, fam), rows) in &groups {
        let refs: Vec<&Row> = rows.iter().collect();
        let _ = ns.nft(&["flush", "ruleset"]);
        let script = setup(&refs, true);
        if let Err(e) = ns.nft_load(&script) {
            panic!("setup for {file} {fam} failed: {e}\n{script}");
        }
        // Add every rule; on a batch failure, one by one.
        let adds: Vec<String> = rows
            .iter()
            .map(|r| format!("add rule {} {} {} {}\n", r.family, r.table, r.chain, r.rule))
            .collect();
        let mut added = vec![true; rows.len()];
        if ns.nft_load(&adds.concat()).is_err() {
            for (i, a) in adds.iter().enumerate() {
                added[i] = ns.nft_load(a).is_ok();
            }
        }
        let f = family(fam);
        let mut krules = kernel_rules(&mut sock, f, &rows[0].table);
        // Our table context: the same setup, compiled by us (no elements).
        let ctx = compile(&setup(&refs, false));
        for (i, r) in rows.iter().enumerate() {
            let st = stats.entry(fam.clone()).or_default();
            st.0 += 1;
            if !added[i] {
                let c = causes.entry("kernel refused alone".into()).or_default();
                c.0 += 1;
                continue;
            }
            let Some(theirs) = krules.get_mut(&r.chain).and_then(|q| q.pop_front()) else {
                break;
            };
            let table: Table = match &ctx {
                Ok(rs) => rs.tables[0].clone(),
                Err(e) => {
                    let c = causes
                        .entry(format!("context: {}", cause(&e.0[0].message)))
                        .or_default();
                    c.0 += 1;
                    c.1 = format!("{file} {fam}: {}", e.0[0].message);
                    continue;
                }
            };
            let ours = match compile_rule(f, &table, &r.rule) {
                Ok(o) => o,
                Err(e) => {
                    let c = causes
                        .entry(format!("error: {}", cause(&e.0[0].message)))
                        .or_default();
                    c.0 += 1;
                    c.1 = format!("{file} {fam}: {}  => {}", r.rule, e.0[0].message);
                    if verbose.as_deref() == Some("errors") {
                        eprintln!("ERR {fam}: {}  => {}", r.rule, e.0[0].message);
                    }
                    continue;
                }
            };
            let kernel = alone(f, &r.table, &r.chain, theirs.clone());
            let compiled = alone(f, &r.table, &r.chain, ours.clone());
            if linx_netfilter::diff::equal(&kernel, &compiled) {
                st.1 += 1;
            } else {
                let key = first_diff(&ours.exprs, &theirs.exprs);
                let key = format!("{key} [{}]", r.file.rsplit('/').next().unwrap_or(""));
                let c = causes.entry(key).or_default();
                c.0 += 1;
                c.1 = format!("{fam}: {}", r.rule);
                if verbose
                    .as_deref()
                    .is_some_and(|v| r.rule.contains(v) || v == "all")
                {
                    eprintln!(
                        "--- {fam} {}\n{}",
                        r.rule,
                        linx_netfilter::diff::diff(&kernel, &compiled)
                    );
                }
            }
        }
    }
    println!("family   rows  equal  share");
    let mut worst = 100.0f64;
    for (fam, (n, ok)) in &stats {
        let share = 100.0 * *ok as f64 / (*n).max(1) as f64;
        worst = worst.min(share);
        println!("{fam:8} {n:5} {ok:6} {share:5.1}%");
    }
    let mut cs: Vec<_> = causes.into_iter().collect();
    cs.sort_by_key(|c| std::cmp::Reverse(c.1 .0));
    println!("failures by cause:");
    for (c, (n, ex)) in cs.iter().take(400) {
        println!("{n:5}  {c}   e.g. {ex}");
    }
    // The `compile` section of CONFORMANCE.md: the table and the biggest
    // remaining causes.
    let table: Vec<(String, usize, usize)> = stats
        .iter()
        .map(|(f, (n, ok))| (f.clone(), *n, *ok))
        .collect();
    let mut body = common::report::family_table(&table, "compiled as nft does");
    body.push_str("\nRemaining differences, by cause (top 25):\n\n");
    for (c, (n, _)) in cs.iter().take(25) {
        body.push_str(&format!("- {n} × {}\n", c.replace('|', "\\|")));
    }
    common::report::check_section("compile", &body);
    // Rows per family that must compile exactly: the level reached, so a
    // regression fails; raise these as the compiler learns more.
    let below: Vec<String> = FLOORS
        .iter()
        .filter_map(|(fam, floor)| {
            let ok = stats.get(*fam).map_or(0, |s| s.1);
            (ok < *floor).then(|| format!("{fam}: {ok} rows equal, floor {floor}"))
        })
        .collect();
    let _ = worst;
    assert!(below.is_empty(), "conformance regressed: {below:?}");
}

const FLOORS: &[(&str, usize)] = &[
    ("arp", 290),
    ("bridge", 383),
    ("inet", 1113),
    ("ip", 972),
    ("ip6", 1057),
    ("netdev", 1521),
];

/// Whether nft's error says the kernel refused (nft's own checks passed).
fn kernel_refused(error: &str) -> bool {
    error.contains("Could not process rule")
}

/// Every `;fail` row is refused: by our compiler, or, where nft 1.0.6
/// itself got as far as the kernel, by the kernel when we push the rule.
#[test]
fn failing_rules_are_refused() {
    if common::corpus::require().is_none() {
        return;
    }
    let text = std::fs::read_to_string(format!("{}/rules_fail.tsv", common::corpus::corpus()))
        .expect("corpus");
    let mut errors: HashMap<String, String> = HashMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split('\t').collect();
        if f.len() >= 13 {
            errors.insert(format!("{}\t{}\t{}", f[0], f[1], f[4]), f[12].to_owned());
        }
    }
    let all = rows("rules_fail.tsv");
    let (mut by_us, mut by_kernel) = (0, 0);
    let mut accepted = Vec::new();
    for (r, _) in &all {
        let ctx = setup(&[r], false);
        let script = format!(
            "{ctx}add rule {} {} {} {}\n",
            r.family, r.table, r.chain, r.rule
        );
        let Ok(rs) = compile(&script) else {
            by_us += 1;
            continue;
        };
        let error = errors
            .get(&format!("{}\t{}\t{}", r.file, r.family, r.rule))
            .cloned()
            .unwrap_or_default();
        if kernel_refused(&error) {
            let ns = TestNetns::new();
            let mut sock = Socket::open(&ns.netns()).unwrap();
            if linx_netfilter::push::push(&mut sock, &rs, &Default::default()).is_err() {
                by_kernel += 1;
                continue;
            }
        }
        accepted.push(format!(
            "{} {}: {}  (nft: {error})",
            r.file, r.family, r.rule
        ));
    }
    println!(
        "{} ;fail rows: {by_us} refused by the compiler, {by_kernel} by the kernel, {} accepted",
        all.len(),
        accepted.len()
    );
    for a in &accepted {
        println!("  accepted: {a}");
    }
    assert!(all.len() > 500, "corpus has {} ;fail rows", all.len());
    assert!(
        accepted.is_empty(),
        "{} ;fail rows accepted:\n{}",
        accepted.len(),
        accepted.join("\n")
    );
}

#[test]
fn diagnostics_point_at_the_problem() {
    let t = Table::new(Family::Inet, "t");
    let e = compile_rule(Family::Inet, &t, "ip saddr @blocked drop").unwrap_err();
    assert_eq!(e.0[0].message, "no set @blocked in table inet t");
    assert_eq!(
        e.0[0].help.as_deref(),
        Some("the table has no sets: declare it first")
    );
    assert_eq!((e.0[0].line, e.0[0].column), (1, 10));
    let shown = e.to_string();
    assert!(
        shown.contains("ip saddr @blocked drop\n         ^^^^^^^^"),
        "{shown}"
    );
    let e = compile_rule(Family::Inet, &t, "tcp dport 10.0.0.1").unwrap_err();
    assert_eq!(
        e.0[0].message,
        "datatype mismatch: expected inet_service, '10.0.0.1' is ipv4_addr"
    );
    let _ = Attrs::new(&[]);
}
