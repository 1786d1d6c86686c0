//! Every loadable dump of the conformance corpus survives
//! `nft -f` → pull → push into a fresh namespace, as `nft list ruleset`
//! sees it, and the pulled value survives a serde round trip.

use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{push, PushOptions};
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{Ruleset, Socket};

mod common;

use common::corpus::{loadable_dumps, mask_listing};
use common::values::difference;

/// Loads `file` into A, pulls, pushes into B, compares; `Err` says why not.
fn roundtrip(file: &str) -> Result<(), String> {
    let script = std::fs::read_to_string(format!("{}/{file}", common::corpus::corpus()))
        .map_err(|e| e.to_string())?;
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
    let (la, lb) = (mask_listing(&a.ruleset()), mask_listing(&b.ruleset()));
    if la != lb {
        return Err(format!("listings differ\n--- A ---\n{la}--- B ---\n{lb}"));
    }
    // Lossless: B, pulled, holds the same value as A (kernel state aside).
    let again = pull(&mut sb, &Selector::All).map_err(|e| format!("pull B: {e}"))?;
    if let Some(d) = difference(&again.ruleset, &pulled.ruleset) {
        return Err(format!("pulled values {d}"));
    }
    Ok(())
}

#[test]
fn every_loadable_dump_round_trips_through_pull_and_push() {
    if common::corpus::require().is_none() {
        return;
    }
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
    let failures: Vec<String> = common::corpus::failures_parallel(&files, roundtrip)
        .into_iter()
        .map(|(f, e)| format!("{f}: {e}"))
        .collect();
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
