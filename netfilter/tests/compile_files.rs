//! Whole files through the compiler: every loadable dump of the conformance
//! corpus and every example in `examples/` is compiled with
//! `syntax::compile`, pushed into a fresh namespace, and `nft list ruleset`
//! there must equal the listing of another namespace where `nft -f` loaded
//! the same file.

use std::collections::BTreeMap;

use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{push, PushOptions};
use linx_netfilter::syntax::compile;
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{Ruleset, Socket};

mod common;

use common::corpus::{loadable_dumps, mask_listing};

/// Dumps that must pass: raise when the compiler learns more; a drop fails.
const DUMP_FLOOR: usize = 368;

/// The corpus's loadable dumps (when it is present) and our examples.
fn files(with_corpus: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if with_corpus {
        out.extend(
            loadable_dumps()
                .into_iter()
                .map(|f| format!("{}/{f}", common::corpus::corpus())),
        );
    }
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut ex: Vec<String> = std::fs::read_dir(examples)
        .expect("examples directory")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "nft").then(|| p.display().to_string())
        })
        .collect();
    ex.sort();
    assert!(!ex.is_empty(), "no examples found");
    out.extend(ex);
    out
}

/// A short class of a failure, to group them.
fn group(err: &str) -> String {
    let first = err.lines().next().unwrap_or("");
    // Drop the `compile: L:C:` position so one cause makes one group.
    let first = match first.strip_prefix("compile: ") {
        Some(rest) => rest.splitn(3, ':').nth(2).unwrap_or(rest).trim(),
        None => first,
    };
    let cut: String = first
        .chars()
        .take_while(|c| *c != '\'' && *c != '"' && *c != '@')
        .take(60)
        .collect();
    cut.trim().to_owned()
}

/// Compiles `file`, pushes it into B, loads it with nft into A, compares.
fn check(file: &str) -> Result<(), String> {
    let script = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let rs = compile(&script).map_err(|d| format!("compile: {d}"))?;
    let a = TestNetns::new();
    a.nft_load(&script).map_err(|e| format!("nft -f: {e}"))?;
    let b = TestNetns::new();
    let mut sb = Socket::open(&b.netns()).map_err(|e| e.to_string())?;
    push(&mut sb, &rs, &PushOptions::default()).map_err(|e| format!("push: {e}"))?;
    let (la, lb) = (mask_listing(&a.ruleset()), mask_listing(&b.ruleset()));
    if la != lb {
        let diff: Vec<String> = la
            .lines()
            .zip(lb.lines())
            .filter(|(x, y)| x != y)
            .take(3)
            .map(|(x, y)| format!("-{x}\n+{y}"))
            .collect();
        let extra = if la.lines().count() != lb.lines().count() {
            format!(" ({} vs {} lines)", la.lines().count(), lb.lines().count())
        } else {
            String::new()
        };
        let mut msg = format!("listing differs{extra}\n{}", diff.join("\n"));
        if std::env::var("LINX_VERBOSE").is_ok() {
            msg += &value_diff(&a, &rs);
        }
        return Err(msg);
    }
    Ok(())
}

/// What differs between what nft put in A and what we compiled, as the
/// patch the diff finds, to see why listings differ.
fn value_diff(a: &TestNetns, rs: &Ruleset) -> String {
    let Ok(mut sa) = Socket::open(&a.netns()) else {
        return String::new();
    };
    let Ok(pulled) = pull(&mut sa, &Selector::All) else {
        return String::new();
    };
    common::values::difference(&pulled.ruleset, rs)
        .map(|d| format!("\nnft's value and ours {d}"))
        .unwrap_or_default()
}

#[test]
fn compiled_files_list_like_nft_loaded_them() {
    // Without the corpus, the examples alone.
    let with_corpus = common::corpus::optional().is_some();
    let files = files(with_corpus);
    let only = std::env::var("LINX_DUMP").ok();
    let files: Vec<String> = files
        .into_iter()
        .filter(|f| only.as_deref().is_none_or(|o| f.contains(o)))
        .collect();
    let failures = common::corpus::failures_parallel(&files, check);
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (f, e) in &failures {
        groups.entry(group(e)).or_default().push(f);
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    for (g, v) in &groups {
        println!("{:4}  {g}   e.g. {}", v.len(), v[0]);
    }
    if std::env::var("LINX_VERBOSE").is_ok() {
        for (f, e) in &failures {
            println!("== {f}\n{e}\n");
        }
    }
    let passed = files.len() - failures.len();
    println!("compile files: {passed}/{} passed", files.len());
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let examples_failed: Vec<&(String, String)> = failures
        .iter()
        .filter(|(f, _)| f.starts_with(examples))
        .collect();
    assert!(
        examples_failed.is_empty(),
        "examples must compile exactly: {examples_failed:#?}"
    );
    if only.is_none() && with_corpus {
        assert!(
            passed >= DUMP_FLOOR,
            "{passed} files passed, floor is {DUMP_FLOOR}"
        );
    }
}
