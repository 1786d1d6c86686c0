//! Applying a patch to a value in memory, as the kernel applies it.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::eq::{is_binding, is_dynamic, normalized_element};
use super::{Op, Patch, Position};
use crate::codec::setref::jump_target;
use crate::error::ApplyError;
use crate::expr::{Data, Expr};
use crate::model::{Chain, Element, Family, Rule, Ruleset, Set, Table};
use crate::object::ObjectData;

impl Patch {
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

    /// [`Patch::apply_to`] for a patch a diff made toward `desired` (and the
    /// kernel committed): instead of applying its element operations, every
    /// set the datapath does not write takes `desired`'s list itself. That
    /// is what applying them gives, under the diff's equality (the patch
    /// makes the sets equal), without walking the lists; and the result
    /// shares the list with `desired`, so every namespace given one value
    /// holds one copy, and the next diff knows it by allocation.
    pub fn apply_toward(
        &self,
        value: &mut Ruleset,
        handles: &HashMap<u32, u64>,
        desired: &Ruleset,
    ) -> Result<(), ApplyError> {
        let mut hint = 0;
        for op in &self.ops {
            let elements_of = match op {
                Op::AddElements {
                    family, table, set, ..
                }
                | Op::DeleteElements {
                    family, table, set, ..
                } => Some((*family, table, set)),
                _ => None,
            };
            let taken = elements_of.is_some_and(|(f, t, s)| static_set(desired, f, t, s).is_some());
            if !taken {
                apply_op(value, op, handles, &mut hint)?;
            }
        }
        share_elements(value, desired);
        Ok(())
    }
}

/// The set `table`.`set` of `desired`, unless the datapath writes it.
fn static_set<'a>(desired: &'a Ruleset, family: Family, table: &str, set: &str) -> Option<&'a Set> {
    desired
        .tables
        .iter()
        .find(|t| t.family == family && t.name == table)?
        .set(set)
        .filter(|s| !is_dynamic(s))
}

/// Gives every set of `value` that `desired` has (and the datapath does not
/// write) `desired`'s very element list. For a `value` equal to `desired`:
/// only where the elements live changes.
pub fn share_elements(value: &mut Ruleset, desired: &Ruleset) {
    for t in &mut value.tables {
        for s in &mut t.sets {
            if let Some(d) = static_set(desired, t.family, &t.name, &s.name) {
                s.elements = d.elements.clone();
            }
        }
    }
}

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
pub(super) fn find_rule(rules: &[Rule], h: u64, hint: usize) -> Option<usize> {
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
