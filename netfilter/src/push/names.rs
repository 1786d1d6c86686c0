//! Names for the anonymous sets a batch creates.
//!
//! nft sends each anonymous set as `__set%d` (`__map%d`) and lets the
//! kernel number it; the kernel then parses every set name of the table with
//! `sscanf` to find a free number, once per new set: loading N anonymous sets
//! costs it N² parses (#20: 100,000 rules with 5% anonymous sets, 32.9 s of
//! kernel time against 1.8 s without them). A name without `%` is only
//! checked for a clash. So a push that knows the table's sets names them
//! itself: a set keeps the name its value gives it when that is free in the
//! table, otherwise it gets `__setN` / `__mapN` with N above every number the
//! table's set names end in; always unique within the batch.
//!
//! What makes a set anonymous is its flag, not its name: such a set is
//! bound to its rule, freed with it and with its table, listed inline by
//! nft, and nft's own later `__set%d` sets are numbered around it (the
//! kernel's scan counts our names). `tests/anonymous_names.rs` checks each
//! of those on the running kernel.

use std::collections::HashSet;

use crate::codec::setref;
use crate::diff::{Op, Patch};
use crate::model::{Rule, Ruleset, Set, Table};

/// The set names taken in each table of a batch, and the next free number.
#[derive(Clone, Debug, Default)]
pub struct AnonNames {
    tables: Vec<(u8, String, Taken)>,
}

#[derive(Clone, Debug, Default)]
struct Taken {
    names: HashSet<String>,
    /// Above every number a taken name ends in.
    next: u32,
}

impl Taken {
    fn take(&mut self, name: &str) {
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        if let Ok(n) = name[name.len() - digits..].parse::<u32>() {
            self.next = self.next.max(n.saturating_add(1));
        }
        self.names.insert(name.to_owned());
    }

    /// `s`'s own name if it is free, else `__setN` / `__mapN`.
    fn name(&mut self, s: &Set) -> String {
        if !s.name.is_empty() && !s.name.contains('%') && !self.names.contains(&s.name) {
            self.take(&s.name);
            return s.name.clone();
        }
        let stem = if s.is_map() { "__map" } else { "__set" };
        loop {
            let name = format!("{stem}{}", self.next);
            self.next = self.next.saturating_add(1);
            if !self.names.contains(&name) {
                self.names.insert(name.clone());
                return name;
            }
        }
    }
}

impl AnonNames {
    /// Names for tables that start empty in the batch (created by it).
    pub fn new() -> Self {
        Self::default()
    }

    /// Names around every set `state` holds: its tables' named sets and
    /// its rules' anonymous sets (the kernel's state of the tables a
    /// patch is pushed to, known or pulled).
    pub fn after(state: &Ruleset) -> Self {
        let mut names = Self::new();
        for t in &state.tables {
            names.take_all(t, true);
        }
        names
    }

    /// Takes the names of `t`'s named sets, and with `anonymous` those of
    /// its rules' anonymous sets too.
    pub(crate) fn take_all(&mut self, t: &Table, anonymous: bool) {
        let taken = self.table(t.family.into(), &t.name);
        for s in &t.sets {
            taken.take(&s.name);
        }
        if anonymous {
            for r in t.chains.iter().flat_map(|c| c.rules.iter()) {
                for s in &r.sets {
                    taken.take(&s.name);
                }
            }
        }
    }

    /// The name `s`, an anonymous set created in `table`, is sent under.
    pub fn name(&mut self, family: u8, table: &str, s: &Set) -> String {
        self.table(family, table).name(s)
    }

    fn table(&mut self, family: u8, table: &str) -> &mut Taken {
        let i = match self
            .tables
            .iter()
            .position(|(f, t, _)| *f == family && t == table)
        {
            Some(i) => i,
            None => {
                self.tables
                    .push((family, table.to_owned(), Taken::default()));
                self.tables.len() - 1
            }
        };
        &mut self.tables[i].2
    }
}

/// Names the anonymous sets `patch`'s added rules (and the rules of the
/// chains they bind) create, around the sets of `state` — the kernel's state
/// of the patch's tables — and the named sets the patch adds. The patch then
/// says what the kernel will hold (a known state built from it carries the
/// kernel's names); encode it with [`super::encode_named_patch`].
pub fn name_patch(patch: &mut Patch, state: &Ruleset) {
    let mut names = AnonNames::after(state);
    for op in &patch.ops {
        if let Op::AddSet { family, table, set } = op {
            names.table((*family).into(), table).take(&set.name);
        }
    }
    for op in &mut patch.ops {
        if let Op::AddRule {
            family,
            table,
            rule,
            bound,
            ..
        } = op
        {
            let f: u8 = (*family).into();
            for r in bound.iter_mut().flat_map(|c| c.rules.iter_mut()) {
                rename(r, |s| names.name(f, table, s));
            }
            rename(rule, |s| names.name(f, table, s));
        }
    }
}

/// Gives each anonymous set of `rule` the name `name` chooses, re-pointing
/// the rule's references (one pass: a new name may be another set's old one).
pub(crate) fn rename(rule: &mut Rule, mut name: impl FnMut(&Set) -> String) {
    if rule.sets.is_empty() {
        return;
    }
    let renames: Vec<(String, String)> = rule
        .sets
        .iter_mut()
        .map(|s| {
            let new = name(s);
            (std::mem::replace(&mut s.name, new.clone()), new)
        })
        .collect();
    if renames.iter().all(|(old, new)| old == new) {
        return;
    }
    for e in rule.exprs.iter_mut() {
        setref::for_each_set_ref(e, |n, _| {
            if let Some((_, new)) = renames.iter().find(|(old, _)| old == n) {
                n.clone_from(new);
            }
        });
    }
}

#[cfg(test)]
mod tests;
