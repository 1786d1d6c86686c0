//! Diff: the minimal patch that turns one ruleset value into another.
//!
//! Objects are matched by identity (family, table, name, and type for named
//! objects) and compared under the one equality of [`eq`]'s contract:
//! kernel-assigned handles and numbering, runtime state (counters, quota
//! usage, element expiry, what the datapath put in dynamic sets) and the
//! order of set elements are never a change. Rules are matched by content
//! with a shortest-edit-script (Myers) per chain after trimming the common
//! prefix and suffix, so untouched rules keep their handles and counters.
//! Set elements are diffed as a delta: none when both sides hold one list
//! (shared, see [`Elements`](crate::model::Elements)), else computed once
//! per pair of shared lists for every namespace making the same change
//! (`delta`). What the kernel cannot change in
//! place is recreated, together with what refers to it (rules, map
//! elements), in the same transaction — so there is never a moment without
//! protection — and the patch says so on each delete it makes for that
//! (`recreate`). Two values are equal exactly when [`diff`] finds nothing
//! ([`equal`]).

mod apply;
mod build;
mod delta;
mod ends;
pub mod eq;
mod patch;
mod script;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::model::{Family, Rules, Ruleset, Table};
pub use apply::share_elements;
use build::{diff_with, PARALLEL_MIN};
use ends::common_ends;
pub use patch::{Op, Patch, Position};

/// Whether two values hold the same configuration: [`diff`] finds nothing
/// to do between them (see [`eq`] for what never counts as a change).
pub fn equal(a: &Ruleset, b: &Ruleset) -> bool {
    diff(a, b).is_empty()
}

/// Computes the patch that turns `current` into `desired`. Tables present
/// in `current` but not in `desired` are deleted: callers pass only the
/// tables they manage.
pub fn diff(current: &Ruleset, desired: &Ruleset) -> Patch {
    diff_with(current, desired, None, PARALLEL_MIN)
}

/// [`diff`], for a `current` known to equal the value `baseline` was
/// taken of: a desired chain whose rules are still `baseline`'s allocation
/// ([`Rules::same`](crate::model::SharedVec::same)) is taken as unchanged
/// without comparing its rules, and in an edited chain the rules at either
/// end whose expressions are still the baseline's are too. The cost is that
/// of what changed since, not of the ruleset; the patch is as small as
/// [`diff`]'s.
///
/// The caller vouches for the premise (the reconciler takes a baseline only
/// of a value it just made the kernel equal to, at a generation it checks);
/// given a false one, changes in skipped chains go unseen.
pub fn diff_from(current: &Ruleset, desired: &Ruleset, baseline: &Baseline) -> Patch {
    diff_with(current, desired, Some(baseline), PARALLEL_MIN)
}

/// [`diff`] on one core whatever the size (for comparing in benchmarks).
#[doc(hidden)]
pub fn diff_single_threaded(current: &Ruleset, desired: &Ruleset) -> Patch {
    diff_with(current, desired, None, usize::MAX)
}

/// The rule lists of a value, by table and chain, held (not copied: they
/// are shared) to recognise them later by allocation. See [`diff_from`].
#[derive(Clone, Debug, Default)]
pub struct Baseline {
    /// By table (a value has few: found by a scan, no key to allocate).
    tables: Vec<(Family, String, HashMap<String, Rules>)>,
}

impl Baseline {
    /// The baseline of `value`; costs one entry per chain, no rule copied.
    pub fn of(value: &Ruleset) -> Self {
        let tables = value
            .tables
            .iter()
            .map(|t| {
                let chains = t
                    .chains
                    .iter()
                    .map(|c| (c.name.clone(), c.rules.clone()))
                    .collect();
                (t.family, t.name.clone(), chains)
            })
            .collect();
        Baseline { tables }
    }

    fn table(&self, t: &Table) -> Option<&HashMap<String, Rules>> {
        self.tables
            .iter()
            .find(|(family, name, _)| *family == t.family && *name == t.name)
            .map(|(_, _, chains)| chains)
    }
}

/// Makes what `value` has in common with `previous` the very allocations
/// of `previous`: a chain equal to its namesake takes its rule list, and in
/// other chains the rules equal at either end take their expressions; a set
/// whose elements are its namesake's, in the same order, takes its list.
/// Only where equal data lives changes. For a value built anew (a fresh compile
/// of an edited ruleset) whose previous version a reconciler holds as its
/// baseline: one comparison here, then every [`diff_from`] of it (one per
/// namespace given it) costs what differs.
pub fn share_unchanged(value: &mut Ruleset, previous: &Ruleset) {
    for t in &mut value.tables {
        let Some(p) = previous
            .tables
            .iter()
            .find(|p| p.family == t.family && p.name == t.name)
        else {
            continue;
        };
        for s in &mut t.sets {
            if let Some(old) = p.set(&s.name).filter(|old| old.elements == s.elements) {
                s.elements = old.elements.clone();
            }
        }
        let before: HashMap<&str, &Rules> = p
            .chains
            .iter()
            .map(|c| (c.name.as_str(), &c.rules))
            .collect();
        for c in &mut t.chains {
            let Some(&old) = before.get(c.name.as_str()) else {
                continue;
            };
            if c.rules == *old {
                c.rules = old.clone();
                continue;
            }
            let (n, m) = (old.len(), c.rules.len());
            let (pre, suf) = common_ends(n, m, |i, j| old[i] == c.rules[j]);
            let pairs = (0..pre)
                .map(|i| (i, i))
                .chain((0..suf).map(|k| (n - 1 - k, m - 1 - k)));
            for (i, j) in pairs {
                c.rules[j].exprs = old[i].exprs.clone();
            }
        }
    }
}
