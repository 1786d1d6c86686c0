//! Whole files through the path users take, with the real `linx-agent`
//! binary (issue #13): every loadable dump of nftables' corpus
//! (`../shared/conformance`, skipped with a printed reason when absent) and
//! every real-world ruleset of `netfilter/tests/rulesets/` (and the
//! generated 5,000-rule ACL).
//!
//! For each file, in fresh namespaces: `linx-agent apply -f FILE` succeeds;
//! the namespace then lists exactly as one where `nft -f FILE` loaded it; a
//! second `linx-agent diff` finds nothing (exit 0); `linx-agent diff
//! --adopt` against nft's namespace finds nothing; `pull --output nft`
//! loads back in nft to the same listing. And a namespace holding an older
//! version of the file (a quarter of its rules and set elements gone)
//! converges with one `apply`, in one transaction.
//!
//! The counts go into `netfilter/CONFORMANCE.md` ("Whole files through
//! apply"); the test fails when that table is stale. Regenerate:
//! `LINX_BLESS=1 cargo test -p linx-agent --test whole_files`.
//! `LINX_RUNS=N` repeats the apply and diff steps N times in fresh
//! namespaces and fails if any result differs between runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use linx_netfilter::model::Ruleset;
use linx_netfilter::sys::{NFT_CHAIN_BINDING, NFT_SET_ELEM_INTERVAL_END, NFT_SET_EVAL};
use linx_netfilter::testing::{masked_listing, real_world_rulesets, TestNetns};

const AGENT: &str = env!("CARGO_BIN_EXE_linx-agent");

/// Files that meet a gap of the nft language the compiler and printer are
/// being taught (issue #13, language side): file, the step it fails at,
/// and the gap. They stay in the corpus and are tried like every other
/// file, and every step before that one must pass; once one passes, this
/// test says so and fails until it is taken off the list. Nothing else is
/// excluded.
const PENDING_LANGUAGE: &[(&str, &str, &str)] = &[];

/// Step names, as failures start.
const APPLY: &str = "apply";
const PULL: &str = "pull --output nft";

/// A file to try, and the group it is counted in.
struct Case {
    group: &'static str,
    name: String,
    path: PathBuf,
}

/// What happened to one file; `None` for a step not reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Steps {
    applied: Option<bool>,
    lists_as_nft: Option<bool>,
    nothing_left: Option<bool>,
    adopted_nothing: Option<bool>,
    loads_back: Option<bool>,
    error: Option<String>,
}

impl Steps {
    fn passed(&self) -> bool {
        self.error.is_none()
    }
    fn fail(mut self, step: &str, why: impl std::fmt::Display) -> Self {
        self.error = Some(format!("{step}: {why}"));
        self
    }
}

fn agent(args: &[&str]) -> Output {
    Command::new(AGENT)
        .args(args)
        .output()
        .expect("run linx-agent")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn netns_arg(ns: &TestNetns) -> String {
    ns.path().display().to_string()
}

/// The conformance corpus beside the repository, or named by
/// `LINX_CONFORMANCE`; `None` on a clone without it.
fn conformance_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("LINX_CONFORMANCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"));
    dir.join("dumps.tsv").exists().then_some(dir)
}

/// The loadable dumps of the corpus (`loads=yes`).
fn corpus_cases(dir: &Path) -> Vec<Case> {
    let tsv = std::fs::read_to_string(dir.join("dumps.tsv")).expect("read dumps.tsv");
    tsv.lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let file = cols.next()?;
            (cols.next()? == "yes").then(|| Case {
                group: "corpus dumps (`loads=yes`)",
                name: file.to_owned(),
                path: dir.join(file),
            })
        })
        .collect()
}

/// The real-world rulesets, written where the binary can read them.
fn real_world_cases(scratch: &Path) -> Vec<Case> {
    real_world_rulesets()
        .into_iter()
        .map(|(name, text)| {
            let path = scratch.join(&name);
            std::fs::write(&path, text).expect("write ruleset");
            Case {
                group: "real-world rulesets (`netfilter/tests/rulesets/`)",
                name,
                path,
            }
        })
        .collect()
}

fn scratch_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("linx-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A scratch directory and the cases of this run; whether the corpus was
/// there (the reason it was skipped is printed).
fn setup(what: &str) -> (PathBuf, Vec<Case>, bool) {
    let scratch = scratch_dir(what);
    let (cases, skipped) = cases(&scratch);
    if let Some(why) = &skipped {
        println!("{why}");
    }
    (scratch, cases, skipped.is_none())
}

/// The cases of this run, and why the corpus was skipped if it was.
fn cases(scratch: &Path) -> (Vec<Case>, Option<String>) {
    let mut out = Vec::new();
    let skipped = match conformance_dir() {
        Some(dir) => {
            out.extend(corpus_cases(&dir));
            None
        }
        None => Some(
            "corpus dumps skipped: ../shared/conformance is absent (set LINX_CONFORMANCE to its path)"
                .to_owned(),
        ),
    };
    out.extend(real_world_cases(scratch));
    if let Ok(only) = std::env::var("LINX_DUMP") {
        out.retain(|c| c.name.contains(&only));
    }
    (out, skipped)
}

/// Runs `f` on every case on four threads (most of the time is spent
/// waiting for processes and the kernel); results in case order.
fn each<T: Send>(cases: &[Case], f: impl Fn(&Case) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<T>>> = Mutex::new((0..cases.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = cases.get(i) else { break };
                let r = f(c);
                out.lock().unwrap()[i] = Some(r);
            });
        }
    });
    out.into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every case ran"))
        .collect()
}

/// The five steps of done-when 1 for one file.
fn check(case: &Case) -> Steps {
    let file = case.path.display().to_string();
    let mut s = Steps::default();
    let script = match std::fs::read_to_string(&case.path) {
        Ok(t) => t,
        Err(e) => return s.fail("read", e),
    };
    let ours = TestNetns::new();
    let o = agent(&["apply", "--netns", &netns_arg(&ours), "-f", &file]);
    s.applied = Some(o.status.success());
    if !o.status.success() {
        return s.fail(APPLY, text(&o));
    }
    let nft = TestNetns::new();
    if let Err(e) = nft.nft_load(&script) {
        return s.fail("nft -f", e);
    }
    let want = masked_listing(&nft.ruleset());
    let got = masked_listing(&ours.ruleset());
    s.lists_as_nft = Some(want == got);
    let o = agent(&["diff", "--netns", &netns_arg(&ours), "-f", &file]);
    s.nothing_left = Some(o.status.code() == Some(0) && o.stdout.is_empty());
    let o2 = agent(&["diff", "--adopt", "--netns", &netns_arg(&nft), "-f", &file]);
    s.adopted_nothing = Some(o2.status.code() == Some(0) && o2.stdout.is_empty());
    let pulled = agent(&["pull", "--netns", &netns_arg(&ours), "--output", "nft"]);
    let back = TestNetns::new();
    let reload = if pulled.status.success() {
        back.nft_load(&String::from_utf8_lossy(&pulled.stdout))
    } else {
        Err(text(&pulled))
    };
    let loads = reload.is_ok();
    s.loads_back = Some(loads && masked_listing(&back.ruleset()) == want);
    if s.lists_as_nft == Some(false) {
        return s.fail("listing", first_line_difference(&want, &got));
    }
    if s.nothing_left == Some(false) {
        return s.fail("second diff", text(&o));
    }
    if s.adopted_nothing == Some(false) {
        return s.fail("diff of nft's namespace", text(&o2));
    }
    if s.loads_back == Some(false) {
        let why = if loads {
            first_line_difference(&want, &masked_listing(&back.ruleset()))
        } else {
            format!(
                "nft refuses the printed text: {}",
                reload.err().unwrap_or_default()
            )
        };
        return s.fail(PULL, why);
    }
    s
}

fn first_line_difference(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let i = w
        .iter()
        .zip(&g)
        .position(|(a, b)| a != b)
        .unwrap_or(w.len().min(g.len()));
    format!(
        "line {}: nft lists {:?}, ours {:?}",
        i + 1,
        w.get(i).unwrap_or(&"<end>"),
        g.get(i).unwrap_or(&"<end>")
    )
}

/// The pending gap of a file: (the step it fails at, the gap).
fn pending(name: &str) -> Option<(&'static str, &'static str)> {
    PENDING_LANGUAGE
        .iter()
        .find(|(f, _, _)| name.ends_with(f))
        .map(|(_, step, why)| (*step, *why))
}

/// The "whole files through apply" table of CONFORMANCE.md.
fn table(cases: &[Case], results: &[Steps]) -> String {
    let mut groups: BTreeMap<&str, [usize; 6]> = BTreeMap::new();
    for (c, s) in cases.iter().zip(results) {
        let g = groups.entry(c.group).or_default();
        g[0] += 1;
        for (i, step) in [
            s.applied,
            s.lists_as_nft,
            s.nothing_left,
            s.adopted_nothing,
            s.loads_back,
        ]
        .into_iter()
        .enumerate()
        {
            g[i + 1] += (step == Some(true)) as usize;
        }
    }
    let mut out = String::from(
        "| files | count | `apply` succeeds | lists as after `nft -f` | second `diff`: nothing | `diff --adopt` of nft's load: nothing | `pull --output nft` loads back the same |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (g, n) in &groups {
        out.push_str(&format!(
            "| {g} | {} | {} | {} | {} | {} | {} |\n",
            n[0], n[1], n[2], n[3], n[4], n[5]
        ));
    }
    out.push_str("\nPending language gaps (files kept in the corpus; each fails at the step named, every step before it passes):\n\n");
    for (f, step, why) in PENDING_LANGUAGE {
        out.push_str(&format!("- `{f}` at `{step}`: {why}\n"));
    }
    out
}

const CONFORMANCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../netfilter/CONFORMANCE.md");
const BEGIN: &str = "<!-- apply:begin -->\n";
const END: &str = "<!-- apply:end -->";

/// Checks (or with `LINX_BLESS=1` rewrites) the table in CONFORMANCE.md.
fn check_table(table: &str) {
    let doc = std::fs::read_to_string(CONFORMANCE).expect("read CONFORMANCE.md");
    let (Some(a), Some(b)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("CONFORMANCE.md has no {BEGIN:?} … {END:?} section");
    };
    let current = &doc[a + BEGIN.len()..b];
    if current == table {
        return;
    }
    if std::env::var_os("LINX_BLESS").is_some() {
        let new = format!("{}{BEGIN}{table}{}", &doc[..a], &doc[b..]);
        std::fs::write(CONFORMANCE, new).expect("write CONFORMANCE.md");
        println!("CONFORMANCE.md: whole-file table rewritten");
        return;
    }
    panic!(
        "CONFORMANCE.md's whole-file table is stale; run with LINX_BLESS=1.\n--- file ---\n{current}--- now ---\n{table}"
    );
}

#[test]
fn every_file_applies_lists_as_nft_and_leaves_nothing_to_do() {
    let (scratch, cases, corpus) = setup("whole-files");
    let runs: usize = std::env::var("LINX_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
        .max(1);
    let results = each(&cases, check);
    let mut varying = Vec::new();
    for run in 2..=runs {
        let again = each(&cases, check);
        for ((c, a), b) in cases.iter().zip(&results).zip(&again) {
            if a.passed() != b.passed()
                || a.error.as_ref().map(|_| ()) != b.error.as_ref().map(|_| ())
            {
                varying.push(format!(
                    "{} (run {run}): {:?} then {:?}",
                    c.name, a.error, b.error
                ));
            }
        }
    }
    let table = table(&cases, &results);
    println!("whole files through apply ({runs} run(s)):\n{table}");
    println!("PENDING_LANGUAGE (file, step → gap):");
    for (f, step, why) in PENDING_LANGUAGE {
        println!("  {f}, {step} → {why}");
    }
    let mut failures = Vec::new();
    let mut now_pass = Vec::new();
    for (c, s) in cases.iter().zip(&results) {
        let error = s.error.as_deref().unwrap_or("");
        match pending(&c.name) {
            Some(_) if s.passed() => now_pass.push(c.name.clone()),
            Some((step, why)) if error.starts_with(step) => {
                println!("pending {}: {why}: {}", c.name, first_line(&s.error))
            }
            _ if s.passed() => {}
            _ => failures.push(format!("{}: {error}", c.name)),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        varying.is_empty(),
        "results vary between runs:\n{}",
        varying.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} file(s) fail:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        now_pass.is_empty(),
        "now passing, take off PENDING_LANGUAGE: {now_pass:?}"
    );
    if corpus && std::env::var_os("LINX_DUMP").is_none() {
        check_table(&table);
    } else {
        println!("CONFORMANCE.md's whole-file table not checked (not every file was tried)");
    }
}

fn first_line(e: &Option<String>) -> &str {
    e.as_deref().and_then(|e| e.lines().next()).unwrap_or("")
}

/// `value` with a quarter of its rules and of its set elements gone: an
/// older version of the same ruleset. Rules of chains bound to other rules
/// stay (they are part of the rule binding them); elements of sets the
/// datapath fills stay (they are state); an interval goes with its end.
fn older(value: &Ruleset) -> Ruleset {
    let mut v = value.clone();
    for t in &mut v.tables {
        for c in t
            .chains
            .iter_mut()
            .filter(|c| c.flags.unwrap_or(0) & NFT_CHAIN_BINDING == 0)
        {
            let mut i = 0;
            c.rules.retain(|_| {
                i += 1;
                i % 4 != 0
            });
        }
        for s in t.sets.iter_mut().filter(|s| s.flags & NFT_SET_EVAL == 0) {
            let is_end =
                |e: &linx_netfilter::Element| e.flags.unwrap_or(0) & NFT_SET_ELEM_INTERVAL_END != 0;
            let mut keep = vec![true; s.elements.len()];
            let mut n = 0;
            for i in 0..s.elements.len() {
                if is_end(&s.elements[i]) {
                    continue;
                }
                n += 1;
                if n % 4 == 0 {
                    keep[i] = false;
                    if s.elements.get(i + 1).is_some_and(is_end) {
                        keep[i + 1] = false;
                    }
                }
            }
            let mut keep = keep.into_iter();
            s.elements.retain(|_| keep.next().unwrap_or(true));
        }
    }
    v
}

/// One file's done-when 4: an older version, then one `apply` of the file.
fn converge_from_older(case: &Case, scratch: &Path) -> Result<(), String> {
    let script = std::fs::read_to_string(&case.path).map_err(|e| e.to_string())?;
    let value = linx_netfilter::syntax::compile(&script).map_err(|d| format!("compile: {d}"))?;
    let old = older(&value);
    let old_file = scratch.join(format!("{}.older.json", case.name.replace('/', "_")));
    std::fs::write(
        &old_file,
        serde_json::to_string(&old).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let ns = TestNetns::new();
    let o = agent(&[
        "apply",
        "--netns",
        &netns_arg(&ns),
        "-f",
        &old_file.display().to_string(),
    ]);
    if !o.status.success() {
        return Err(format!("applying the older version: {}", text(&o)));
    }
    let file = case.path.display().to_string();
    let o = agent(&["apply", "--netns", &netns_arg(&ns), "-f", &file]);
    let out = String::from_utf8_lossy(&o.stdout);
    let summary = out
        .lines()
        .find(|l| l.starts_with("applied ") || l.starts_with("nothing to do"))
        .unwrap_or("");
    let changed = old != value;
    let one = if changed {
        summary.contains("in one transaction") && !summary.contains("conflict")
    } else {
        summary.starts_with("nothing to do")
    };
    if !o.status.success() || !one {
        return Err(format!("apply onto the older version: {}", text(&o)));
    }
    let nft = TestNetns::new();
    nft.nft_load(&script).map_err(|e| format!("nft -f: {e}"))?;
    let (want, got) = (
        masked_listing(&nft.ruleset()),
        masked_listing(&ns.ruleset()),
    );
    // Sets of concatenated ranges list in the order elements were added (the
    // kernel's pipapo keeps it), and those added back come last: the same
    // words, in another order, are the same contents (and `diff` below
    // checks the rules' order).
    let words = |l: &str| {
        let mut w: Vec<String> = l
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        w.sort_unstable();
        w
    };
    if want != got && words(&want) != words(&got) {
        return Err(format!(
            "listing after: {}",
            first_line_difference(&want, &got)
        ));
    }
    let o = agent(&["diff", "--netns", &netns_arg(&ns), "-f", &file]);
    if o.status.code() != Some(0) {
        return Err(format!("diff after: {}", text(&o)));
    }
    // And back: rules and elements deleted in one transaction too.
    let old_path = old_file.display().to_string();
    let o = agent(&["apply", "--netns", &netns_arg(&ns), "-f", &old_path]);
    if !o.status.success() {
        return Err(format!("back to the older version: {}", text(&o)));
    }
    let o = agent(&["diff", "--netns", &netns_arg(&ns), "-f", &old_path]);
    if o.status.code() != Some(0) {
        return Err(format!("diff after going back: {}", text(&o)));
    }
    Ok(())
}

#[test]
fn an_older_version_converges_in_one_transaction() {
    let (scratch, cases, _) = setup("older");
    // Files the compiler cannot read yet have no older version to make.
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|c| pending(&c.name).is_none_or(|(step, _)| step != APPLY))
        .collect();
    let results = each(&cases, |c| converge_from_older(c, &scratch));
    let failures: Vec<String> = cases
        .iter()
        .zip(&results)
        .filter_map(|(c, r)| r.as_ref().err().map(|e| format!("{}: {e}", c.name)))
        .collect();
    let mut by_group: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (c, r) in cases.iter().zip(&results) {
        let g = by_group.entry(c.group).or_default();
        g.0 += 1;
        g.1 += r.is_ok() as usize;
    }
    for (g, (n, ok)) in &by_group {
        println!("older version converges in one transaction: {ok}/{n} {g}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        failures.is_empty(),
        "{} file(s) do not converge from an older version:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
