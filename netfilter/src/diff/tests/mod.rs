use super::*;
use crate::expr::{cmp, counter, immediate, lookup, meta, Verdict};
use crate::model::{Hook, Userdata};
use crate::object::ObjectData;
use crate::sys::*;
use crate::testing::unshared;

use super::apply::find_rule;
use super::build::diff_with;
use super::ends::{common_ends, common_ends_all};
use super::script::lcs;
use crate::expr::{Data, Expr};
use crate::model::{Chain, Element, Object, Rule, Ruleset, Set};
use std::collections::HashMap;

mod apply;
mod baseline;
mod changes;
mod equality;
mod script;
mod shared;

pub(super) fn mark_rule(v: u32) -> Rule {
    Rule::new(vec![
        meta::Meta {
            key: Some(meta::MetaKey::Mark),
            dreg: Some(1),
            ..Default::default()
        }
        .into(),
        cmp::Cmp {
            sreg: Some(1),
            op: Some(cmp::CmpOp::Eq),
            data: Some(Data::value(v.to_ne_bytes())),
            ..Default::default()
        }
        .into(),
        immediate::Immediate {
            dreg: Some(0),
            data: Some(Data::Verdict(Verdict::Accept)),
            ..Default::default()
        }
        .into(),
    ])
}

pub(super) fn jump_rule(to: &str) -> Rule {
    Rule::new(vec![immediate::Immediate {
        dreg: Some(0),
        data: Some(Data::Verdict(Verdict::Jump(to.into()))),
        ..Default::default()
    }
    .into()])
}

pub(super) fn chain(name: &str, rules: Vec<Rule>) -> Chain {
    let mut c = Chain::new(name);
    c.rules = rules.into();
    c
}

pub(super) fn with_handles(mut c: Chain) -> Chain {
    for (i, r) in c.rules.iter_mut().enumerate() {
        r.handle = Some(100 + i as u64);
    }
    c
}

pub(super) fn ruleset(chains: Vec<Chain>) -> Ruleset {
    let mut t = Table::new(Family::Inet, "fw");
    t.chains = chains;
    Ruleset { tables: vec![t] }
}

pub(super) fn ip_set(name: &str, n: u32) -> Set {
    Set {
        elements: (0..n)
            .map(|i| Element {
                key: Some(i.to_be_bytes().to_vec().into()),
                ..Default::default()
            })
            .collect(),
        ..Set::new(name, 7, 4)
    }
}

pub(super) fn lookup_rule(set: &str) -> Rule {
    Rule::new(vec![
        meta::Meta {
            key: Some(meta::MetaKey::Mark),
            dreg: Some(1),
            ..Default::default()
        }
        .into(),
        lookup::Lookup {
            set: Some(set.into()),
            sreg: Some(1),
            ..Default::default()
        }
        .into(),
    ])
}

/// A reproducible pseudo-random source: `rnd(k)` is in `0..k`.
pub(super) fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |k| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % k
    }
}

/// Strips what the kernel assigns, to compare values by intent.
pub(super) fn without_handles(mut v: Ruleset) -> Ruleset {
    for t in &mut v.tables {
        for c in &mut t.chains {
            c.rules.iter_mut().for_each(|r| r.handle = None);
        }
    }
    v
}

/// Applies `p` to `cur` with handles handed out as the kernel would.
pub(super) fn applied(cur: &Ruleset, p: &Patch) -> Ruleset {
    let mut got = cur.clone();
    p.apply_to(&mut got, &added_handles(p)).unwrap();
    got
}

/// Random edits (delete, insert, replace) of a chain of mark values.
pub(super) fn edited(
    rnd: &mut impl FnMut(u64) -> u64,
    a: &[u32],
    edits: u64,
    alphabet: u64,
) -> Vec<u32> {
    let mut b = a.to_vec();
    for _ in 0..rnd(edits + 1) {
        match rnd(3) {
            0 if !b.is_empty() => {
                let i = rnd(b.len() as u64) as usize;
                b.remove(i);
            }
            1 => {
                let i = rnd(b.len() as u64 + 1) as usize;
                b.insert(i, rnd(alphabet) as u32);
            }
            _ if !b.is_empty() => {
                let i = rnd(b.len() as u64) as usize;
                b[i] = rnd(alphabet) as u32;
            }
            _ => {}
        }
    }
    b
}

/// Handles for a patch's added rules, handed out as the kernel would (by
/// added-rule id).
pub(super) fn added_handles(p: &Patch) -> HashMap<u32, u64> {
    p.ops
        .iter()
        .filter_map(|o| match o {
            Op::AddRule { id, .. } => Some((*id, 10_000 + *id as u64)),
            _ => None,
        })
        .collect()
}
