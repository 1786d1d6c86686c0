//! The edit script between two values: which tables, chains, sets,
//! elements, objects and rules to delete, add or recreate, in an order the
//! kernel takes in one pass.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use super::delta;
use super::ends::{common_ends, common_ends_all};
use super::eq::{
    bound_chains, chain_header_eq, elements_eq, flowtable_eq, is_binding, is_dynamic, object_eq,
    rule_eq, rule_hash, set_definition_eq, verdict_chain, Bound, Sides,
};
use super::script::lcs;
use super::{Baseline, Op, Patch, Position};
use crate::codec::setref::jump_target;
use crate::expr::Expr;
use crate::model::{Chain, Element, Family, Flowtable, Object, Rule, Rules, Ruleset, Set, Table};

/// Rules compared, past which a diff's comparisons use both cores (below
/// it, starting a thread costs more than it saves).
pub(super) const PARALLEL_MIN: usize = 20_000;

/// [`diff`], using both cores when the chains compared hold at least
/// `parallel_min` rules (the patch is the same either way).
pub(super) fn diff_with(
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
        let delta = if any_forced && want.elements.iter().any(forced) {
            let split = |v: &[Element], out: &mut Vec<Element>| -> Vec<Element> {
                let (hit, rest): (Vec<Element>, Vec<Element>) =
                    v.iter().cloned().partition(|e| forced(e));
                out.extend(hit);
                rest
            };
            let (a, b) = (
                split(&cur.elements, &mut gone_forced),
                split(&want.elements, &mut new_forced),
            );
            Arc::new(delta::between(&cur.exprs, &a, &want.exprs, &b))
        } else if cur.elements.same(&want.elements) {
            // One list (the one pushed last, kept as the known state): no
            // element to compare. (Same kind of set, so same normalization.)
            return;
        } else {
            delta::of_sets(cur, want)
        };
        let (mut removed, added) = (delta.removed.clone(), delta.added.clone());
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
