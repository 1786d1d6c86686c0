//! `FirewallAddressSet`: the elements one set's source resolved to, as the
//! operator publishes them for agents (see `docs/selectors.md`).
//!
//! The operator alone writes them (server-side apply, owned by their
//! FirewallRuleset, written only when a chunk's content changes); agents
//! only read them, so no agent ever watches the cluster's pods. A long
//! list is split into chunks: an element's chunk is a hash of its text
//! ([`chunk_of`]), so a change to one element rewrites one chunk and an
//! element never moves between chunks while their number stays. Agents
//! use a list only once every chunk of the same count is present
//! ([`assemble`]); until then they keep the list they had.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::resource::Family;
use crate::source::SetRef;

/// Elements per chunk the operator aims at; a chunk never holds more
/// than [`MAX_CHUNK_ELEMENTS`].
pub const CHUNK_TARGET: usize = 1000;
/// Elements one FirewallAddressSet may hold (about 60 KB of IPv6 text).
pub const MAX_CHUNK_ELEMENTS: usize = 4096;
/// Chunks one set may be split into.
pub const MAX_CHUNKS: u32 = 1024;
/// Label naming the FirewallRuleset an address set belongs to.
pub const RULESET_LABEL: &str = "netfilter.linx.dev/ruleset";

/// Part of the elements a FirewallRuleset's set resolved to.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "netfilter.linx.dev",
    version = "v1alpha1",
    kind = "FirewallAddressSet",
    plural = "firewalladdresssets",
    shortname = "fwas",
    category = "linx",
    namespaced,
    derive = "PartialEq",
    doc = "Elements a FirewallRuleset set's source resolved to (pods, services, namespaces), published by the operator for node agents. Written by the operator only.",
    printcolumn(name = "Ruleset", type_ = "string", json_path = ".spec.ruleset"),
    printcolumn(name = "Table", type_ = "string", json_path = ".spec.table"),
    printcolumn(name = "Set", type_ = "string", json_path = ".spec.set"),
    printcolumn(
        name = "Chunk",
        type_ = "integer",
        json_path = ".spec.chunk",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.chunk < self.chunks", "message": "chunk counts from 0 to chunks - 1"}
]))]
pub struct FirewallAddressSetSpec {
    /// The FirewallRuleset (in this namespace) whose set this fills.
    #[schemars(length(min = 1, max = 253))]
    pub ruleset: String,
    /// Its UID: a list made for a deleted ruleset of the same name is never used.
    #[schemars(length(max = 64))]
    pub ruleset_uid: String,
    /// Family of the set's table.
    pub family: Family,
    /// The set's table.
    #[schemars(length(min = 1, max = 64))]
    pub table: String,
    /// The set or map.
    #[schemars(length(min = 1, max = 64))]
    pub set: String,
    /// Which chunk of the list this is (from 0).
    pub chunk: u32,
    /// How many chunks the list has now.
    #[schemars(range(min = 1, max = MAX_CHUNKS))]
    pub chunks: u32,
    /// This chunk's elements in nft syntax (`10.0.0.7`, `10.96.0.10 . 5432`), sorted.
    #[serde(default)]
    #[schemars(length(max = MAX_CHUNK_ELEMENTS), inner(length(min = 1, max = 256)))]
    pub elements: Vec<String>,
}

impl FirewallAddressSetSpec {
    /// The set this chunk fills.
    pub fn set_ref(&self) -> SetRef {
        SetRef::new(self.family, &self.table, &self.set)
    }
}

/// FNV-1a, 32 bits: stable across versions and machines.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The chunk `element` belongs to among `chunks` (a power of two).
pub fn chunk_of(element: &str, chunks: u32) -> u32 {
    fnv1a(element.as_bytes()) & (chunks.max(1) - 1)
}

/// How many chunks a list of `len` elements is split into: the smallest
/// power of two giving at most [`CHUNK_TARGET`] elements per chunk on
/// average.
pub fn chunks_for(len: usize) -> u32 {
    (len.div_ceil(CHUNK_TARGET).max(1) as u32)
        .next_power_of_two()
        .min(MAX_CHUNKS)
}

/// Splits a sorted list into chunks (each sorted). The count starts at
/// [`chunks_for`] and doubles while a chunk would exceed
/// [`MAX_CHUNK_ELEMENTS`].
pub fn split(elements: &[String]) -> Vec<Vec<String>> {
    let mut n = chunks_for(elements.len());
    loop {
        let mut parts = vec![Vec::new(); n as usize];
        for e in elements {
            parts[chunk_of(e, n) as usize].push(e.clone());
        }
        if n >= MAX_CHUNKS || parts.iter().all(|p| p.len() <= MAX_CHUNK_ELEMENTS) {
            return parts;
        }
        n *= 2;
    }
}

/// The object name of chunk `chunk` of a ruleset's set: the ruleset's
/// name, a hash of family, table and set (names of nft objects may hold
/// characters Kubernetes names may not), and the chunk.
pub fn object_name(ruleset: &str, at: &SetRef, chunk: u32) -> String {
    let h = fnv1a(format!("{}\0{}\0{}", at.family, at.table, at.set).as_bytes());
    let mut base: String = ruleset.chars().take(230).collect();
    while base.ends_with('.') || base.ends_with('-') {
        base.pop();
    }
    format!("{base}-{h:08x}-{chunk}")
}

/// The whole list of each set of one ruleset from its chunks (any order;
/// chunks of other rulesets or UIDs must be filtered out before). A set
/// whose chunks are not all present with the same count is left out.
pub fn assemble<'a>(
    chunks: impl IntoIterator<Item = &'a FirewallAddressSetSpec>,
) -> BTreeMap<SetRef, Vec<String>> {
    let mut by_set: BTreeMap<SetRef, BTreeMap<u32, Vec<&'a FirewallAddressSetSpec>>> =
        BTreeMap::new();
    for c in chunks {
        by_set
            .entry(c.set_ref())
            .or_default()
            .entry(c.chunks)
            .or_default()
            .push(c);
    }
    let mut out = BTreeMap::new();
    for (at, by_count) in by_set {
        // While two splits are complete (the operator writes a new split,
        // then deletes the old chunks) the one with more chunks is used:
        // a grown list is used as soon as it is whole, a shrunk one once
        // the old chunks are gone. Either way a list, never a mix.
        let complete = by_count.into_iter().rev().find_map(|(n, mut parts)| {
            parts.sort_by_key(|p| p.chunk);
            parts.dedup_by_key(|p| p.chunk);
            let all = parts.len() == n as usize
                && parts.iter().enumerate().all(|(i, p)| p.chunk == i as u32);
            all.then_some(parts)
        });
        if let Some(parts) = complete {
            let mut list: Vec<String> = parts
                .iter()
                .flat_map(|p| p.elements.iter().cloned())
                .collect();
            list.sort();
            list.dedup();
            out.insert(at, list);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Vec<String> {
        let mut v: Vec<String> = (0..n)
            .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
            .collect();
        v.sort();
        v
    }

    fn specs(at: &SetRef, parts: &[Vec<String>]) -> Vec<FirewallAddressSetSpec> {
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| FirewallAddressSetSpec {
                ruleset: "db".into(),
                ruleset_uid: "u".into(),
                family: at.family,
                table: at.table.clone(),
                set: at.set.clone(),
                chunk: i as u32,
                chunks: parts.len() as u32,
                elements: p.clone(),
            })
            .collect()
    }

    #[test]
    fn a_list_splits_into_stable_bounded_chunks_and_assembles_back() {
        assert_eq!(chunks_for(0), 1);
        assert_eq!(chunks_for(1000), 1);
        assert_eq!(chunks_for(1001), 2);
        assert_eq!(chunks_for(5000), 8);
        let list = addrs(5000);
        let parts = split(&list);
        assert_eq!(parts.len(), 8);
        assert!(parts
            .iter()
            .all(|p| p.len() <= MAX_CHUNK_ELEMENTS && p.is_sorted()));
        // One element more changes exactly one chunk.
        let mut more = list.clone();
        more.push("10.200.0.1".into());
        more.sort();
        let after = split(&more);
        let changed = parts.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(changed, 1);
        let at = SetRef::new(Family::Inet, "fw", "api");
        let s = specs(&at, &parts);
        assert_eq!(assemble(&s)[&at], list);
        // A missing chunk: no list at all.
        assert!(!assemble(&s[1..]).contains_key(&at));
        // Mid-resize: the old complete split, then the new one once complete.
        let resized = specs(&at, &split(&more[..3]));
        let mut mixed = s.clone();
        mixed.extend(resized.clone());
        assert_eq!(
            assemble(&mixed)[&at],
            list,
            "more chunks win while both are whole"
        );
        assert_eq!(assemble(&resized)[&at], more[..3]);
    }

    #[test]
    fn names_are_kubernetes_names_whatever_the_set_is_called() {
        let at = SetRef::new(Family::Ip6, "My_Table", "API.pods");
        let n = object_name("db", &at, 3);
        assert!(n.starts_with("db-") && n.ends_with("-3"), "{n}");
        assert!(n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert_ne!(
            n,
            object_name("db", &SetRef::new(Family::Ip, "My_Table", "API.pods"), 3)
        );
        assert!(object_name(&"x".repeat(253), &at, 1023).len() <= 253);
    }
}
