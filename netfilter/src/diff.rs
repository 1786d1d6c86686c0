//! Diff: the minimal patch that turns one ruleset value into another.
//!
//! Objects are matched by identity (family, table, name) and compared by
//! value, ignoring kernel-assigned handles and runtime state (counters,
//! quota usage, element expiry). Rules are matched by content with a
//! shortest-edit-script (Myers) per chain after trimming the common prefix
//! and suffix, so untouched rules keep their handles and counters. Set
//! elements are diffed as a delta. What the kernel cannot change in place
//! is recreated, together with the rules that reference it, in the same
//! transaction — so there is never a moment without protection.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hash};

use rustc_hash::FxHashSet;

use serde::{Deserialize, Serialize};

use crate::expr::{Data, Expr};
use crate::model::{Chain, Element, Family, Flowtable, Object, Rule, Rules, Ruleset, Set, Table};
use crate::object::ObjectData;
use ends::{common_ends, common_ends_all};

/// Where an added rule goes in its chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// At the end of the chain.
    Append,
    /// Right after the existing rule with this handle.
    After(u64),
    /// Right before the existing rule with this handle.
    Before(u64),
    /// Right after the rule added by this patch with this id.
    AfterAdded(u32),
}

/// One operation of a patch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Op {
    AddTable {
        table: Table,
    },
    UpdateTable {
        table: Table,
    },
    DeleteTable {
        family: Family,
        name: String,
    },
    AddChain {
        family: Family,
        table: String,
        chain: Chain,
    },
    UpdateChain {
        family: Family,
        table: String,
        chain: Chain,
    },
    DeleteChain {
        family: Family,
        table: String,
        name: String,
    },
    AddSet {
        family: Family,
        table: String,
        set: Set,
    },
    DeleteSet {
        family: Family,
        table: String,
        name: String,
    },
    AddElements {
        family: Family,
        table: String,
        set: String,
        elements: Vec<Element>,
    },
    DeleteElements {
        family: Family,
        table: String,
        set: String,
        elements: Vec<Element>,
    },
    AddObject {
        family: Family,
        table: String,
        object: Object,
    },
    DeleteObject {
        family: Family,
        table: String,
        name: String,
        obj_type: u32,
    },
    AddFlowtable {
        family: Family,
        table: String,
        flowtable: Flowtable,
    },
    DeleteFlowtable {
        family: Family,
        table: String,
        name: String,
    },
    /// `id` is this rule's batch-local id (`NFTA_RULE_ID`), so later
    /// additions can be positioned after it.
    AddRule {
        family: Family,
        table: String,
        chain: String,
        rule: Rule,
        position: Position,
        id: u32,
    },
    DeleteRule {
        family: Family,
        table: String,
        chain: String,
        handle: u64,
    },
}

/// An ordered list of operations the kernel accepts in one transaction:
/// nothing deleted while still referenced, nothing used before it exists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Patch {
    pub ops: Vec<Op>,
}

impl Patch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Applies the patch to a value in memory, as the kernel applies it.
    /// `handles` gives the kernel handle of each added rule (by its
    /// batch-local id, from the commit's echo); without one a rule keeps no
    /// handle. Used to keep the kernel's state known after a push without
    /// pulling it again.
    pub fn apply_to(
        &self,
        value: &mut Ruleset,
        handles: &HashMap<u32, u64>,
    ) -> Result<(), ApplyError> {
        let mut hint = 0;
        for op in &self.ops {
            apply_op(value, op, handles, &mut hint)?;
        }
        Ok(())
    }
}

/// A patch that does not fit the value it is applied to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("patch does not apply: {0}")]
pub struct ApplyError(pub String);

fn table_mut<'a>(
    v: &'a mut Ruleset,
    family: Family,
    name: &str,
) -> Result<&'a mut Table, ApplyError> {
    v.tables
        .iter_mut()
        .find(|t| t.family == family && t.name == name)
        .ok_or_else(|| ApplyError(format!("no table {} {name}", family.name())))
}

fn chain_mut<'a>(t: &'a mut Table, name: &str) -> Result<&'a mut Chain, ApplyError> {
    let table = t.name.clone();
    t.chains
        .iter_mut()
        .find(|c| c.name == name)
        .ok_or_else(|| ApplyError(format!("no chain {name} in {table}")))
}

fn set_mut<'a>(t: &'a mut Table, name: &str) -> Result<&'a mut Set, ApplyError> {
    let table = t.name.clone();
    t.sets
        .iter_mut()
        .find(|s| s.name == name)
        .ok_or_else(|| ApplyError(format!("no set {name} in {table}")))
}

/// Index of the rule with handle `h` (unique in a chain), searched outward
/// from `hint`, the index of the rule last touched: a patch's rule ops are
/// usually close together, and a long chain is then not walked whole.
fn find_rule(rules: &[Rule], h: u64, hint: usize) -> Option<usize> {
    let (before, after) = rules.split_at(hint.min(rules.len()));
    let mut forward = after.iter().map(|r| r.handle).enumerate();
    let mut backward = before.iter().map(|r| r.handle).enumerate().rev();
    loop {
        let (f, b) = (forward.next(), backward.next());
        if f.is_none() && b.is_none() {
            return None;
        }
        if let Some((i, _)) = f.filter(|&(_, x)| x == Some(h)) {
            return Some(before.len() + i);
        }
        if let Some((i, _)) = b.filter(|&(_, x)| x == Some(h)) {
            return Some(i);
        }
    }
}

/// Applies one op; `hint` is the index of the rule an op last touched.
fn apply_op(
    v: &mut Ruleset,
    op: &Op,
    handles: &HashMap<u32, u64>,
    hint: &mut usize,
) -> Result<(), ApplyError> {
    match op {
        Op::AddTable { table } => v.tables.push(table.clone()),
        Op::UpdateTable { table } => table_mut(v, table.family, &table.name)?.flags = table.flags,
        Op::DeleteTable { family, name } => v
            .tables
            .retain(|t| !(t.family == *family && &t.name == name)),
        Op::AddChain {
            family,
            table,
            chain,
        } => table_mut(v, *family, table)?.chains.push(chain.clone()),
        Op::UpdateChain {
            family,
            table,
            chain,
        } => {
            let c = chain_mut(table_mut(v, *family, table)?, &chain.name)?;
            c.policy = chain.policy;
        }
        Op::DeleteChain {
            family,
            table,
            name,
        } => table_mut(v, *family, table)?
            .chains
            .retain(|c| &c.name != name),
        Op::AddSet { family, table, set } => table_mut(v, *family, table)?.sets.push(set.clone()),
        Op::DeleteSet {
            family,
            table,
            name,
        } => table_mut(v, *family, table)?
            .sets
            .retain(|s| &s.name != name),
        Op::AddElements {
            family,
            table,
            set,
            elements,
        } => set_mut(table_mut(v, *family, table)?, set)?
            .elements
            .extend(elements.iter().cloned()),
        Op::DeleteElements {
            family,
            table,
            set,
            elements,
        } => {
            let s = set_mut(table_mut(v, *family, table)?, set)?;
            let gone: HashSet<Cow<'_, Element>> = elements.iter().map(normalized_element).collect();
            s.elements
                .retain(|e| !gone.contains(&normalized_element(e)));
        }
        Op::AddObject {
            family,
            table,
            object,
        } => table_mut(v, *family, table)?.objects.push(object.clone()),
        Op::DeleteObject {
            family,
            table,
            name,
            ..
        } => table_mut(v, *family, table)?
            .objects
            .retain(|o| &o.name != name),
        Op::AddFlowtable {
            family,
            table,
            flowtable,
        } => table_mut(v, *family, table)?
            .flowtables
            .push(flowtable.clone()),
        Op::DeleteFlowtable {
            family,
            table,
            name,
        } => table_mut(v, *family, table)?
            .flowtables
            .retain(|f| &f.name != name),
        Op::DeleteRule {
            family,
            table,
            chain,
            handle,
        } => {
            let rules = &mut chain_mut(table_mut(v, *family, table)?, chain)?.rules;
            if let Some(i) = find_rule(rules, *handle, *hint) {
                rules.remove(i);
                *hint = i;
            }
        }
        Op::AddRule {
            family,
            table,
            chain,
            rule,
            position,
            id,
        } => {
            let c = chain_mut(table_mut(v, *family, table)?, chain)?;
            let new_handle = handles.get(id).copied();
            let at = |h: u64| find_rule(&c.rules, h, *hint);
            let index = match position {
                Position::Append => c.rules.len(),
                Position::After(h) => {
                    at(*h).ok_or_else(|| ApplyError(format!("no rule handle {h} in {chain}")))? + 1
                }
                Position::Before(h) => {
                    at(*h).ok_or_else(|| ApplyError(format!("no rule handle {h} in {chain}")))?
                }
                Position::AfterAdded(prev) => {
                    let h = handles
                        .get(prev)
                        .ok_or_else(|| ApplyError(format!("no handle for added rule {prev}")))?;
                    at(*h).ok_or_else(|| ApplyError(format!("no rule handle {h} in {chain}")))? + 1
                }
            };
            let mut r = rule.clone();
            r.handle = new_handle;
            c.rules.insert(index, r);
            *hint = index;
        }
    }
    Ok(())
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
/// other chains the rules equal at either end take their expressions. Only
/// where equal data lives changes. For a value built anew (a fresh compile
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

/// Rules compared, past which a diff's comparisons use both cores (below
/// it, starting a thread costs more than it saves).
const PARALLEL_MIN: usize = 20_000;

/// [`diff`], using both cores when the chains compared hold at least
/// `parallel_min` rules (the patch is the same either way).
fn diff_with(
    current: &Ruleset,
    desired: &Ruleset,
    baseline: Option<&Baseline>,
    parallel_min: usize,
) -> Patch {
    let mut b = Builder {
        parallel_min,
        ..Default::default()
    };
    let cur: HashMap<(Family, &str), &Table> = current
        .tables
        .iter()
        .map(|t| ((t.family, t.name.as_str()), t))
        .collect();
    let want: HashSet<(Family, &str)> = desired
        .tables
        .iter()
        .map(|t| (t.family, t.name.as_str()))
        .collect();
    for t in &current.tables {
        if !want.contains(&(t.family, t.name.as_str())) {
            b.del_tables.push(Op::DeleteTable {
                family: t.family,
                name: t.name.clone(),
            });
        }
    }
    for t in &desired.tables {
        match cur.get(&(t.family, t.name.as_str())) {
            None => b.add_whole_table(t),
            Some(c) => b.table(c, t, baseline.and_then(|base| base.table(t))),
        }
    }
    b.finish()
}

/// Ops gathered by kind, concatenated in an order the kernel accepts.
#[derive(Default)]
struct Builder {
    del_rules: Vec<Op>,
    del_elems: Vec<Op>,
    del_chains: Vec<Op>,
    del_objects: Vec<Op>,
    del_tables: Vec<Op>,
    add_tables: Vec<Op>,
    add_chains: Vec<Op>,
    add_objects: Vec<Op>,
    add_elems: Vec<Op>,
    add_rules: Vec<Op>,
    next_rule_id: u32,
    parallel_min: usize,
}

impl Builder {
    fn finish(self) -> Patch {
        let mut ops = Vec::new();
        for part in [
            self.del_rules,
            self.del_elems,
            self.del_chains,
            self.del_objects,
            self.del_tables,
            self.add_tables,
            self.add_chains,
            self.add_objects,
            self.add_elems,
            self.add_rules,
        ] {
            ops.extend(part);
        }
        Patch { ops }
    }

    fn add_rule(&mut self, t: &Table, chain: &str, rule: &Rule, position: Position) -> u32 {
        self.next_rule_id += 1;
        let id = self.next_rule_id;
        self.add_rules.push(Op::AddRule {
            family: t.family,
            table: t.name.clone(),
            chain: chain.to_owned(),
            rule: without_handle(rule),
            position,
            id,
        });
        id
    }

    fn add_chain_with_rules(&mut self, t: &Table, c: &Chain) {
        self.add_chains.push(Op::AddChain {
            family: t.family,
            table: t.name.clone(),
            chain: chain_header(c),
        });
        for r in &c.rules {
            self.add_rule(t, &c.name, r, Position::Append);
        }
    }

    fn add_set(&mut self, t: &Table, s: &Set) {
        let mut set = s.clone();
        set.handle = None;
        self.add_objects.push(Op::AddSet {
            family: t.family,
            table: t.name.clone(),
            set,
        });
    }

    fn add_object(&mut self, t: &Table, o: &Object) {
        let mut object = o.clone();
        object.handle = None;
        self.add_objects.push(Op::AddObject {
            family: t.family,
            table: t.name.clone(),
            object,
        });
    }

    fn add_flowtable(&mut self, t: &Table, f: &Flowtable) {
        let mut flowtable = f.clone();
        flowtable.handle = None;
        self.add_objects.push(Op::AddFlowtable {
            family: t.family,
            table: t.name.clone(),
            flowtable,
        });
    }

    fn add_whole_table(&mut self, t: &Table) {
        self.add_tables.push(Op::AddTable {
            table: table_header(t),
        });
        for s in &t.sets {
            self.add_set(t, s);
        }
        for o in &t.objects {
            self.add_object(t, o);
        }
        for f in &t.flowtables {
            self.add_flowtable(t, f);
        }
        for c in &t.chains {
            self.add_chain_with_rules(t, c);
        }
    }

    fn table(&mut self, cur: &Table, want: &Table, base: Option<&HashMap<String, Rules>>) {
        if cur.userdata != want.userdata || cur.unknown != want.unknown {
            // The kernel cannot change a table's userdata: recreate it whole,
            // in the same transaction.
            self.del_tables.push(Op::DeleteTable {
                family: cur.family,
                name: cur.name.clone(),
            });
            self.add_whole_table(want);
            return;
        }
        if cur.flags != want.flags {
            self.add_tables.push(Op::UpdateTable {
                table: table_header(want),
            });
        }
        let fam = want.family;
        let tname = || want.name.clone();
        // Things recreated here force the rules that reference them to be
        // deleted first and added back after.
        let mut recreated_sets: HashSet<&str> = HashSet::new();
        let mut recreated_objects: HashSet<&str> = HashSet::new();
        let mut recreated_chains: HashSet<&str> = HashSet::new();

        for p in pair_by_name(&cur.sets, &want.sets, |s| &s.name) {
            match p {
                Pair::Gone(c) => self.del_objects.push(Op::DeleteSet {
                    family: fam,
                    table: tname(),
                    name: c.name.clone(),
                }),
                Pair::New(s) => self.add_set(want, s),
                Pair::Both(c, s) if set_definition_eq(c, s) => self.elements(want, c, s),
                Pair::Both(c, s) => {
                    recreated_sets.insert(&s.name);
                    self.del_objects.push(Op::DeleteSet {
                        family: fam,
                        table: tname(),
                        name: c.name.clone(),
                    });
                    self.add_set(want, s);
                }
            }
        }
        for p in pair_by_name(&cur.objects, &want.objects, |o| &o.name) {
            let delete = |c: &Object| Op::DeleteObject {
                family: fam,
                table: tname(),
                name: c.name.clone(),
                obj_type: c.obj_type,
            };
            match p {
                Pair::Gone(c) => self.del_objects.push(delete(c)),
                Pair::New(o) => self.add_object(want, o),
                Pair::Both(c, o) if object_eq(c, o) => {}
                Pair::Both(c, o) => {
                    recreated_objects.insert(&o.name);
                    self.del_objects.push(delete(c));
                    self.add_object(want, o);
                }
            }
        }
        for p in pair_by_name(&cur.flowtables, &want.flowtables, |f| &f.name) {
            let delete = |c: &Flowtable| Op::DeleteFlowtable {
                family: fam,
                table: tname(),
                name: c.name.clone(),
            };
            match p {
                Pair::Gone(c) => self.del_objects.push(delete(c)),
                Pair::New(f) => self.add_flowtable(want, f),
                Pair::Both(c, f) if flowtable_eq(c, f) => {}
                Pair::Both(c, f) => {
                    self.del_objects.push(delete(c));
                    self.add_flowtable(want, f);
                }
            }
        }
        // Decide chain fates first: a recreated chain makes rules jumping
        // to it dependents, wherever they are.
        let mut kept: Vec<(&Chain, &Chain)> = Vec::new();
        for p in pair_by_name(&cur.chains, &want.chains, |c| &c.name) {
            let delete = |c: &Chain| Op::DeleteChain {
                family: fam,
                table: tname(),
                name: c.name.clone(),
            };
            match p {
                Pair::Gone(c) => self.del_chains.push(delete(c)),
                Pair::New(w) => self.add_chain_with_rules(want, w),
                Pair::Both(c, w) if chain_header_eq(c, w, true) => kept.push((c, w)),
                Pair::Both(c, w) if chain_header_eq(c, w, false) => {
                    // Only the policy differs: the kernel updates it in place.
                    self.add_chains.push(Op::UpdateChain {
                        family: fam,
                        table: tname(),
                        chain: chain_header(w),
                    });
                    kept.push((c, w));
                }
                Pair::Both(c, w) => {
                    recreated_chains.insert(&w.name);
                    self.del_chains.push(delete(c));
                    self.add_chain_with_rules(want, w);
                }
            }
        }
        let deps = Dependents {
            sets: &recreated_sets,
            objects: &recreated_objects,
            chains: &recreated_chains,
        };
        // Rule lists still shared with the current value, or with the
        // baseline it equals, are unchanged — unless something they may
        // reference is recreated, which forces their rules out and back.
        let nothing_recreated = recreated_sets.is_empty()
            && recreated_objects.is_empty()
            && recreated_chains.is_empty();
        let unchanged = |c: &Chain, w: &Chain| {
            nothing_recreated
                && c.rules.len() == w.rules.len()
                && (c.rules.same(&w.rules)
                    || base
                        .and_then(|b| b.get(&w.name))
                        .is_some_and(|r| r.same(&w.rules)))
        };
        kept.retain(|(c, w)| !unchanged(c, w));
        // Within an edited chain, the rules at either end that are still
        // the baseline's (same expressions, by allocation) are unchanged
        // too: the state has them at the same places, as it equals the
        // baseline rule for rule.
        let shared_ends: Vec<(usize, usize)> = kept
            .iter()
            .map(|(c, w)| {
                let b = base.and_then(|b| b.get(&w.name));
                match b {
                    Some(b) if nothing_recreated && b.len() == c.rules.len() => {
                        common_ends(b.len(), w.rules.len(), |i, j| {
                            same_allocation(&b[i], &w.rules[j])
                        })
                    }
                    _ => (0, 0),
                }
            })
            .collect();
        // The chains' common ends next, all at once (on both cores when
        // large): they are nearly all of the work.
        let lens: Vec<(usize, usize)> = kept
            .iter()
            .zip(&shared_ends)
            .map(|((c, w), (pre, suf))| (c.rules.len() - pre - suf, w.rules.len() - pre - suf))
            .collect();
        let ends = common_ends_all(&lens, self.parallel_min, |k, i, j| {
            let (c, w) = kept[k];
            let skip = shared_ends[k].0;
            same_rule(&deps, &c.rules[skip + i], &w.rules[skip + j])
        });
        for (((c, w), ends), shared) in kept.into_iter().zip(ends).zip(shared_ends) {
            let ends = (shared.0 + ends.0, shared.1 + ends.1);
            self.rules(want, c, w, &deps, ends);
        }
    }

    fn elements(&mut self, t: &Table, cur: &Set, want: &Set) {
        // Element lists usually agree but for a few elements: walk the
        // common prefix and suffix in order, and hash only what is between.
        let (a, b) = (&cur.elements[..], &want.elements[..]);
        let same =
            |x: &Element, y: &Element| x == y || normalized_element(x) == normalized_element(y);
        let (pre, suf) = common_ends(a.len(), b.len(), |i, j| same(&a[i], &b[j]));
        let (a, b) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
        let norm_cur: Vec<Cow<'_, Element>> = a.iter().map(normalized_element).collect();
        let norm_want: Vec<Cow<'_, Element>> = b.iter().map(normalized_element).collect();
        let have: FxHashSet<&Element> = norm_cur.iter().map(|e| e.as_ref()).collect();
        let wanted: FxHashSet<&Element> = norm_want.iter().map(|e| e.as_ref()).collect();
        let removed: Vec<Element> = a
            .iter()
            .zip(&norm_cur)
            .filter(|(_, n)| !wanted.contains(n.as_ref()))
            .map(|(e, _)| e.clone())
            .collect();
        let added: Vec<Element> = b
            .iter()
            .zip(&norm_want)
            .filter(|(_, n)| !have.contains(n.as_ref()))
            .map(|(e, _)| e.clone())
            .collect();
        if !removed.is_empty() {
            self.del_elems.push(Op::DeleteElements {
                family: t.family,
                table: t.name.clone(),
                set: want.name.clone(),
                elements: removed,
            });
        }
        if !added.is_empty() {
            self.add_elems.push(Op::AddElements {
                family: t.family,
                table: t.name.clone(),
                set: want.name.clone(),
                elements: added,
            });
        }
    }

    /// The rule ops of a kept chain, given the common ends of its rules
    /// (see [`same_rule`]).
    fn rules(
        &mut self,
        t: &Table,
        cur: &Chain,
        want: &Chain,
        deps: &Dependents<'_>,
        (pre, suf): (usize, usize),
    ) {
        let (a, b) = (&cur.rules[..], &want.rules[..]);
        // Chains usually agree but for a few rules: the common ends were
        // compared rule by rule, in order; hash only the window between them.
        // Everything outside the window is kept: only the window is walked.
        let (n, m) = (a.len(), b.len());
        let (wa, wb) = (&a[pre..n - suf], &b[pre..m - suf]);
        let mut kept_cur = vec![false; wa.len()];
        let mut match_of_want: Vec<Option<usize>> = vec![None; wb.len()];
        if !wa.is_empty() && !wb.is_empty() {
            let cur_n: Vec<Cow<'_, Rule>> = wa.iter().map(normalized_rule).collect();
            let want_n: Vec<Cow<'_, Rule>> = wb.iter().map(normalized_rule).collect();
            let hasher = rustc_hash::FxBuildHasher;
            let cur_h: Vec<u64> = cur_n.iter().map(|r| hasher.hash_one(RuleKey(r))).collect();
            let want_h: Vec<u64> = want_n.iter().map(|r| hasher.hash_one(RuleKey(r))).collect();
            let forced: Vec<bool> = wb.iter().map(|r| deps.touches(r)).collect();
            // A hash only rules a pair out; equal hashes are always checked
            // by full comparison (a collision must not hide a change).
            let eq = |i: usize, j: usize| {
                cur_h[i] == want_h[j] && !forced[j] && RuleKey(&cur_n[i]) == RuleKey(&want_n[j])
            };
            for (i, j) in lcs(wa.len(), wb.len(), eq) {
                kept_cur[i] = true;
                match_of_want[j] = Some(i);
            }
        }
        for (r, _) in wa.iter().zip(&kept_cur).filter(|(_, &kept)| !kept) {
            if let Some(handle) = r.handle {
                self.del_rules.push(Op::DeleteRule {
                    family: t.family,
                    table: t.name.clone(),
                    chain: cur.name.clone(),
                    handle,
                });
            }
        }
        // Position each new rule relative to its nearest kept neighbour
        // (past the window's ends: the first of the suffix, the last of
        // the prefix).
        let mut next_kept: Vec<Option<u64>> = vec![None; wb.len() + 1];
        next_kept[wb.len()] = a.get(n - suf).and_then(|r| r.handle);
        for j in (0..wb.len()).rev() {
            next_kept[j] = match match_of_want[j] {
                Some(i) => wa[i].handle,
                None => next_kept[j + 1],
            };
        }
        let mut anchor: Option<Position> = pre
            .checked_sub(1)
            .and_then(|i| a[i].handle.map(Position::After));
        for (j, r) in wb.iter().enumerate() {
            if let Some(i) = match_of_want[j] {
                anchor = wa[i].handle.map(Position::After);
                continue;
            }
            let position = match anchor {
                Some(p) => p,
                None => next_kept[j]
                    .map(Position::Before)
                    .unwrap_or(Position::Append),
            };
            let id = self.add_rule(t, &want.name, r, position);
            anchor = Some(Position::AfterAdded(id));
        }
    }
}

/// Whether a current rule stays as a desired one. A rule referencing
/// something recreated never does: it must be deleted before its
/// dependency and added back after.
fn same_rule(deps: &Dependents<'_>, cur: &Rule, want: &Rule) -> bool {
    !deps.touches(want) && rule_eq(cur, want)
}

/// An item of the current or desired value, matched with its namesake.
enum Pair<'a, T> {
    /// Only current: to delete.
    Gone(&'a T),
    /// Only desired: to add.
    New(&'a T),
    /// Both (current, desired).
    Both(&'a T, &'a T),
}

/// Pairs items by name: first every current item not desired, then every
/// desired item with its current namesake, in desired order.
fn pair_by_name<'a, T>(
    cur: &'a [T],
    want: &'a [T],
    name: impl Fn(&T) -> &String,
) -> Vec<Pair<'a, T>> {
    let current: HashMap<&str, &T> = cur.iter().map(|c| (name(c).as_str(), c)).collect();
    let wanted: HashSet<&str> = want.iter().map(|w| name(w).as_str()).collect();
    let mut out: Vec<Pair<'a, T>> = cur
        .iter()
        .filter(|c| !wanted.contains(name(c).as_str()))
        .map(Pair::Gone)
        .collect();
    out.extend(want.iter().map(|w| {
        current
            .get(name(w).as_str())
            .map_or(Pair::New(w), |c| Pair::Both(c, w))
    }));
    out
}

struct Dependents<'a> {
    sets: &'a HashSet<&'a str>,
    objects: &'a HashSet<&'a str>,
    chains: &'a HashSet<&'a str>,
}

impl Dependents<'_> {
    fn touches(&self, rule: &Rule) -> bool {
        if self.sets.is_empty() && self.objects.is_empty() && self.chains.is_empty() {
            return false;
        }
        let jumps_to_recreated = |d: &Option<Data>| match d {
            Some(Data::Verdict(v)) => v.chain().is_some_and(|c| self.chains.contains(c)),
            _ => false,
        };
        let mut hit = rule
            .exprs
            .iter()
            .any(|e| matches!(e, Expr::Immediate(i) if jumps_to_recreated(&i.data)));
        for s in &rule.sets {
            for el in &s.elements {
                hit |= jumps_to_recreated(&el.data);
                hit |= el
                    .objref
                    .as_deref()
                    .is_some_and(|o| self.objects.contains(o));
            }
        }
        hit || rule.exprs.iter().any(|e| {
            e.set_name()
                .is_some_and(|n| self.sets.contains(n) || self.objects.contains(n))
        })
    }
}

/// Pairs (i, j) of equal items in a longest common subsequence of two
/// sequences, in order: common prefix and suffix first (linear), then
/// Myers' O((N+M)·D) on the rest. Past `MAX_EDITS` edits the middle is
/// treated as replaced whole, which is still a correct patch.
fn lcs(n: usize, m: usize, eq: impl Fn(usize, usize) -> bool) -> Vec<(usize, usize)> {
    const MAX_EDITS: usize = 2048;
    let (pre, suf) = common_ends(n, m, &eq);
    let mut out: Vec<(usize, usize)> = (0..pre).map(|i| (i, i)).collect();
    let (a0, b0) = (pre, pre);
    let (an, bn) = (n - pre - suf, m - pre - suf);
    if an > 0 && bn > 0 {
        if let Some(mid) = myers(an, bn, MAX_EDITS, |x, y| eq(a0 + x, b0 + y)) {
            out.extend(mid.into_iter().map(|(x, y)| (a0 + x, b0 + y)));
        }
    }
    out.extend((0..suf).map(|k| (n - suf + k, m - suf + k)));
    out
}

/// Myers' greedy shortest edit script; returns matched pairs, or `None`
/// when more than `max_d` edits are needed.
fn myers(
    n: usize,
    m: usize,
    max_d: usize,
    eq: impl Fn(usize, usize) -> bool,
) -> Option<Vec<(usize, usize)>> {
    let (n_i, m_i) = (n as isize, m as isize);
    // trace[d][k + d] = furthest x on diagonal k after d edits.
    let mut trace: Vec<Vec<isize>> = Vec::new();
    let max_d = max_d.min(n + m);
    for d in 0..=max_d as isize {
        let mut v = vec![0isize; (2 * d + 1) as usize];
        let mut done = None;
        for k in (-d..=d).step_by(2) {
            let prev = |kk: isize| trace[(d - 1) as usize][(kk + d - 1) as usize];
            let mut x = if d == 0 {
                0
            } else if k == -d || (k != d && prev(k - 1) < prev(k + 1)) {
                prev(k + 1)
            } else {
                prev(k - 1) + 1
            };
            let mut y = x - k;
            while x < n_i && y < m_i && eq(x as usize, y as usize) {
                x += 1;
                y += 1;
            }
            v[(k + d) as usize] = x;
            if x >= n_i && y >= m_i {
                done = Some(k);
                break;
            }
        }
        trace.push(v);
        if let Some(mut k) = done {
            // Walk back, collecting the diagonal (matching) moves.
            let mut pairs = Vec::new();
            let mut x = n_i;
            let mut y = m_i;
            let mut d = d;
            while d > 0 {
                let prev = |kk: isize| trace[(d - 1) as usize][(kk + d - 1) as usize];
                let pk = if k == -d || (k != d && prev(k - 1) < prev(k + 1)) {
                    k + 1
                } else {
                    k - 1
                };
                let px = prev(pk);
                let py = px - pk;
                let (sx, sy) = if pk == k + 1 {
                    (px, py + 1)
                } else {
                    (px + 1, py)
                };
                while x > sx && y > sy {
                    x -= 1;
                    y -= 1;
                    pairs.push((x as usize, y as usize));
                }
                x = px;
                y = py;
                k = pk;
                d -= 1;
            }
            while x > 0 && y > 0 {
                x -= 1;
                y -= 1;
                pairs.push((x as usize, y as usize));
            }
            pairs.reverse();
            return Some(pairs);
        }
    }
    None
}

fn without_handle(r: &Rule) -> Rule {
    let mut r = r.clone();
    r.handle = None;
    r
}

fn table_header(t: &Table) -> Table {
    let mut h = Table::new(t.family, t.name.clone());
    h.flags = t.flags;
    h.userdata = t.userdata.clone();
    h.unknown = t.unknown.clone();
    h
}

fn chain_header(c: &Chain) -> Chain {
    Chain {
        rules: Default::default(),
        handle: None,
        ..c.clone()
    }
}

/// Chain headers equal; with `strict` false the policy may differ (the
/// kernel updates a base chain's policy in place).
fn chain_header_eq(a: &Chain, b: &Chain, strict: bool) -> bool {
    a.hook == b.hook
        && a.chain_type == b.chain_type
        && (!strict || a.policy == b.policy)
        && chain_user_flags(a) == chain_user_flags(b)
        && a.userdata == b.userdata
        && a.unknown == b.unknown
}

/// A chain's flags as a writer sets them: the kernel adds `NFT_CHAIN_BASE`
/// itself to every chain with a hook (compared separately), so a desired
/// base chain built without it is the same chain.
fn chain_user_flags(c: &Chain) -> u32 {
    c.flags.unwrap_or(0) & !crate::sys::NFT_CHAIN_BASE
}

/// Set definitions equal: everything but elements and kernel-only facts
/// (handle, use count). Field by field, so a million-element
/// set is never cloned.
fn set_definition_eq(a: &Set, b: &Set) -> bool {
    a.name == b.name
        && a.flags == b.flags
        && a.key_type == b.key_type
        && a.key_len == b.key_len
        && a.data_type == b.data_type
        && a.data_len == b.data_len
        && a.obj_type == b.obj_type
        && a.policy == b.policy
        && desc(a) == desc(b)
        && a.timeout == b.timeout
        && a.gc_interval == b.gc_interval
        && a.userdata == b.userdata
        && a.exprs == b.exprs
        && a.unknown == b.unknown
}

/// A set's description; an empty one (the kernel dumps an empty nest for
/// sets created without one) is no description.
fn desc(s: &Set) -> Option<&crate::model::SetDesc> {
    s.desc
        .as_ref()
        .filter(|d| d.size.is_some() || !d.concat.is_empty() || !d.unknown.is_empty())
}

fn object_eq(a: &Object, b: &Object) -> bool {
    a.obj_type == b.obj_type
        && a.userdata == b.userdata
        && a.unknown == b.unknown
        && object_data_without_state(&a.data) == object_data_without_state(&b.data)
}

/// An object's parameters without its runtime state (counter values, quota use).
fn object_data_without_state(d: &ObjectData) -> ObjectData {
    let mut d = d.clone();
    d.clear_state();
    d
}

fn flowtable_eq(a: &Flowtable, b: &Flowtable) -> bool {
    a.hook == b.hook && a.flags == b.flags && a.unknown == b.unknown
}

/// A rule as compared: its content without handle, runtime state, or the
/// kernel's `__set%d` numbering of its anonymous sets (named by position).
/// Borrowed unless the rule has anonymous sets (rare): runtime state is
/// skipped when hashing and comparing instead (see [`RuleKey`]).
fn normalized_rule(r: &Rule) -> Cow<'_, Rule> {
    if r.sets.is_empty() {
        return Cow::Borrowed(r);
    }
    let mut n = r.clone();
    let anon: HashMap<String, usize> = n
        .sets
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    for e in &mut n.exprs {
        if let Some((name, id)) = e.set_refs_mut() {
            if let Some(i) = name.as_deref().and_then(|s| anon.get(s)) {
                *name = Some(format!("anonymous#{i}"));
                *id = None;
            }
        }
    }
    for (i, s) in n.sets.iter_mut().enumerate() {
        s.name = format!("anonymous#{i}");
        s.handle = None;
        // nft's hints for listing (key byte order, size) do not change what
        // the set matches; anonymous sets compare by content.
        s.userdata = None;
        s.desc = None;
        for el in &mut s.elements {
            *el = normalized_element(el).into_owned();
        }
    }
    Cow::Owned(n)
}

/// An expression without its runtime state: borrowed unless it has some
/// (counters and the like are small and own no heap data).
fn stateless(e: &Expr) -> Cow<'_, Expr> {
    // Expressions whose attributes include runtime state.
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

/// What a rule does, for hashing and comparing: its expressions without
/// runtime state, its userdata, anonymous sets and unknown attributes —
/// not its handle.
struct RuleKey<'a>(&'a Rule);

impl Hash for RuleKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let r = self.0;
        r.exprs.len().hash(h);
        for e in &r.exprs {
            stateless(e).hash(h);
        }
        (&r.userdata, &r.sets, &r.unknown).hash(h);
    }
}

impl PartialEq for RuleKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0, other.0);
        a.exprs.len() == b.exprs.len()
            && a.userdata == b.userdata
            && a.unknown == b.unknown
            && a.sets == b.sets
            && (a.exprs.same(&b.exprs)
                || a.exprs
                    .iter()
                    .zip(&b.exprs)
                    .all(|(x, y)| x == y || stateless(x) == stateless(y)))
    }
}

/// Rules whose expressions are one allocation (one cloned from the other)
/// and whose other parts are equal: equal, without reading an expression.
fn same_allocation(a: &Rule, b: &Rule) -> bool {
    a.exprs.same(&b.exprs) && a.userdata == b.userdata && a.sets == b.sets && a.unknown == b.unknown
}

/// Rules equal as compared (see [`RuleKey`]). Equal as they are implies
/// equal normalized (normalizing is a function of the content), so the
/// anonymous sets' clone is paid only when they differ as they are.
fn rule_eq(a: &Rule, b: &Rule) -> bool {
    RuleKey(a) == RuleKey(b)
        || ((!a.sets.is_empty() || !b.sets.is_empty())
            && RuleKey(&normalized_rule(a)) == RuleKey(&normalized_rule(b)))
}

fn normalized_element(e: &Element) -> Cow<'_, Element> {
    if e.expiration.is_none() && e.exprs.is_empty() {
        return Cow::Borrowed(e);
    }
    let mut n = e.clone();
    n.expiration = None;
    n.exprs.iter_mut().for_each(Expr::clear_state);
    Cow::Owned(n)
}

impl Patch {
    /// One line per operation in nft syntax (`+ add rule inet fw input tcp
    /// dport 22 accept`), rules printed in the context of `desired`'s
    /// tables (so lookups into named sets and maps print fully).
    pub fn render(&self, desired: &Ruleset) -> String {
        let mut out = String::new();
        for op in &self.ops {
            out.push_str(
                &OpLine {
                    op,
                    context: Some(desired),
                }
                .to_string(),
            );
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Patch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for op in &self.ops {
            writeln!(f, "{op}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        OpLine {
            op: self,
            context: None,
        }
        .fmt(f)
    }
}

/// An operation printed with (or without) the tables it applies to.
struct OpLine<'a> {
    op: &'a Op,
    context: Option<&'a Ruleset>,
}

impl fmt::Display for OpLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fam = |fam: &Family| fam.name();
        match self.op {
            Op::AddTable { table } => {
                write!(f, "+ add table {} {}", fam(&table.family), table.name)
            }
            Op::UpdateTable { table } => write!(
                f,
                "~ add table {} {} {{ flags {:#x} }}",
                fam(&table.family),
                table.name,
                table.flags
            ),
            Op::DeleteTable { family, name } => write!(f, "- delete table {} {name}", fam(family)),
            Op::AddChain {
                family,
                table,
                chain,
            } => write!(f, "+ add chain {} {table} {}", fam(family), chain.name),
            Op::UpdateChain {
                family,
                table,
                chain,
            } => {
                write!(
                    f,
                    "~ add chain {} {table} {} {{ policy {} }}",
                    fam(family),
                    chain.name,
                    policy_name(chain.policy)
                )
            }
            Op::DeleteChain {
                family,
                table,
                name,
            } => write!(f, "- delete chain {} {table} {name}", fam(family)),
            Op::AddSet { family, table, set } => {
                write!(
                    f,
                    "+ add {} {} {table} {}",
                    if set.is_map() { "map" } else { "set" },
                    fam(family),
                    set.name
                )?;
                if !set.elements.is_empty() {
                    write!(f, " ({} elements)", set.elements.len())?;
                }
                Ok(())
            }
            Op::DeleteSet {
                family,
                table,
                name,
            } => write!(f, "- delete set {} {table} {name}", fam(family)),
            Op::AddElements {
                family,
                table,
                set,
                elements,
            } => {
                write!(
                    f,
                    "+ add element {} {table} {set} ({} elements)",
                    fam(family),
                    elements.len()
                )
            }
            Op::DeleteElements {
                family,
                table,
                set,
                elements,
            } => {
                write!(
                    f,
                    "- delete element {} {table} {set} ({} elements)",
                    fam(family),
                    elements.len()
                )
            }
            Op::AddObject {
                family,
                table,
                object,
            } => write!(f, "+ add object {} {table} {}", fam(family), object.name),
            Op::DeleteObject {
                family,
                table,
                name,
                ..
            } => write!(f, "- delete object {} {table} {name}", fam(family)),
            Op::AddFlowtable {
                family,
                table,
                flowtable,
            } => write!(
                f,
                "+ add flowtable {} {table} {}",
                fam(family),
                flowtable.name
            ),
            Op::DeleteFlowtable {
                family,
                table,
                name,
            } => write!(f, "- delete flowtable {} {table} {name}", fam(family)),
            Op::AddRule {
                family,
                table,
                chain,
                rule,
                position,
                ..
            } => {
                let verb = match position {
                    Position::Before(_) => "insert",
                    _ => "add",
                };
                write!(f, "+ {verb} rule {} {table} {chain}", fam(family))?;
                match position {
                    Position::After(h) | Position::Before(h) => write!(f, " position {h}")?,
                    _ => {}
                }
                let empty;
                let context = match self.context.and_then(|c| {
                    c.tables
                        .iter()
                        .find(|t| t.family == *family && &t.name == table)
                }) {
                    Some(t) => t,
                    None => {
                        empty = Table::new(*family, table.clone());
                        &empty
                    }
                };
                let text = crate::print::rule(
                    *family,
                    context,
                    rule,
                    &crate::print::PrintOptions::default(),
                );
                write!(f, " {text}")
            }
            Op::DeleteRule {
                family,
                table,
                chain,
                handle,
            } => write!(
                f,
                "- delete rule {} {table} {chain} handle {handle}",
                fam(family)
            ),
        }
    }
}

fn policy_name(p: Option<u32>) -> &'static str {
    match p {
        Some(0) => "drop",
        _ => "accept",
    }
}

mod ends;
#[cfg(test)]
mod tests;
