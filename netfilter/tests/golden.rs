//! Golden files: the compiler and the printer against nft 1.0.6, from
//! inputs kept in this repository (`tests/golden/*.nft`, rules written for
//! these tests to cover every family, selector, set and map form and
//! statement) and nft's own output for them (`NAME.bytecode`: what
//! `nft --debug=netlink list ruleset` prints after nft loaded the input;
//! `NAME.list`: what `nft list ruleset` prints), regenerated as root with
//! `python3 netfilter/tools/gen-golden.py`.
//!
//! Without root and without any namespace, each input is compiled, its
//! bytecode written as nft writes it (`common::bytecode`) and compared
//! with nft's, and the compiled value is printed and compared with nft's
//! listing. Where we and nft disagree today, the case is listed in
//! `tests/golden/known-differences.txt` and printed on every run; a new
//! difference fails, and so does a listed one that no longer holds
//! (`LINX_BLESS=1` rewrites the list). With root, one more test re-runs
//! nft on every input and fails when a committed file is stale, and
//! checks the bytecode writer and the printer on the values pulled from
//! the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use linx_netfilter::expr::Expr;
use linx_netfilter::print::{self, PrintOptions};
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::syntax::compile;
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{Ruleset, Socket};

mod common;
use common::bytecode::Bytecode;
use common::listing::{comparable_lines, diff_lines};

/// An input's first line when this kernel cannot load it: its bytecode is
/// what nft sends, and there is no listing.
const CHECK_ONLY: &str = "# golden: check-only";

/// Expressions the codec knows that nft 1.0.6 cannot write, so no golden
/// case can come from it.
const NOT_WRITABLE_BY_NFT: &[(&str, &str)] = &[
    (
        "inner",
        "tunnel header matching (`vxlan ...`) came after nft 1.0.6",
    ),
    ("last", "the `last` statement is not in nft 1.0.6's grammar"),
    ("tunnel", "nft 1.0.6 has no tunnel expression"),
    ("match", "xtables compat (iptables-nft), not nft's language"),
    (
        "target",
        "xtables compat (iptables-nft), not nft's language",
    ),
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

struct Case {
    /// `NAME.nft`.
    file: String,
    input: String,
    check_only: bool,
    bytecode: String,
    listing: Option<String>,
}

fn cases() -> Vec<Case> {
    // Times in inputs and listings are UTC, as the generator runs nft.
    static TZ: std::sync::Once = std::sync::Once::new();
    TZ.call_once(|| std::env::set_var("TZ", "UTC"));
    let dir = golden_dir();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.ends_with(".nft").then_some(name)
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let stem = file.trim_end_matches(".nft");
            let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{stem}.{ext}")));
            let input = read("nft").unwrap();
            let check_only = input.lines().next() == Some(CHECK_ONLY);
            let bytecode = read("bytecode").unwrap_or_else(|e| {
                panic!("{stem}.bytecode: {e}; run netfilter/tools/gen-golden.py")
            });
            let listing = read("list").ok();
            assert!(
                check_only || listing.is_some(),
                "{stem}.list is missing; run netfilter/tools/gen-golden.py"
            );
            Case {
                file,
                input,
                check_only,
                bytecode,
                listing,
            }
        })
        .collect()
}

/// One way we and nft disagree on one case.
#[derive(Debug)]
struct Difference {
    file: String,
    /// `bytecode`, `listing`, `pulled-listing`, `compile`.
    kind: &'static str,
    /// Which rule, set or line.
    at: String,
    want: String,
    got: String,
    /// For the list: the rule, or what we print instead.
    note: String,
}

impl Difference {
    fn key(&self) -> String {
        format!("{} {} {}", self.file, self.kind, self.at)
    }
}

/// At most `n` characters of `s`.
fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn known_path() -> PathBuf {
    golden_dir().join("known-differences.txt")
}

/// The listed known differences: key -> the note after `#`.
fn known() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(known_path()).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once("  # ") {
            Some((k, note)) => (k.trim_end().to_owned(), note.to_owned()),
            None => (l.trim_end().to_owned(), String::new()),
        })
        .collect()
}

/// Checks `found` (differences of `kinds`) against the list: prints the
/// known ones, fails on new or stale entries. `LINX_BLESS=1` rewrites the
/// entries of these kinds instead.
fn judge(kinds: &[&str], found: Vec<Difference>) {
    static FILE: Mutex<()> = Mutex::new(());
    let _guard = FILE.lock().unwrap_or_else(|e| e.into_inner());
    let of_kinds = |k: &str| {
        k.split(' ')
            .nth(1)
            .is_some_and(|kind| kinds.contains(&kind))
    };
    let listed = known();
    let found_keys: BTreeSet<String> = found.iter().map(Difference::key).collect();
    if std::env::var_os("LINX_BLESS").is_some() {
        let mut lines: Vec<String> = listed
            .iter()
            .filter(|(k, _)| !of_kinds(k))
            .map(|(k, n)| line_of(k, n))
            .collect();
        for d in &found {
            lines.push(line_of(&d.key(), &d.note));
        }
        lines.sort();
        lines.dedup();
        let header = "# Where our compiler or printer and nft 1.0.6 disagree on the golden\n\
                      # inputs today: FILE KIND WHERE  # the rule. Written by\n\
                      # LINX_BLESS=1 cargo test -p linx-netfilter --test golden\n";
        std::fs::write(known_path(), format!("{header}{}\n", lines.join("\n"))).unwrap();
        return;
    }
    let new: Vec<&Difference> = found
        .iter()
        .filter(|d| !listed.contains_key(&d.key()))
        .collect();
    let stale: Vec<&String> = listed
        .keys()
        .filter(|k| of_kinds(k) && !found_keys.contains(*k))
        .collect();
    let holding: Vec<&Difference> = found
        .iter()
        .filter(|d| listed.contains_key(&d.key()))
        .collect();
    if !holding.is_empty() {
        common::say(&format!(
            "golden ({}): {} known differences from nft 1.0.6 \
             (netfilter/tests/golden/known-differences.txt; --nocapture shows them)",
            kinds.join(", "),
            holding.len()
        ));
    }
    for d in &holding {
        println!(
            "  {}\n      nft:  {}\n      ours: {}",
            d.key(),
            d.want,
            d.got
        );
    }
    let mut msg = String::new();
    for d in &new {
        msg += &format!(
            "\nnew difference: {}\n      nft:  {}\n      ours: {}",
            d.key(),
            d.want,
            d.got
        );
    }
    for k in &stale {
        msg += &format!("\nlisted in known-differences.txt but no longer found: {k}");
    }
    assert!(
        msg.is_empty(),
        "{msg}\n(if intended: LINX_BLESS=1 cargo test -p linx-netfilter --test golden)"
    );
}

fn line_of(key: &str, note: &str) -> String {
    if note.is_empty() {
        key.to_owned()
    } else {
        format!("{key}  # {note}")
    }
}

type ChainKey = (String, String, String);

/// A rule of a text in nft's block form (our inputs, nft's listings).
struct RuleAt {
    chain: ChainKey,
    /// Position in its chain.
    index: usize,
    /// Its lines, 1-based, inclusive (a bound chain's `jump { ... }` spans several).
    lines: (usize, usize),
    text: String,
}

/// The rules of a text in nft's block form, and the spans of the blocks
/// a table holds (chains, sets, objects, flowtables).
fn rules_of(text: &str) -> (Vec<RuleAt>, Vec<(usize, usize)>) {
    let (mut rules, mut blocks) = (Vec::new(), Vec::new());
    let (mut table, mut chain) = (None::<(String, String)>, None::<String>);
    let mut depth = 0usize;
    let mut block_start = 0;
    let mut in_rule = false;
    let mut counts: BTreeMap<ChainKey, usize> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let no = i + 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        let before = depth;
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        depth = (depth + opens).saturating_sub(closes);
        match (before, words.as_slice()) {
            (0, ["table", fam, name, ..]) => table = Some((fam.to_string(), name.to_string())),
            (1, [first, rest @ ..]) if opens > closes => {
                block_start = no;
                chain = rest
                    .first()
                    .filter(|_| *first == "chain")
                    .map(|c| c.to_string());
            }
            (2, [first, ..]) if chain.is_some() && !first.starts_with('#') => {
                let header = matches!(*first, "type" | "comment" | "policy" | "devices");
                if let (false, Some((f, t)), Some(c)) = (header, &table, &chain) {
                    let key = (f.clone(), t.clone(), c.clone());
                    let n = counts.entry(key.clone()).or_default();
                    rules.push(RuleAt {
                        chain: key,
                        index: *n,
                        lines: (no, no),
                        text: line.trim().to_owned(),
                    });
                    *n += 1;
                    in_rule = depth > 2;
                }
            }
            (b, _) if b > 2 && in_rule => {
                if let Some(r) = rules.last_mut() {
                    r.lines.1 = no;
                }
                in_rule = depth > 2;
            }
            _ => {}
        }
        if before == 2 && depth == 1 {
            blocks.push((block_start, no));
            chain = None;
        }
    }
    (rules, blocks)
}

/// A case's input compiled. What the compiler refuses is left out, a
/// rule or a whole declaration at a time, so the rest is still compared.
struct Compiled {
    rs: Ruleset,
    /// Each refusal, a difference of kind `compile`.
    refused: Vec<Difference>,
    /// The refused rules, to leave out of nft's side too.
    dropped: Vec<(ChainKey, usize)>,
}

fn compiled(case: &Case) -> Result<Compiled, String> {
    let (rules, blocks) = rules_of(&case.input);
    let mut lines: Vec<String> = case.input.lines().map(str::to_owned).collect();
    let (mut refused, mut dropped) = (Vec::new(), Vec::new());
    for _ in 0..500 {
        let diags = match compile(&lines.join("\n")) {
            Ok(rs) => {
                return Ok(Compiled {
                    rs,
                    refused,
                    dropped,
                })
            }
            Err(d) => d,
        };
        let mut progress = false;
        for d in &diags.0 {
            let no = d.line;
            let span = if let Some(r) = rules.iter().find(|r| r.lines.0 <= no && no <= r.lines.1) {
                refused.push(Difference {
                    file: case.file.clone(),
                    kind: "compile",
                    at: format!("{} {} {} #{}", r.chain.0, r.chain.1, r.chain.2, r.index),
                    want: r.text.clone(),
                    got: d.message.clone(),
                    note: format!("{}: {}", r.text, d.message),
                });
                dropped.push((r.chain.clone(), r.index));
                r.lines
            } else if let Some(&(a, b)) = blocks.iter().find(|(a, b)| *a <= no && no <= *b) {
                refused.push(Difference {
                    file: case.file.clone(),
                    kind: "compile",
                    at: format!("line {a}: {}", lines[a - 1].trim()),
                    want: "accepted".into(),
                    got: d.message.clone(),
                    note: d.message.clone(),
                });
                (a, b)
            } else {
                continue;
            };
            for l in &mut lines[span.0 - 1..span.1] {
                progress |= !l.is_empty();
                l.clear();
            }
        }
        if !progress {
            return Err(diags.to_string().lines().next().unwrap_or("").to_owned());
        }
    }
    Err("too many refusals".into())
}

/// Where two bytecodes differ: rules by chain and position, named sets
/// by name.
fn bytecode_differences(
    file: &str,
    kind: &'static str,
    want: &Bytecode,
    got: &Bytecode,
    with_sets: bool,
) -> Vec<Difference> {
    // Each rule and set as (where, text), compared by where.
    let entries = |b: &Bytecode| {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for ((f, t, c), rules) in &b.chains {
            for (i, r) in rules.iter().enumerate() {
                out.insert(format!("{f} {t} {c} #{i}"), r.join(" "));
            }
        }
        for ((f, t, s), lines) in b.sets.iter().filter(|_| with_sets) {
            out.insert(format!("{f} {t} @{s}"), lines.join(" | "));
        }
        out
    };
    let (want, got) = (entries(want), entries(got));
    let at: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    let absent = || "(absent)".to_owned();
    at.into_iter()
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| Difference {
            file: file.to_owned(),
            kind,
            at: k.clone(),
            want: want.get(k).cloned().unwrap_or_else(absent),
            got: got.get(k).cloned().unwrap_or_else(absent),
            note: String::new(),
        })
        .collect()
}

/// Notes for bytecode differences: the rule as nft lists it.
fn rule_notes(case: &Case, found: &mut [Difference]) {
    let listed = rules_of(case.listing.as_deref().unwrap_or(&case.input)).0;
    for d in found {
        if let Some(r) = listed
            .iter()
            .find(|r| d.at == format!("{} {} {} #{}", r.chain.0, r.chain.1, r.chain.2, r.index))
        {
            d.note.clone_from(&r.text);
        }
    }
}

/// Every input, compiled: its bytecode is nft's.
#[test]
fn compiled_bytecode_is_nfts() {
    let mut found = Vec::new();
    let (mut rules, mut sets) = (0, 0);
    for case in cases() {
        let mut want = Bytecode::parse(&case.bytecode);
        rules += want.chains.values().map(Vec::len).sum::<usize>();
        sets += want.sets.len();
        let rs = match compiled(&case) {
            Ok(Compiled {
                rs,
                refused,
                mut dropped,
            }) => {
                dropped.sort();
                for (chain, i) in dropped.iter().rev() {
                    if let Some(rules) = want.chains.get_mut(chain).filter(|r| *i < r.len()) {
                        rules.remove(*i);
                    }
                }
                found.extend(refused);
                rs
            }
            Err(e) => {
                found.push(Difference {
                    file: case.file.clone(),
                    kind: "compile",
                    at: "refused".into(),
                    want: "accepted".into(),
                    got: e.clone(),
                    note: e,
                });
                continue;
            }
        };
        let got = Bytecode::of(&rs);
        let mut diffs = bytecode_differences(&case.file, "bytecode", &want, &got, !case.check_only);
        rule_notes(&case, &mut diffs);
        found.extend(diffs);
    }
    println!(
        "golden bytecode: {rules} rules and {sets} named sets compared, {} differ",
        found.len()
    );
    assert!(rules > 500, "only {rules} golden rules");
    judge(&["bytecode", "compile"], found);
}

/// The listing's differences, as (nft's line or `+our line`).
fn listing_differences(file: &str, kind: &'static str, want: &str, got: &str) -> Vec<Difference> {
    let (w, g) = (comparable_lines(want), comparable_lines(got));
    let mut out = Vec::new();
    for (a, b) in diff_lines(&w, &g) {
        let got_text = b.join(" / ");
        if a.is_empty() {
            out.push(Difference {
                file: file.to_owned(),
                kind,
                at: format!("+{}", b[0]),
                want: "(no line)".into(),
                got: got_text.clone(),
                note: String::new(),
            });
        }
        for line in &a {
            out.push(Difference {
                file: file.to_owned(),
                kind,
                at: line.clone(),
                want: line.clone(),
                got: got_text.clone(),
                note: format!("ours: {}", cut(&got_text, 90)),
            });
        }
    }
    out
}

/// Every input, compiled and printed: nft's listing.
#[test]
fn printed_value_is_nfts_listing() {
    let mut found = Vec::new();
    let mut lines = 0;
    for case in cases() {
        let Some(listing) = &case.listing else {
            continue;
        };
        lines += listing.lines().count();
        let Ok(Compiled { rs, .. }) = compiled(&case) else {
            // Counted once, by compiled_bytecode_is_nfts.
            continue;
        };
        let text = print::ruleset(&rs, &PrintOptions::default());
        found.extend(listing_differences(&case.file, "listing", listing, &text));
    }
    println!(
        "golden listings: {lines} lines compared, {} differ",
        found.len()
    );
    judge(&["listing"], found);
}

/// Every expression the codec knows has a golden case (or nft cannot
/// write it), and every golden case holds only expressions it knows.
#[test]
fn every_expression_has_a_golden_case() {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for case in cases() {
        for line in case.bytecode.lines() {
            // `  [ name ...`, and nested `expr [ name ...` of dynset.
            for part in line.split("[ ").skip(1) {
                if let Some(name) = part.split(' ').next() {
                    *seen.entry(name.to_owned()).or_default() += 1;
                }
            }
        }
    }
    let exempt: BTreeMap<&str, &str> = NOT_WRITABLE_BY_NFT.iter().copied().collect();
    let missing: Vec<&str> = Expr::NAMES
        .iter()
        .copied()
        .filter(|n| !seen.contains_key(*n) && !exempt.contains_key(n))
        .collect();
    let unknown: Vec<&String> = seen
        .keys()
        .filter(|n| !Expr::NAMES.contains(&n.as_str()))
        .collect();
    let needless: Vec<&str> = exempt
        .keys()
        .copied()
        .filter(|n| seen.contains_key(*n) || !Expr::NAMES.contains(n))
        .collect();
    println!(
        "{} expressions in golden cases: {seen:?}; not writable by nft 1.0.6: {exempt:?}",
        seen.len()
    );
    assert!(
        missing.is_empty(),
        "expressions the codec knows without a golden case: {missing:?} \
         (add a rule using them to tests/golden/ and run tools/gen-golden.py)"
    );
    assert!(
        unknown.is_empty(),
        "golden cases name unknown expressions: {unknown:?}"
    );
    assert!(
        needless.is_empty(),
        "NOT_WRITABLE_BY_NFT lists expressions that have a case or do not exist: {needless:?}"
    );
}

/// nft's output for `args` inside the namespace, whatever its exit status
/// (`--check` of what this kernel lacks fails, after printing the bytecode).
fn nft_stdout(ns: &TestNetns, args: &[&str]) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .arg("nft")
        .args(args)
        .output()
        .expect("run nsenter nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// With root and nft 1.0.6: nft still prints what the golden files hold
/// (they are not stale), and the values pulled after nft loaded each input
/// give nft's bytecode (this checks `common::bytecode` itself) and, printed,
/// nft's listing.
#[test]
fn golden_files_are_what_nft_prints() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip("needs root, for throwaway network namespaces");
        return;
    }
    let version = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !version.starts_with("nftables v1.0.6") {
        common::skip(&format!(
            "the golden files are nft 1.0.6's output, this machine has `{}`",
            version.trim()
        ));
        return;
    }
    let mut stale = Vec::new();
    let mut found = Vec::new();
    for case in cases() {
        let path = golden_dir().join(&case.file);
        let path = path.to_str().unwrap();
        let ns = TestNetns::new();
        let want = Bytecode::parse(&case.bytecode);
        if case.check_only {
            let now = nft_stdout(&ns, &["--check", "--debug=netlink", "-f", path]);
            if Bytecode::parse(&now) != want {
                stale.push(format!("{}: bytecode", case.file));
            }
            continue;
        }
        ns.nft(&["-f", path])
            .unwrap_or_else(|e| panic!("nft -f {}: {e}", case.file));
        let listing = ns.ruleset();
        let debug = ns.nft(&["--debug=netlink", "list", "ruleset"]).unwrap();
        if Bytecode::parse(&debug) != want {
            stale.push(format!("{}: bytecode", case.file));
        }
        if Some(&listing) != case.listing.as_ref() {
            stale.push(format!("{}: listing", case.file));
        }
        let mut sock = Socket::open(&ns.netns()).expect("open socket");
        let pulled = pull(&mut sock, &Selector::All).expect("pull").ruleset;
        found.extend(bytecode_differences(
            &case.file,
            "pulled-bytecode",
            &want,
            &Bytecode::of(&pulled),
            true,
        ));
        let printed = print::ruleset(&pulled, &PrintOptions::default());
        found.extend(listing_differences(
            &case.file,
            "pulled-listing",
            &listing,
            &printed,
        ));
    }
    assert!(
        stale.is_empty(),
        "golden files differ from what nft prints now: {stale:?}; \
         regenerate with `python3 netfilter/tools/gen-golden.py` (as root)"
    );
    judge(&["pulled-bytecode", "pulled-listing"], found);
}
