//! Acceptance test of the expression and object codecs against the real
//! kernel: every rule the conformance corpus says nft 1.0.6 accepts on this
//! kernel is loaded with nft into a throwaway namespace, dumped back over
//! netlink, decoded, re-encoded, and must come out byte for byte as the
//! kernel sent it, with every expression and attribute typed.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use linx_netfilter::expr::Expr;
use linx_netfilter::sys::*;
use linx_netfilter::testing::TestNetns;

mod common;
use common::{check_exprs, check_object, dump_objects, dump_rules};

fn conformance_dir() -> PathBuf {
    std::env::var_os("LINX_CONFORMANCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/conformance"))
}

/// One accepted row of rules.tsv.
#[derive(Clone, Debug)]
struct Row {
    file: String,
    family: String,
    chain_spec: String,
    set_specs: String,
    rule: String,
    lineno: String,
    table: String,
    chain: String,
    obj_specs: String,
}

impl Row {
    fn what(&self) -> String {
        format!(
            "{}:{} [{} {} {}] {}",
            self.file, self.lineno, self.family, self.table, self.chain, self.rule
        )
    }
}

fn read_rows() -> Vec<Row> {
    let path = conformance_dir().join("rules.tsv");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("rules.tsv has no column {name}"))
    };
    let (file, family, chain_spec, set_specs, rule, accepted, lineno, table, chain, obj_specs) = (
        col("file"),
        col("family"),
        col("chain_spec"),
        col("set_specs"),
        col("rule"),
        col("accepted"),
        col("lineno"),
        col("table"),
        col("chain"),
        col("obj_specs"),
    );
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f.get(accepted) == Some(&"yes"))
        .map(|f| {
            let g = |i: usize| f.get(i).copied().unwrap_or("").to_owned();
            Row {
                file: g(file),
                family: g(family),
                chain_spec: g(chain_spec),
                set_specs: g(set_specs),
                rule: g(rule),
                lineno: g(lineno),
                table: g(table),
                chain: g(chain),
                obj_specs: g(obj_specs),
            }
        })
        .collect()
}

/// `spec;ok` -> `spec`; object specs may carry `;` inside their braces.
fn strip_status(body: &str) -> &str {
    if let Some(b) = body.rfind('}') {
        if body[b + 1..].starts_with(';') {
            return &body[..=b];
        }
    }
    body.rsplit_once(';').map_or(body, |(s, _)| s)
}

/// A `!` / `?` / `%` directive of a .t file as an nft command for one table.
fn spec_command(line: &str, family: &str, table: &str) -> Option<String> {
    let (head, body) = line.split_at(1);
    let spec = strip_status(body).trim();
    let (name, rest) = spec.split_once(' ').unwrap_or((spec, ""));
    match head {
        "!" => {
            // Trailing `timeout X` / `flags X` become set options.
            let mut toks: Vec<&str> = rest.split_whitespace().collect();
            let mut opts = Vec::new();
            while toks.len() >= 2 && matches!(toks[toks.len() - 2], "timeout" | "flags") {
                let n = toks.len();
                opts.insert(0, format!("{} {};", toks[n - 2], toks[n - 1]));
                toks.truncate(n - 2);
            }
            let key = toks.join(" ");
            let kind = if key.contains(" : ") { "map" } else { "set" };
            Some(format!(
                "add {kind} {family} {table} {name} {{ {key}; {} }}",
                opts.join(" ")
            ))
        }
        "?" => Some(format!(
            "add element {family} {table} {name} {{ {} }}",
            rest.trim()
        )),
        "%" => {
            let rest = rest.trim().strip_prefix("type")?.trim_start();
            let (otype, args) = if let Some(r) = rest.strip_prefix("ct ") {
                let (k, a) = r.trim_start().split_once(' ').unwrap_or((r, ""));
                (format!("ct {k}"), a)
            } else {
                let (k, a) = rest.split_once(' ').unwrap_or((rest, ""));
                (k.to_owned(), a)
            };
            Some(format!("add {otype} {family} {table} {name} {args}"))
        }
        _ => None,
    }
}

/// All rows of one .t file: tables, their chains, and the rows per chain.
struct FileGroup {
    file: String,
    /// (family, table) -> setup lines (sets, elements, objects), in order.
    tables: BTreeMap<(String, String), Vec<String>>,
    /// (family, table, chain) -> (chain spec, rows in load order).
    chains: BTreeMap<(String, String, String), (String, Vec<Row>)>,
}

fn group(rows: Vec<Row>) -> Vec<FileGroup> {
    let mut by_file: BTreeMap<String, FileGroup> = BTreeMap::new();
    for r in rows {
        let g = by_file.entry(r.file.clone()).or_insert_with(|| FileGroup {
            file: r.file.clone(),
            tables: BTreeMap::new(),
            chains: BTreeMap::new(),
        });
        let setup = g
            .tables
            .entry((r.family.clone(), r.table.clone()))
            .or_default();
        let specs = r
            .set_specs
            .split(" ; ")
            .chain(r.obj_specs.split(" | "))
            .filter(|s| !s.is_empty());
        for s in specs {
            if let Some(cmd) = spec_command(s, &r.family, &r.table) {
                if !setup.contains(&cmd) {
                    setup.push(cmd);
                }
            }
        }
        let spec = r
            .chain_spec
            .split_once(';')
            .map_or("", |(_, s)| s)
            .to_owned();
        g.chains
            .entry((r.family.clone(), r.table.clone(), r.chain.clone()))
            .or_insert_with(|| (spec, Vec::new()))
            .1
            .push(r);
    }
    by_file.into_values().collect()
}

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

fn setup_script(g: &FileGroup) -> String {
    let mut s = String::new();
    for ((fam, table), setup) in &g.tables {
        let _ = writeln!(s, "add table {fam} {table}");
        for ((f, t, c), (spec, _)) in &g.chains {
            if f == fam && t == table {
                let _ = writeln!(s, "add chain {f} {t} {c} {{ {spec}; }}");
            }
        }
        for line in setup {
            let _ = writeln!(s, "{line}");
        }
    }
    s
}

fn rule_line(r: &Row) -> String {
    format!("add rule {} {} {} {}\n", r.family, r.table, r.chain, r.rule)
}

fn run_file(g: &FileGroup, tally: &Mutex<Tally>) {
    let ns = TestNetns::new();
    let setup = setup_script(g);
    let mut script = setup.clone();
    for (_, rows) in g.chains.values() {
        for r in rows {
            script.push_str(&rule_line(r));
        }
    }
    // Rows that made it into the kernel, per chain, in load order.
    let mut loaded: HashMap<(String, String, String), Vec<&Row>> = HashMap::new();
    let mut failures = Vec::new();
    let batch_ok = ns.nft_load(&script).is_ok();
    if batch_ok {
        for (k, (_, rows)) in &g.chains {
            loaded.insert(k.clone(), rows.iter().collect());
        }
    } else {
        // Fall back: the setup line by line, then one rule per load.
        if ns.nft_load(&setup).is_err() {
            for line in setup.lines() {
                if let Err(e) = ns.nft_load(line) {
                    failures.push(format!("{}: setup `{line}` failed: {}", g.file, e.trim()));
                }
            }
        }
        for (k, (_, rows)) in &g.chains {
            for r in rows {
                match ns.nft_load(&rule_line(r)) {
                    Ok(_) => loaded.entry(k.clone()).or_default().push(r),
                    Err(e) => failures.push(format!("{}: nft refused: {}", r.what(), e.trim())),
                }
            }
        }
    }
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
    let groups = group(read_rows());
    assert!(!groups.is_empty(), "no accepted rows in rules.tsv");
    let tally = Arc::new(Mutex::new(Tally::default()));
    let queue = Arc::new(Mutex::new(groups));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (queue, tally) = (queue.clone(), tally.clone());
            std::thread::spawn(move || loop {
                let Some(g) = queue.lock().unwrap().pop() else {
                    break;
                };
                run_file(&g, &tally);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker panicked");
    }
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
