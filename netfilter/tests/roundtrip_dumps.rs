//! Every loadable dump of the conformance corpus survives
//! `nft -f` → pull → push into a fresh namespace, as `nft list ruleset`
//! sees it, and the pulled value survives a serde round trip.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{push, PushOptions};
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{Ruleset, Set, Socket};

const CORPUS: &str = "/work/shared/conformance";

mod common;
use common::corpus::loadable_dumps;

/// Blanks what legitimately differs between two namespaces holding the
/// same ruleset: counter values, quota consumption, element expiry.
fn mask(listing: &str) -> String {
    let mut out = String::with_capacity(listing.len());
    for line in listing.lines() {
        let mut prev = "";
        let words: Vec<String> = line
            .split(' ')
            .map(|w| {
                let numeric = w.starts_with(|c: char| c.is_ascii_digit());
                let masked = match prev {
                    "packets" | "bytes" | "used" if numeric => true,
                    "expires" => true,
                    _ => false,
                };
                prev = w;
                if masked {
                    let tail: String = w.chars().rev().take_while(|c| *c == ',').collect();
                    format!("N{tail}")
                } else {
                    w.to_owned()
                }
            })
            .collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

/// Removes what two namespaces holding the same configuration may differ
/// in: kernel state, the order of hash set elements (the kernel's), and the
/// numbers the kernel picked for anonymous sets.
fn canonical(rs: &mut Ruleset) {
    rs.clear_kernel_state();
    for t in &mut rs.tables {
        let mut n = 0;
        for c in &mut t.chains {
            for r in &mut c.rules {
                for s in &mut r.sets {
                    let new = format!("__anon{n}");
                    n += 1;
                    for e in &mut r.exprs {
                        if let Some((Some(name), _)) = e.set_refs_mut() {
                            if *name == s.name {
                                name.clone_from(&new);
                            }
                        }
                    }
                    s.name = new;
                }
                r.sets.iter_mut().for_each(sort_elements);
            }
        }
        t.sets.iter_mut().for_each(sort_elements);
    }
}

fn sort_elements(s: &mut Set) {
    s.elements
        .sort_by(|a, b| (&a.key, &a.key_end, a.flags).cmp(&(&b.key, &b.key_end, b.flags)));
}

/// Loads `file` into A, pulls, pushes into B, compares; `Err` says why not.
fn roundtrip(file: &str) -> Result<(), String> {
    let script = std::fs::read_to_string(format!("{CORPUS}/{file}")).map_err(|e| e.to_string())?;
    let a = TestNetns::new();
    a.nft_load(&script).map_err(|e| format!("nft -f: {e}"))?;
    let mut sa = Socket::open(&a.netns()).map_err(|e| e.to_string())?;
    let pulled = pull(&mut sa, &Selector::All).map_err(|e| format!("pull: {e}"))?;

    // YAML through a JSON value: serde_yaml cannot write an enum nested
    // in an enum (verdicts in data) directly.
    let json_value = serde_json::to_value(&pulled.ruleset).map_err(|e| e.to_string())?;
    let yaml = serde_yaml::to_string(&json_value).map_err(|e| e.to_string())?;
    let back: serde_json::Value = serde_yaml::from_str(&yaml).map_err(|e| format!("yaml: {e}"))?;
    let back: Ruleset = serde_json::from_value(back).map_err(|e| format!("yaml: {e}"))?;
    if back != pulled.ruleset {
        return Err("YAML round trip changed the value".into());
    }
    let json = serde_json::to_string(&pulled.ruleset).map_err(|e| e.to_string())?;
    let back: Ruleset = serde_json::from_str(&json).map_err(|e| format!("json: {e}"))?;
    if back != pulled.ruleset {
        return Err("JSON round trip changed the value".into());
    }

    let b = TestNetns::new();
    let mut sb = Socket::open(&b.netns()).map_err(|e| e.to_string())?;
    push(&mut sb, &pulled.ruleset, &PushOptions::default()).map_err(|e| format!("push: {e}"))?;
    let (la, lb) = (mask(&a.ruleset()), mask(&b.ruleset()));
    if la != lb {
        return Err(format!("listings differ\n--- A ---\n{la}--- B ---\n{lb}"));
    }
    // Lossless: B, pulled, holds the same value as A (kernel state aside).
    let mut again = pull(&mut sb, &Selector::All).map_err(|e| format!("pull B: {e}"))?;
    let mut want = pulled.ruleset;
    canonical(&mut want);
    canonical(&mut again.ruleset);
    if again.ruleset != want {
        let (w, g) = (
            serde_json::to_string_pretty(&want).unwrap_or_default(),
            serde_json::to_string_pretty(&again.ruleset).unwrap_or_default(),
        );
        let first = w
            .lines()
            .zip(g.lines())
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        let ctx = |s: &str| {
            s.lines()
                .skip(first.saturating_sub(8))
                .take(16)
                .collect::<Vec<_>>()
                .join("\n")
        };
        return Err(format!(
            "pulled values differ at line {first}\n--- A ---\n{}\n--- B ---\n{}",
            ctx(&w),
            ctx(&g)
        ));
    }
    Ok(())
}

#[test]
fn every_loadable_dump_round_trips_through_pull_and_push() {
    let files = loadable_dumps();
    assert!(
        files.len() > 300,
        "corpus has {} loadable dumps",
        files.len()
    );
    let only = std::env::var("LINX_DUMP").ok();
    let files: Vec<String> = files
        .into_iter()
        .filter(|f| only.as_deref().is_none_or(|o| f.contains(o)))
        .collect();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(f) = files.get(i) else { break };
                if let Err(e) = roundtrip(f) {
                    failures.lock().unwrap().push(format!("{f}: {e}"));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    println!(
        "round trip: {}/{} dumps passed",
        files.len() - failures.len(),
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
