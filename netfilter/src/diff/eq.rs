//! The diff's equality: the one answer to "is this a change?".
//!
//! A value compiled from a file, the value pulled after nft loads that file
//! and the value pulled after Linx pushes it are equal under it, and a diff
//! between any two of them is empty. Every comparison the engine and its
//! tests make goes through here ([`super::diff`] finding nothing is the
//! definition of equal).
//!
//! **Never a change** — what the kernel decides, numbers or keeps by itself:
//! - handles, use counts, the owner's port id, the base-chain flag the
//!   kernel adds to hooked chains, an empty set description it reports;
//! - runtime state: counter and quota values, `last` timestamps, the time an
//!   element has left before it expires;
//! - the contents of a set the datapath writes (`flags dynamic`: meters,
//!   `add @set`/`update @set` from rules): what packets put there is state.
//!   Such a set gets its declared elements when it is created; after that a
//!   missing or extra element is no change;
//! - anonymous sets and maps: their names (`__set%d`, numbered by the
//!   kernel), nft's listing hints (key byte order, size) and the order of
//!   their elements — they compare as sets of elements;
//! - chains bound to a rule (`jump { … }`): their names (`__chain%d`, numbered
//!   by the kernel) — a bound chain is part of the rule that binds it and
//!   compares by its rules;
//! - the order of elements in any set (the kernel dumps hash sets in an order
//!   seeded per set, and interval trees from the top), and the order and
//!   encoding (`NFTA_HOOK_DEV` or `NFTA_HOOK_DEVS`) of a hook's devices.
//!
//! **A change** — everything a user wrote: tables, chains (hook, priority,
//! type, policy, flags, comment), the rules of each chain in order (their
//! expressions, comments and anonymous sets' elements), named sets' and
//! maps' definitions and elements, objects' parameters (a counter's or
//! quota's *configured* values are its parameters only when it is created:
//! see [`object_eq`]), flowtables.
//!
//! Interval sets compare as the kernel holds them: nft merges overlapping
//! and adjacent intervals of a set with `auto-merge` (and of anonymous sets)
//! before sending them, and the compiler makes the same elements, so no
//! merging happens here.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

use crate::codec::setref::jump_target;
use crate::expr::{Data, Expr, Verdict};
use crate::model::{Chain, Element, Flowtable, Hook, Object, Rule, Set, SetDesc, Table};
use crate::object::ObjectData;
use crate::sys::*;

/// Chains bound to rules (`jump { … }`) of one table, by name.
pub(super) type Bound<'a> = HashMap<&'a str, &'a Chain>;

/// Whether a chain is bound to a rule (created with it, gone with it).
pub(crate) fn is_binding(c: &Chain) -> bool {
    c.flags.unwrap_or(0) & NFT_CHAIN_BINDING != 0
}

/// The bound chains of a table (empty, without allocating, when it has none).
pub(super) fn bound_chains(t: &Table) -> Bound<'_> {
    t.chains
        .iter()
        .filter(|c| is_binding(c))
        .map(|c| (c.name.as_str(), c))
        .collect()
}

/// The two tables rules are compared in: their bound chains, each side's.
#[derive(Default)]
pub(super) struct Sides<'a> {
    pub cur: Bound<'a>,
    pub want: Bound<'a>,
}

impl<'a> Sides<'a> {
    pub fn of(cur: &'a Table, want: &'a Table) -> Self {
        Sides {
            cur: bound_chains(cur),
            want: bound_chains(want),
        }
    }
    /// Neither table has bound chains.
    pub fn plain(&self) -> bool {
        self.cur.is_empty() && self.want.is_empty()
    }
}

/// Whether current rule `a` stays as desired rule `b`.
pub(super) fn rule_eq(s: &Sides<'_>, a: &Rule, b: &Rule) -> bool {
    if a.exprs.len() != b.exprs.len()
        || a.sets.len() != b.sets.len()
        || a.userdata != b.userdata
        || a.unknown != b.unknown
    {
        return false;
    }
    if a.sets.is_empty() && s.plain() {
        // The common case: no anonymous set, no bound chain.
        return a.exprs.same(&b.exprs)
            || a.exprs
                .iter()
                .zip(&b.exprs)
                .all(|(x, y)| x == y || stateless(x) == stateless(y));
    }
    a.exprs
        .iter()
        .zip(&b.exprs)
        .all(|(x, y)| expr_eq(s, a, b, x, y))
}

/// Expressions of rules `ra` (current) and `rb` (desired) equal, their
/// references to anonymous sets and bound chains compared by content.
fn expr_eq(s: &Sides<'_>, ra: &Rule, rb: &Rule, x: &Expr, y: &Expr) -> bool {
    match (anonymous_set(ra, x), anonymous_set(rb, y)) {
        (None, None) => {}
        (Some(p), Some(q)) => return anonymous_set_eq(p, q) && without_set(x) == without_set(y),
        _ => return false,
    }
    fn bound<'c>(side: &Bound<'c>, e: &Expr) -> Option<&'c Chain> {
        jump_target(e).and_then(|n| side.get(n).copied())
    }
    match (bound(&s.cur, x), bound(&s.want, y)) {
        (None, None) => x == y || stateless(x) == stateless(y),
        (Some(p), Some(q)) => without_chain(x) == without_chain(y) && bound_chain_eq(s, p, q),
        _ => false,
    }
}

/// Bound chains equal: same kind of chain, same rules (names aside).
fn bound_chain_eq(s: &Sides<'_>, a: &Chain, b: &Chain) -> bool {
    chain_header_eq(a, b, true)
        && a.rules.len() == b.rules.len()
        && a.rules.iter().zip(&b.rules).all(|(x, y)| rule_eq(s, x, y))
}

/// The anonymous set of rule `r` that expression `e` refers to.
fn anonymous_set<'r>(r: &'r Rule, e: &Expr) -> Option<&'r Set> {
    let name = e.set_name()?;
    r.sets.iter().find(|s| s.name == name)
}

/// An expression with its set reference blanked (and its state cleared).
fn without_set(e: &Expr) -> Expr {
    let mut e = e.clone();
    if let Some((name, id)) = e.set_refs_mut() {
        (*name, *id) = (None, None);
    }
    e.clear_state();
    e
}

/// A jump or goto with its target's name blanked.
fn without_chain(e: &Expr) -> Expr {
    let mut e = e.clone();
    if let Expr::Immediate(i) = &mut e {
        if let Some(Data::Verdict(v)) = &mut i.data {
            if let Some(c) = v.chain_mut() {
                c.clear();
            }
        }
    }
    e
}

/// Anonymous sets equal: same definition, same elements in any order;
/// names, handles and nft's listing hints (userdata, size) aside.
fn anonymous_set_eq(a: &Set, b: &Set) -> bool {
    same_kind(a, b) && elements_eq(a, b)
}

/// What makes two sets the same kind of set (named or anonymous): flags,
/// key and data types, policy, timeouts, the expressions given to every
/// element (their state aside). Field by field, so a million-element set
/// is never cloned.
fn same_kind(a: &Set, b: &Set) -> bool {
    a.flags == b.flags
        && a.key_type == b.key_type
        && a.key_len == b.key_len
        && a.data_type == b.data_type
        && a.data_len == b.data_len
        && a.obj_type == b.obj_type
        && a.policy == b.policy
        && a.timeout == b.timeout
        && a.gc_interval == b.gc_interval
        && a.exprs.len() == b.exprs.len()
        && a.exprs
            .iter()
            .zip(&b.exprs)
            .all(|(x, y)| stateless(x) == stateless(y))
        && a.unknown == b.unknown
}

/// Two sets' elements equal as sets: in order when they are (cheap), else
/// after sorting both by key (a key, with its interval end and flags, names
/// an element: no two elements of a set share one).
pub(super) fn elements_eq(sa: &Set, sb: &Set) -> bool {
    let (a, b) = (&sa.elements, &sb.elements);
    if a.same(b) && same_kind(sa, sb) {
        // One list, normalized alike.
        return true;
    }
    if a.len() != b.len() {
        return false;
    }
    let eq = |x: &Element, y: &Element| {
        x == y || normalized_element(&sa.exprs, x) == normalized_element(&sb.exprs, y)
    };
    if a.iter().zip(b).all(|(x, y)| eq(x, y)) {
        return true;
    }
    fn sorted(v: &[Element]) -> Vec<&Element> {
        let mut refs: Vec<&Element> = v.iter().collect();
        refs.sort_unstable_by(|x, y| element_key(x).cmp(&element_key(y)));
        refs
    }
    sorted(a).into_iter().zip(sorted(b)).all(|(x, y)| eq(x, y))
}

/// What names an element within its set.
pub(super) fn element_key(e: &Element) -> (Option<&[u8]>, Option<&[u8]>, u32) {
    (
        e.key.as_ref().map(|k| k.0.as_slice()),
        e.key_end.as_ref().map(|k| k.0.as_slice()),
        e.flags.unwrap_or(0),
    )
}

/// An element as compared, in a set whose elements all carry `set_exprs`
/// (`counter` in a set's declaration): without its time left, without
/// those expressions (the kernel gives every element its set's; a desired
/// element need not list them) or their state.
pub(super) fn normalized_element<'e>(set_exprs: &[Expr], e: &'e Element) -> Cow<'e, Element> {
    if e.expiration.is_none() && e.exprs.is_empty() && e.flags != Some(0) {
        return Cow::Borrowed(e);
    }
    let mut n = e.clone();
    n.expiration = None;
    let the_sets = n.exprs.len() == set_exprs.len()
        && n.exprs
            .iter()
            .zip(set_exprs)
            .all(|(x, y)| stateless(x) == stateless(y));
    if the_sets {
        n.exprs.clear();
    } else {
        n.exprs.iter_mut().for_each(Expr::clear_state);
    }
    // No flags and flags 0 are the same element.
    n.flags = n.flags.filter(|&f| f != 0);
    Cow::Owned(n)
}

/// An expression without its runtime state: borrowed unless it has some
/// (counters and the like are small and own no heap data).
pub(super) fn stateless(e: &Expr) -> Cow<'_, Expr> {
    if matches!(
        e,
        Expr::Counter(_) | Expr::Quota(_) | Expr::Last(_) | Expr::Dynset(_) | Expr::Inner(_)
    ) {
        let mut c = e.clone();
        c.clear_state();
        Cow::Owned(c)
    } else {
        Cow::Borrowed(e)
    }
}

/// A hash of a rule consistent with [`rule_eq`] (equal rules hash equal;
/// unequal ones may too: a hash only rules pairs out). `bound` is the
/// rule's side's bound chains.
pub(super) fn rule_hash(bound: &Bound<'_>, r: &Rule) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    r.exprs.len().hash(&mut h);
    for e in &r.exprs {
        let anonymous = e
            .set_name()
            .is_some_and(|n| r.sets.iter().any(|s| s.name == n));
        let binds = jump_target(e).is_some_and(|n| bound.contains_key(n));
        if anonymous || binds {
            // Names differ between equal rules: the kind of expression only.
            e.name().hash(&mut h);
        } else {
            stateless(e).hash(&mut h);
        }
    }
    (&r.userdata, &r.unknown, r.sets.len()).hash(&mut h);
    // Anonymous sets in any order, their elements in any order.
    let mut sets: u64 = 0;
    for s in &r.sets {
        sets = sets.wrapping_add(rustc_hash::FxBuildHasher.hash_one((
            s.flags,
            s.key_type,
            s.data_type,
            s.elements.len(),
        )));
    }
    sets.hash(&mut h);
    h.finish()
}

/// Chain headers equal; with `strict` false the policy may differ (the
/// kernel updates a base chain's policy in place). Names are compared by
/// the caller (bound chains' names never are).
pub(super) fn chain_header_eq(a: &Chain, b: &Chain, strict: bool) -> bool {
    hook_eq(&a.hook, &b.hook)
        && a.chain_type == b.chain_type
        && (!strict || a.policy == b.policy)
        && chain_user_flags(a) == chain_user_flags(b)
        && a.userdata == b.userdata
        && a.unknown == b.unknown
}

/// Hooks equal: number, priority, and devices as a set.
fn hook_eq(a: &Option<Hook>, b: &Option<Hook>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.num == b.num
                && a.priority == b.priority
                && a.devices.len() == b.devices.len()
                && (a.devices == b.devices || {
                    let mut x: Vec<&String> = a.devices.iter().collect();
                    let mut y: Vec<&String> = b.devices.iter().collect();
                    x.sort_unstable();
                    y.sort_unstable();
                    x == y
                })
        }
        _ => false,
    }
}

/// A chain's flags as a writer sets them: the kernel adds `NFT_CHAIN_BASE`
/// itself to every chain with a hook (compared separately), so a desired
/// base chain built without it is the same chain.
fn chain_user_flags(c: &Chain) -> u32 {
    c.flags.unwrap_or(0) & !NFT_CHAIN_BASE
}

/// Set definitions equal: everything but elements and kernel-only facts
/// (handle, an empty description).
pub(super) fn set_definition_eq(a: &Set, b: &Set) -> bool {
    a.name == b.name && same_kind(a, b) && desc(a) == desc(b) && a.userdata == b.userdata
}

/// Whether the datapath writes this set (`flags dynamic`): its contents
/// are then kernel state.
pub(super) fn is_dynamic(s: &Set) -> bool {
    s.flags & NFT_SET_EVAL != 0
}

/// A set's description; an empty one (the kernel dumps an empty nest for
/// sets created without one) is no description.
fn desc(s: &Set) -> Option<&SetDesc> {
    s.desc
        .as_ref()
        .filter(|d| d.size.is_some() || !d.concat.is_empty() || !d.unknown.is_empty())
}

/// Objects equal (`a` current, `b` desired): type, comment and parameters.
/// A counter's packets and bytes and a quota's consumption are state (a
/// file may give initial values: they are sent when the object is created,
/// never compared). A ct timeout policy compares the states the desired one
/// sets: the kernel fills in its defaults for the others.
pub(super) fn object_eq(a: &Object, b: &Object) -> bool {
    if a.obj_type != b.obj_type || a.userdata != b.userdata || a.unknown != b.unknown {
        return false;
    }
    if let (ObjectData::CtTimeout(cur), ObjectData::CtTimeout(want)) = (&a.data, &b.data) {
        let mut cur = cur.clone();
        if let (Some(have), Some(set)) = (&mut cur.policy, &want.policy) {
            have.0
                .retain(|(state, _)| set.0.iter().any(|(s, _)| s == state));
        }
        return cur == *want;
    }
    object_data_without_state(&a.data) == object_data_without_state(&b.data)
}

fn object_data_without_state(d: &ObjectData) -> ObjectData {
    let mut d = d.clone();
    d.clear_state();
    d
}

pub(super) fn flowtable_eq(a: &Flowtable, b: &Flowtable) -> bool {
    hook_eq(&a.hook, &b.hook) && a.flags == b.flags && a.unknown == b.unknown
}

/// Whether a verdict jumps or goes to a chain.
pub(super) fn verdict_chain(d: &Option<Data>) -> Option<&str> {
    match d {
        Some(Data::Verdict(v @ (Verdict::Jump(_) | Verdict::Goto(_)))) => v.chain(),
        _ => None,
    }
}
