//! Bad input never panics the nft front end: every corpus rule line and
//! dump (when the corpus is present), every golden input and example, and many deterministic mutations of them (truncations, spliced
//! tokens, swapped and duplicated bytes), go through `parse` and
//! `compile`/`compile_rule`, which must return, not panic. The same inputs
//! seed the cargo-fuzz targets in `netfilter/fuzz/`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use linx_netfilter::syntax::{compile, compile_rule, parse};
use linx_netfilter::testing::Rng;
use linx_netfilter::{Family, Table};

/// Pieces spliced into inputs: tokens that steer the parser into its
/// rarer paths, and values at the edges of their types.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    ";",
    ",",
    ".",
    ":",
    "=",
    "==",
    "!=",
    "<",
    ">=",
    "&",
    "|",
    "^",
    "<<",
    ">>",
    "!",
    "-",
    "/",
    "*",
    "@",
    "$x",
    "\"",
    "\\",
    "map",
    "vmap",
    "set",
    "typeof",
    "type",
    "flags interval",
    "elements = {",
    "counter",
    "limit rate",
    "quota",
    "jump",
    "goto",
    "to",
    ":65536",
    "0x",
    "0xffffffffffffffffffffffffffffffffff",
    "-1",
    "99999999999999999999",
    "1.2.3.4/33",
    "::/129",
    "[",
    "]",
    "sid[0]",
    "sid[200]",
    "@ih,0,0",
    "@nh,4096,129",
    "\"\"",
    "ct",
    "meta",
    "ip",
    "ip6",
    "tcp option",
    "sctp chunk",
    "hour \"25:00\"",
    "time \"2022-13-40 11:00\"",
    "timeout 99999999999d",
    "table",
    "chain",
    "rule",
    "priority",
];

fn mutate(src: &str, rng: &mut Rng) -> String {
    let mut s: Vec<char> = src.chars().collect();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(s.len() + 1);
        match rng.below(5) {
            0 => s.truncate(at),
            1 => {
                let t: Vec<char> = TOKENS[rng.below(TOKENS.len())].chars().collect();
                s.splice(at..at, t);
            }
            2 if at < s.len() => {
                s.remove(at);
            }
            3 if s.len() > 1 => {
                let b = rng.below(s.len());
                let a = at.min(s.len() - 1);
                s.swap(a, b);
            }
            _ => {
                let end = (at + rng.below(12)).min(s.len());
                let dup: Vec<char> = s[at.min(end)..end].to_vec();
                s.splice(at.min(end)..at.min(end), dup);
            }
        }
    }
    s.into_iter().collect()
}

/// `.nft` files of a folder of this repository.
fn repo_files(dir: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("read folder")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "nft"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read file"))
        .collect()
}

/// Rule lines: the corpus's (when present) and the golden inputs', with
/// their family.
fn rule_lines(with_corpus: bool) -> Vec<(Family, String)> {
    let mut out = Vec::new();
    for name in ["rules.tsv", "rules_fail.tsv"]
        .iter()
        .filter(|_| with_corpus)
    {
        let text = std::fs::read_to_string(format!("{}/{name}", common::corpus::corpus()))
            .expect("corpus");
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() < 5 {
                continue;
            }
            let fam = Family::from_name(f[1]).unwrap_or(Family::Netdev);
            out.push((fam, f[4].to_owned()));
        }
    }
    for file in repo_files("tests/golden") {
        let mut fam = Family::Inet;
        for line in file.lines() {
            if let Some(rest) = line.strip_prefix("table ") {
                let name = rest.split(' ').next().unwrap_or("");
                fam = Family::from_name(name).unwrap_or(fam);
            } else if let Some(rule) = line.strip_prefix("\t\t") {
                out.push((fam, rule.trim().to_owned()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whole files: the corpus's dumps (when present), the golden inputs and
/// the examples.
fn dumps(with_corpus: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if with_corpus {
        let text = std::fs::read_to_string(format!("{}/dumps.tsv", common::corpus::corpus()))
            .expect("corpus");
        out.extend(
            text.lines()
                .skip(1)
                .filter_map(|l| l.split('\t').next())
                .filter_map(|f| {
                    std::fs::read_to_string(format!("{}/{f}", common::corpus::corpus())).ok()
                }),
        );
    }
    out.extend(repo_files("tests/golden"));
    out.extend(repo_files("../examples"));
    out
}

/// Runs `f` on `input`; a panic becomes an error naming the input.
fn no_panic(what: &str, input: &str, f: impl FnOnce()) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{what} panicked ({msg}) on:\n{input}")
    })
}

#[test]
fn corpus_and_mutations_never_panic() {
    // The panic hook would print every caught panic; keep the output to
    // the summary below.
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut failures = Vec::new();
    // Without the corpus, the golden inputs and examples alone.
    let with_corpus = common::corpus::optional().is_some();
    let lines = rule_lines(with_corpus);
    let mut runs = 0;
    for (fam, line) in &lines {
        let table = Table::new(*fam, "t");
        for i in 0..16 {
            let input = if i == 0 {
                line.clone()
            } else {
                mutate(line, &mut rng)
            };
            runs += 1;
            if let Err(e) = no_panic("compile_rule", &input, || {
                let _ = compile_rule(*fam, &table, &input);
            }) {
                failures.push(e);
            }
        }
    }
    for d in dumps(with_corpus) {
        for i in 0..12 {
            let input = if i == 0 {
                d.clone()
            } else {
                mutate(&d, &mut rng)
            };
            runs += 1;
            if let Err(e) = no_panic("parse/compile", &input, || {
                let _ = parse(&input);
                let _ = compile(&input);
            }) {
                failures.push(e);
            }
        }
    }
    let _ = std::panic::take_hook();
    println!("{runs} inputs, {} panics", failures.len());
    let floor = if with_corpus { 20_000 } else { 5_000 };
    assert!(runs > floor, "only {runs} inputs");
    assert!(
        failures.is_empty(),
        "{} inputs panicked; first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
}

/// Inputs cargo-fuzz found panicking, kept as regressions: each must be
/// refused with a diagnostic.
#[test]
fn fuzz_findings_are_refused() {
    let cases: &[(Family, &str)] = &[
        // Unaligned raw payload touching 17 bytes: more than a register.
        (
            Family::Arp,
            "udp length . @th,997,128 vmap { 47-63 . 0x1 : accept }",
        ),
        (Family::Ip, "@th,4294967295,8 1"),
    ];
    for (fam, line) in cases {
        let table = Table::new(*fam, "t");
        let mut out = None;
        no_panic("compile_rule", line, || {
            out = Some(compile_rule(*fam, &table, line));
        })
        .unwrap_or_else(|e| panic!("{e}"));
        match out {
            Some(Err(d)) => assert!(!d.to_string().is_empty(), "{line}: empty diagnostic"),
            _ => panic!("{line}: accepted"),
        }
    }
}
