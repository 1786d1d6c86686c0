//! Diff: the minimal patch that turns one ruleset value into another.
//!
//! Objects are matched by identity (family, table, name, and type for named
//! objects) and compared under the one equality of [`eq`]'s contract:
//! kernel-assigned handles and numbering, runtime state (counters, quota
//! usage, element expiry, what the datapath put in dynamic sets) and the
//! order of set elements are never a change. Rules are matched by content
//! with a shortest-edit-script (Myers) per chain after trimming the common
//! prefix and suffix, so untouched rules keep their handles and counters.
//! Set elements are diffed as a delta. What the kernel cannot change in
//! place is recreated, together with what refers to it (rules, map
//! elements), in the same transaction — so there is never a moment without
//! protection — and the patch says so on each delete it makes for that
//! (`recreate`). Two values are equal exactly when [`diff`] finds nothing
//! ([`equal`]).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;

use rustc_hash::FxHashSet;

use serde::{Deserialize, Serialize};

use crate::codec::setref::jump_target;
use crate::expr::{Data, Expr};
use crate::model::{Chain, Element, Family, Flowtable, Object, Rule, Rules, Ruleset, Set, Table};
use crate::object::ObjectData;
use ends::{common_ends, common_ends_all};
pub(crate) use eq::is_binding;
use eq::{
    bound_chains, chain_header_eq, elements_eq, flowtable_eq, is_dynamic, normalized_element,
    object_eq, rule_eq, rule_hash, set_definition_eq, verdict_chain, Bound, Sides,
};

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
        /// Why, when the table is added back in the same patch (what it
        /// held is lost).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
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
    /// Deletes every rule of a chain (`flush chain`): a chain about to go
    /// first lets go of the sets, objects and chains its rules use.
    FlushChain {
        family: Family,
        table: String,
        chain: String,
    },
    DeleteChain {
        family: Family,
        table: String,
        name: String,
        /// Why, when the chain is added back in the same patch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
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
        /// Why, when the set is added back in the same patch (its elements,
        /// and their counters and timeouts, start over).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
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
        /// Why, when the elements are added back in the same patch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
    },
    AddObject {
        family: Family,
        table: String,
        object: Object,
    },
    /// Changes an object's parameters in place, keeping its state (the
    /// kernel updates quotas and synproxy objects so; a quota keeps what it
    /// has used).
    UpdateObject {
        family: Family,
        table: String,
        object: Object,
    },
    DeleteObject {
        family: Family,
        table: String,
        name: String,
        obj_type: u32,
        /// Why, when the object is added back in the same patch (its
        /// counter or quota state starts over).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
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
        /// Why, when the flowtable is added back in the same patch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
    },
    /// `id` is this rule's batch-local id (`NFTA_RULE_ID`), so later
    /// additions can be positioned after it. `bound`: the chains the rule
    /// binds (`jump { … }`, and those their rules bind, innermost first),
    /// with their rules — created with it, gone with it.
    AddRule {
        family: Family,
        table: String,
        chain: String,
        rule: Rule,
        position: Position,
        id: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        bound: Vec<Chain>,
    },
    DeleteRule {
        family: Family,
        table: String,
        chain: String,
        handle: u64,
        /// Why, when the same rule is added back in the same patch (its
        /// counters start over).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
    },
}

impl Op {
    /// Why this operation deletes something the same patch adds back,
    /// losing the kernel state it held; `None` for every other operation.
    pub fn recreate(&self) -> Option<&str> {
        match self {
            Op::DeleteTable { recreate, .. }
            | Op::DeleteChain { recreate, .. }
            | Op::DeleteSet { recreate, .. }
            | Op::DeleteElements { recreate, .. }
            | Op::DeleteObject { recreate, .. }
            | Op::DeleteFlowtable { recreate, .. }
            | Op::DeleteRule { recreate, .. } => recreate.as_deref(),
            _ => None,
        }
    }
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
    /// Operations that delete something to add it back (see [`Op::recreate`]).
    pub fn recreated(&self) -> usize {
        self.ops.iter().filter(|o| o.recreate().is_some()).count()
    }

    /// Applies the patch to a value in memory, as the kernel applies it.
    /// `handles` gives the kernel handle of each added rule (by its
    /// batch-local id, from the commit's echo); without one a rule keeps no
    /// handle. Used to keep the kernel's state known after a push without
    /// pulling it again.
    ///
    /// A chain bound to an added rule keeps the name the desired value gave
    /// it (the kernel numbers it itself; bound chains' names are no part of
    /// equality), made unique in its table if another chain has it.
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

/// Adds the chains an added rule binds to its table, each under a name no
/// chain there has (see [`Patch::apply_to`]), and points the rule and the
/// chains' rules at those names.
fn add_bound(t: &mut Table, bound: &[Chain], rule: &mut Rule) {
    let mut renamed: HashMap<&str, String> = HashMap::new();
    let repoint = |r: &mut Rule, renamed: &HashMap<&str, String>| {
        for e in r.exprs.iter_mut() {
            if let Expr::Immediate(i) = e {
                if let Some(Data::Verdict(v)) = &mut i.data {
                    if let Some(c) = v.chain_mut() {
                        if let Some(n) = renamed.get(c.as_str()) {
                            c.clone_from(n);
                        }
                    }
                }
            }
        }
    };
    for c in bound {
        let name = if t.chains.iter().any(|x| x.name == c.name) {
            (1..)
                .map(|k| format!("{}~{k}", c.name))
                .find(|n| t.chains.iter().all(|x| &x.name != n))
                .expect("a free name")
        } else {
            c.name.clone()
        };
        let mut c2 = c.clone();
        c2.name.clone_from(&name);
        for r in c2.rules.iter_mut() {
            repoint(r, &renamed);
        }
        renamed.insert(&c.name, name);
        t.chains.push(c2);
    }
    repoint(rule, &renamed);
}

/// Removes the chains `rule` binds, and theirs: the kernel deletes a bound
/// chain with the rule binding it.
fn drop_bound(t: &mut Table, rule: &Rule) {
    for target in rule.exprs.iter().filter_map(jump_target) {
        if let Some(i) = t
            .chains
            .iter()
            .position(|c| c.name == target && is_binding(c))
        {
            let c = t.chains.remove(i);
            for r in c.rules.iter() {
                drop_bound(t, r);
            }
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
        Op::DeleteTable { family, name, .. } => v
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
        Op::FlushChain {
            family,
            table,
            chain,
        } => {
            let t = table_mut(v, *family, table)?;
            let gone: Vec<Rule> = std::mem::take(&mut *chain_mut(t, chain)?.rules).to_vec();
            for r in &gone {
                drop_bound(t, r);
            }
        }
        Op::DeleteChain {
            family,
            table,
            name,
            ..
        } => table_mut(v, *family, table)?
            .chains
            .retain(|c| &c.name != name),
        Op::AddSet { family, table, set } => table_mut(v, *family, table)?.sets.push(set.clone()),
        Op::DeleteSet {
            family,
            table,
            name,
            ..
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
            ..
        } => {
            let s = set_mut(table_mut(v, *family, table)?, set)?;
            let norm = |e| normalized_element(&s.exprs, e);
            let gone: HashSet<Cow<'_, Element>> = elements.iter().map(norm).collect();
            let keep: Vec<bool> = s
                .elements
                .iter()
                .map(|e| !gone.contains(&norm(e)))
                .collect();
            let mut keep = keep.into_iter();
            s.elements.retain(|_| keep.next().unwrap_or(true));
        }
        Op::AddObject {
            family,
            table,
            object,
        } => table_mut(v, *family, table)?.objects.push(object.clone()),
        Op::UpdateObject {
            family,
            table,
            object,
        } => {
            let t = table_mut(v, *family, table)?;
            if let Some(o) = t
                .objects
                .iter_mut()
                .find(|o| o.name == object.name && o.obj_type == object.obj_type)
            {
                // The parameters change; the state (a quota's use) stays.
                let mut data = object.data.clone();
                if let (ObjectData::Quota(new), ObjectData::Quota(old)) = (&mut data, &o.data) {
                    new.consumed = old.consumed;
                }
                o.data = data;
            }
        }
        Op::DeleteObject {
            family,
            table,
            name,
            obj_type,
            ..
        } => table_mut(v, *family, table)?
            .objects
            .retain(|o| !(&o.name == name && o.obj_type == *obj_type)),
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
            ..
        } => table_mut(v, *family, table)?
            .flowtables
            .retain(|f| &f.name != name),
        Op::DeleteRule {
            family,
            table,
            chain,
            handle,
            ..
        } => {
            let t = table_mut(v, *family, table)?;
            let rules = &mut chain_mut(t, chain)?.rules;
            if let Some(i) = find_rule(rules, *handle, *hint) {
                let gone = rules.remove(i);
                *hint = i;
                drop_bound(t, &gone);
            }
        }
        Op::AddRule {
            family,
            table,
            chain,
            rule,
            position,
            id,
            bound,
        } => {
            let t = table_mut(v, *family, table)?;
            let mut r = rule.clone();
            if !bound.is_empty() {
                add_bound(t, bound, &mut r);
            }
            let c = chain_mut(t, chain)?;
            let new_handle = handles.get(id).copied();
            let at = *hint;
            let at_handle = |h: u64| find_rule(&c.rules, h, at);
            let index = match position {
                Position::Append => c.rules.len(),
                Position::After(h) => {
                    at_handle(*h)
                        .ok_or_else(|| ApplyError(format!("no rule handle {h} in {chain}")))?
                        + 1
                }
                Position::Before(h) => at_handle(*h)
                    .ok_or_else(|| ApplyError(format!("no rule handle {h} in {chain}")))?,
                Position::AfterAdded(prev) => {
                    let h = handles
                        .get(prev)
                        .ok_or_else(|| ApplyError(format!("no handle for added rule {prev}")))?;
                    at_handle(*h)
                        .ok_or_else(|| ApplyError(format!("no rule handle {h} in {chain}")))?
                        + 1
                }
            };
            r.handle = new_handle;
            c.rules.insert(index, r);
            *hint = index;
        }
    }
    Ok(())
}

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
                recreate: None,
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

/// Ops gathered by kind, concatenated in an order the kernel takes in one
/// pass: nothing used before it exists, nothing deleted while in use.
///
/// Deletes come first, each user before what it uses: rules (and the rules
/// of chains about to go), elements, sets, chains, objects and flowtables,
/// tables. Adds follow, what is used
/// before its users: tables, objects and flowtables, chains (bound chains
/// too), sets with their elements (a verdict map's elements name chains, an
/// object map's name objects), elements added to existing sets, then rules
/// — a chain bound to a rule gets its rules before the rule binding it (the
/// kernel refuses rules in a chain already bound).
#[derive(Default)]
struct Builder {
    del_rules: Vec<Op>,
    del_elems: Vec<Op>,
    del_sets: Vec<Op>,
    del_chains: Vec<Op>,
    del_objects: Vec<Op>,
    del_tables: Vec<Op>,
    add_tables: Vec<Op>,
    add_objects: Vec<Op>,
    add_chains: Vec<Op>,
    add_sets: Vec<Op>,
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
            self.del_sets,
            self.del_chains,
            self.del_objects,
            self.del_tables,
            self.add_tables,
            self.add_objects,
            self.add_chains,
            self.add_sets,
            self.add_elems,
            self.add_rules,
        ] {
            ops.extend(part);
        }
        Patch { ops }
    }

    /// Adds a rule, with the chains it binds (`jump { … }`): one operation.
    fn add_rule(
        &mut self,
        t: &Table,
        bound: &Bound<'_>,
        chain: &str,
        rule: &Rule,
        position: Position,
    ) -> u32 {
        let mut chains = Vec::new();
        if !bound.is_empty() {
            bound_by(rule, bound, &mut chains);
        }
        self.next_rule_id += 1;
        let id = self.next_rule_id;
        self.add_rules.push(Op::AddRule {
            family: t.family,
            table: t.name.clone(),
            chain: chain.to_owned(),
            rule: without_handle(rule),
            position,
            id,
            bound: chains,
        });
        id
    }

    fn add_chain_with_rules(&mut self, t: &Table, bound: &Bound<'_>, c: &Chain) {
        self.add_chains.push(Op::AddChain {
            family: t.family,
            table: t.name.clone(),
            chain: chain_header(c),
        });
        for r in &c.rules {
            self.add_rule(t, bound, &c.name, r, Position::Append);
        }
    }

    fn add_set(&mut self, t: &Table, s: &Set) {
        let mut set = s.clone();
        set.handle = None;
        self.add_sets.push(Op::AddSet {
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
        for o in &t.objects {
            self.add_object(t, o);
        }
        for f in &t.flowtables {
            self.add_flowtable(t, f);
        }
        let bound = bound_chains(t);
        for c in t.chains.iter().filter(|c| !is_binding(c)) {
            self.add_chain_with_rules(t, &bound, c);
        }
        for s in &t.sets {
            self.add_set(t, s);
        }
    }

    fn table(&mut self, cur: &Table, want: &Table, base: Option<&HashMap<String, Rules>>) {
        if cur.userdata != want.userdata || cur.unknown != want.unknown {
            // The kernel cannot change a table's userdata: recreate it whole,
            // in the same transaction.
            self.del_tables.push(Op::DeleteTable {
                family: cur.family,
                name: cur.name.clone(),
                recreate: Some("its comment changed (the kernel keeps a table's first)".into()),
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
        let sides = Sides::of(cur, want);
        // Things recreated here force what refers to them (rules, and map
        // elements naming chains or objects) out first and back after.
        let mut deps = Dependents::default();

        for p in pair_by(&cur.objects, &want.objects, |o| {
            (o.name.as_str(), o.obj_type)
        }) {
            let delete = |c: &Object, recreate| Op::DeleteObject {
                family: fam,
                table: tname(),
                name: c.name.clone(),
                obj_type: c.obj_type,
                recreate,
            };
            match p {
                Pair::Gone(c) => self.del_objects.push(delete(c, None)),
                Pair::New(o) => self.add_object(want, o),
                Pair::Both(c, o) if object_eq(c, o) => {}
                Pair::Both(c, o) if updates_in_place(c, o) => {
                    let mut object = o.clone();
                    object.handle = None;
                    self.add_objects.push(Op::UpdateObject {
                        family: fam,
                        table: tname(),
                        object,
                    });
                }
                Pair::Both(c, o) => {
                    deps.objects.insert(&o.name);
                    let why = "its parameters changed (the kernel cannot change them in place)";
                    self.del_objects.push(delete(c, Some(why.into())));
                    self.add_object(want, o);
                }
            }
        }
        for p in pair_by(&cur.flowtables, &want.flowtables, |f| f.name.as_str()) {
            let delete = |c: &Flowtable, recreate| Op::DeleteFlowtable {
                family: fam,
                table: tname(),
                name: c.name.clone(),
                recreate,
            };
            match p {
                Pair::Gone(c) => self.del_objects.push(delete(c, None)),
                Pair::New(f) => self.add_flowtable(want, f),
                Pair::Both(c, f) if flowtable_eq(c, f) => {}
                Pair::Both(c, f) => {
                    let why = "its hook or flags changed";
                    self.del_objects.push(delete(c, Some(why.into())));
                    self.add_flowtable(want, f);
                }
            }
        }
        // Chain fates next: a recreated chain makes rules and map elements
        // jumping to it dependents, wherever they are. Bound chains are part
        // of the rules binding them.
        let mut kept: Vec<(&Chain, &Chain)> = Vec::new();
        fn unbound(t: &Table) -> Vec<&Chain> {
            t.chains.iter().filter(|c| !is_binding(c)).collect()
        }
        let (cur_chains, want_chains) = (unbound(cur), unbound(want));
        for p in pair_by(&cur_chains, &want_chains, |c| c.name.as_str()) {
            let delete = |c: &Chain, recreate| Op::DeleteChain {
                family: fam,
                table: tname(),
                name: c.name.clone(),
                recreate,
            };
            // A chain going lets go of what its rules use first.
            let flush = |c: &Chain| Op::FlushChain {
                family: fam,
                table: tname(),
                chain: c.name.clone(),
            };
            match p {
                Pair::Gone(c) => {
                    if !c.rules.is_empty() {
                        self.del_rules.push(flush(c));
                    }
                    self.del_chains.push(delete(c, None));
                }
                Pair::New(w) => self.add_chain_with_rules(want, &sides.want, w),
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
                    deps.chains.insert(&w.name);
                    let why = "its hook, type, flags or comment changed";
                    if !c.rules.is_empty() {
                        self.del_rules.push(flush(c));
                    }
                    self.del_chains.push(delete(c, Some(why.into())));
                    self.add_chain_with_rules(want, &sides.want, w);
                }
            }
        }
        for p in pair_by(&cur.sets, &want.sets, |s| s.name.as_str()) {
            match p {
                Pair::Gone(c) => self.del_sets.push(Op::DeleteSet {
                    family: fam,
                    table: tname(),
                    name: c.name.clone(),
                    recreate: None,
                }),
                Pair::New(s) => self.add_set(want, s),
                Pair::Both(c, s) => match set_change(c, s) {
                    None => self.elements(want, c, s, &deps),
                    Some(why) => {
                        deps.sets.insert(&s.name);
                        self.del_sets.push(Op::DeleteSet {
                            family: fam,
                            table: tname(),
                            name: c.name.clone(),
                            recreate: Some(why),
                        });
                        self.add_set(want, s);
                    }
                },
            }
        }
        // Rule lists still shared with the current value, or with the
        // baseline it equals, are unchanged — unless something they may
        // reference is recreated, which forces their rules out and back, or
        // they bind chains (compared through the rules binding them).
        let shortcuts = deps.is_empty() && sides.plain();
        let unchanged = |c: &Chain, w: &Chain| {
            shortcuts
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
                    Some(b) if shortcuts && b.len() == c.rules.len() => {
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
            let want = &w.rules[skip + j];
            !deps.touches(want, &sides.want) && rule_eq(&sides, &c.rules[skip + i], want)
        });
        for (((c, w), ends), shared) in kept.into_iter().zip(ends).zip(shared_ends) {
            let ends = (shared.0 + ends.0, shared.1 + ends.1);
            self.rules(want, c, w, &sides, &deps, ends);
        }
    }

    fn elements(&mut self, t: &Table, cur: &Set, want: &Set, deps: &Dependents<'_>) {
        if is_dynamic(want) {
            // What the datapath put there is state (see `eq`).
            return;
        }
        // Elements naming a recreated chain or object go out and back.
        let forced = |e: &Element| deps.element(e).is_some();
        let any_forced = !deps.chains.is_empty() || !deps.objects.is_empty();
        let (mut gone_forced, mut new_forced) = (Vec::new(), Vec::new());
        let (a, b): (Cow<'_, [Element]>, Cow<'_, [Element]>) =
            if any_forced && want.elements.iter().any(forced) {
                let split = |v: &[Element], out: &mut Vec<Element>| -> Vec<Element> {
                    let (hit, rest): (Vec<Element>, Vec<Element>) =
                        v.iter().cloned().partition(|e| forced(e));
                    out.extend(hit);
                    rest
                };
                (
                    Cow::Owned(split(&cur.elements, &mut gone_forced)),
                    Cow::Owned(split(&want.elements, &mut new_forced)),
                )
            } else {
                (
                    Cow::Borrowed(&cur.elements[..]),
                    Cow::Borrowed(&want.elements[..]),
                )
            };
        // Element lists usually agree but for a few elements: walk the
        // common prefix and suffix in order, and hash only what is between.
        let norm_cur = |e| normalized_element(&cur.exprs, e);
        let norm_want = |e| normalized_element(&want.exprs, e);
        let (pre, suf) = common_ends(a.len(), b.len(), |i, j| {
            a[i] == b[j] || norm_cur(&a[i]) == norm_want(&b[j])
        });
        let (a, b) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
        let norm_cur: Vec<Cow<'_, Element>> = a.iter().map(norm_cur).collect();
        let norm_want: Vec<Cow<'_, Element>> = b.iter().map(norm_want).collect();
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
        let mut removed = removed;
        if want.is_interval() {
            // The kernel finds an interval's end only after its start (as
            // nft sends them); a dump lists an interval tree from the top.
            sort_intervals(&mut removed);
        }
        let delete = |elements: Vec<Element>, recreate: Option<String>| Op::DeleteElements {
            family: t.family,
            table: t.name.clone(),
            set: want.name.clone(),
            elements,
            recreate,
        };
        if !removed.is_empty() {
            self.del_elems.push(delete(removed, None));
        }
        if !gone_forced.is_empty() {
            let why = deps.element(&gone_forced[0]).unwrap_or_default();
            if want.is_interval() {
                sort_intervals(&mut gone_forced);
            }
            self.del_elems.push(delete(gone_forced, Some(why)));
        }
        let resort = want.is_interval() && !new_forced.is_empty();
        let mut added: Vec<Element> = added.into_iter().chain(new_forced).collect();
        if resort {
            sort_intervals(&mut added);
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

    /// The rule ops of a kept chain, given the common ends of its rules.
    fn rules(
        &mut self,
        t: &Table,
        cur: &Chain,
        want: &Chain,
        sides: &Sides<'_>,
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
            let cur_h: Vec<u64> = wa.iter().map(|r| rule_hash(&sides.cur, r)).collect();
            let want_h: Vec<u64> = wb.iter().map(|r| rule_hash(&sides.want, r)).collect();
            let forced: Vec<bool> = wb.iter().map(|r| deps.touches(r, &sides.want)).collect();
            // A hash only rules a pair out; equal hashes are always checked
            // by full comparison (a collision must not hide a change).
            let eq = |i: usize, j: usize| {
                cur_h[i] == want_h[j] && !forced[j] && rule_eq(sides, &wa[i], &wb[j])
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
                    recreate: deps.reason(r, &sides.cur),
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
            let id = self.add_rule(t, &sides.want, &want.name, r, position);
            anchor = Some(Position::AfterAdded(id));
        }
    }
}

/// Whether the kernel changes object `cur` into `want` in place (measured:
/// a `NEWOBJ` for an existing quota or synproxy object updates it, a quota
/// keeping what it used; other types ignore it).
fn updates_in_place(cur: &Object, want: &Object) -> bool {
    use crate::sys::{NFT_OBJECT_QUOTA, NFT_OBJECT_SYNPROXY};
    matches!(want.obj_type, NFT_OBJECT_QUOTA | NFT_OBJECT_SYNPROXY)
        && cur.obj_type == want.obj_type
        && cur.userdata == want.userdata
        && cur.unknown == want.unknown
}

/// Interval elements in key order, an interval's end before a start at the
/// same key (where one interval ends, the next may begin).
fn sort_intervals(elements: &mut [Element]) {
    let is_start = |e: &Element| e.flags.unwrap_or(0) & crate::sys::NFT_SET_ELEM_INTERVAL_END == 0;
    elements.sort_by(|a, b| (a.key.as_ref(), is_start(a)).cmp(&(b.key.as_ref(), is_start(b))));
}

/// Why an existing set must be recreated to become the desired one, if it
/// must: the kernel changes neither a set's definition nor, once a rule
/// binds it, a constant set's elements.
fn set_change(cur: &Set, want: &Set) -> Option<String> {
    if !set_definition_eq(cur, want) {
        return Some("its definition changed (the kernel cannot change it in place)".into());
    }
    let constant = want.flags & crate::sys::NFT_SET_CONSTANT != 0;
    (constant && !is_dynamic(want) && !elements_eq(cur, want))
        .then(|| "its elements changed and it is constant".into())
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

/// Pairs items by identity: first every current item not desired, then
/// every desired item with its current namesake, in desired order.
fn pair_by<'a, T, K: Eq + Hash>(
    cur: &'a [T],
    want: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<Pair<'a, T>> {
    let current: HashMap<K, &T> = cur.iter().map(|c| (key(c), c)).collect();
    let wanted: HashSet<K> = want.iter().map(&key).collect();
    let mut out: Vec<Pair<'a, T>> = cur
        .iter()
        .filter(|c| !wanted.contains(&key(c)))
        .map(Pair::Gone)
        .collect();
    out.extend(want.iter().map(|w| {
        current
            .get(&key(w))
            .map_or(Pair::New(w), |c| Pair::Both(c, w))
    }));
    out
}

/// What a patch recreates, by name; what refers to it is recreated too.
#[derive(Default)]
struct Dependents<'a> {
    sets: HashSet<&'a str>,
    objects: HashSet<&'a str>,
    chains: HashSet<&'a str>,
}

impl Dependents<'_> {
    fn is_empty(&self) -> bool {
        self.sets.is_empty() && self.objects.is_empty() && self.chains.is_empty()
    }

    /// Whether a rule refers to something recreated (through the chains it
    /// binds too).
    fn touches(&self, rule: &Rule, bound: &Bound<'_>) -> bool {
        !self.is_empty() && self.reason(rule, bound).is_some()
    }

    /// What recreated thing a rule refers to, said as the patch says it.
    fn reason(&self, rule: &Rule, bound: &Bound<'_>) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        for e in rule.exprs.iter() {
            if let Expr::Immediate(i) = e {
                if let Some(c) = verdict_chain(&i.data).filter(|c| self.chains.contains(c)) {
                    return Some(format!("it jumps to chain {c}, which is recreated"));
                }
            }
            if let Some(n) = e.set_name() {
                if self.sets.contains(n) {
                    return Some(format!("it refers to set @{n}, which is recreated"));
                }
                if self.objects.contains(n) {
                    return Some(format!("it refers to object {n}, which is recreated"));
                }
            }
            if let Some(b) = jump_target(e).and_then(|n| bound.get(n)) {
                if let Some(why) = b.rules.iter().find_map(|r| self.reason(r, bound)) {
                    return Some(why);
                }
            }
        }
        rule.sets
            .iter()
            .flat_map(|s| &s.elements)
            .find_map(|el| self.element(el))
    }

    /// What recreated chain or object an element names.
    fn element(&self, el: &Element) -> Option<String> {
        if let Some(c) = verdict_chain(&el.data).filter(|c| self.chains.contains(c)) {
            return Some(format!("it jumps to chain {c}, which is recreated"));
        }
        el.objref
            .as_deref()
            .filter(|o| self.objects.contains(o))
            .map(|o| format!("it refers to object {o}, which is recreated"))
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

/// The chains `rule` binds, and those their rules bind, innermost first,
/// with their rules (handles dropped).
fn bound_by(rule: &Rule, bound: &Bound<'_>, out: &mut Vec<Chain>) {
    for target in rule.exprs.iter().filter_map(jump_target) {
        if let Some(c) = bound.get(target) {
            for r in c.rules.iter() {
                bound_by(r, bound, out);
            }
            let mut c = (*c).clone();
            c.handle = None;
            c.rules = c.rules.iter().map(without_handle).collect();
            out.push(c);
        }
    }
}

/// Rules whose expressions are one allocation (one cloned from the other)
/// and whose other parts are equal: equal, without reading an expression.
fn same_allocation(a: &Rule, b: &Rule) -> bool {
    a.exprs.same(&b.exprs) && a.userdata == b.userdata && a.sets == b.sets && a.unknown == b.unknown
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
        self.operation(f)?;
        match self.op.recreate() {
            Some(why) => write!(f, " (recreated: {why})"),
            None => Ok(()),
        }
    }
}

impl OpLine<'_> {
    fn operation(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
            Op::DeleteTable { family, name, .. } => {
                write!(f, "- delete table {} {name}", fam(family))
            }
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
            Op::FlushChain {
                family,
                table,
                chain,
            } => write!(f, "- flush chain {} {table} {chain}", fam(family)),
            Op::DeleteChain {
                family,
                table,
                name,
                ..
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
                ..
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
                ..
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
            Op::UpdateObject {
                family,
                table,
                object,
            } => write!(
                f,
                "~ update object {} {table} {} (in place: its state is kept)",
                fam(family),
                object.name
            ),
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
                ..
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
                ..
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
pub mod eq;
#[cfg(test)]
mod tests;
