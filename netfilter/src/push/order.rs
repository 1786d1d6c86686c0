//! Rules with anonymous sets go first in a table the batch creates.
//!
//! Binding an anonymous set to its rule makes the kernel walk the whole
//! transaction so far (`__nft_set_trans_bind` in `perf`), so a batch of M
//! rules among which N carry an anonymous set costs it about N·M/2 steps:
//! 100,000 rules with 5,000 sets, 10–16 s of kernel time in all against
//! about 2 s without the sets (#20; BENCHMARKS.md). Sent first, each set is
//! bound while the transaction is still short.
//!
//! The other rules then go in around them, one pass per chain, backwards:
//! those after the chain's last set-carrying rule are appended; each other
//! one goes right after the set-carrying rule before it, named by handle
//! (`NFTA_RULE_POSITION`, which the kernel finds within the chain's first
//! few rules, as only set-carrying rules are before it), or at the chain's
//! head. Placing them by batch-local rule id (`NFTA_RULE_POSITION_ID`) would
//! be quadratic again: the kernel finds an id by walking the transaction.
//!
//! The handles are known before the commit because the table is new: a
//! table numbers its handles from 1 in the order its chains, objects,
//! flowtables, sets (named or anonymous) and rules are created
//! (`tests/push_order.rs` checks it on the running kernel). So this is done
//! only for a table the batch creates with `NLM_F_EXCL` (an existing table
//! fails the batch instead of taking rules at wrong places) and to which it
//! only adds, without chains bound to rules.

use std::collections::HashMap;

use super::Encoder;
use crate::codec::rule::ChainRef;
use crate::diff::eq::is_binding;
use crate::diff::{Op, Position};
use crate::model::{Rule, Table};
use crate::sys::*;

/// A rule of a [`Fresh`] table, in its chain's order.
pub(super) struct Slot<'a> {
    pub chain: &'a str,
    pub rule: &'a Rule,
    /// For naming the rule when the kernel refuses it (a whole push).
    pub origin: Option<(u32, u32, u32)>,
    /// Batch-local rule id and the patch operation's index (a patch).
    pub added: Option<(u32, u32)>,
}

/// A table the batch creates, and its rules.
pub(super) struct Fresh<'a> {
    pub family: u8,
    pub table: &'a str,
    /// Handles its chains, objects, flowtables and named sets take, all
    /// sent before its rules.
    pub taken: u64,
    pub rules: Vec<Slot<'a>>,
}

enum Place {
    Head,
    After(u64),
    Append,
}

/// Whether a whole table of a value is sent this way (the batch creating
/// it with `NLM_F_EXCL`): it has rules with anonymous sets and no binding
/// chains.
pub(super) fn whole_table(t: &Table) -> bool {
    !t.chains.iter().any(is_binding)
        && t.chains
            .iter()
            .any(|c| c.rules.iter().any(|r| !r.sets.is_empty()))
}

/// The tables a patch creates and only adds to, with their `AddRule`s
/// (appended, binding nothing), when some carry anonymous sets. `Op`
/// indices of those rules are in the slots; their `AddTable` is to be sent
/// with `NLM_F_EXCL` and the rules by [`Encoder::fresh_rules`].
pub(super) fn fresh_in_patch(ops: &[Op]) -> Vec<Fresh<'_>> {
    enum State<'a> {
        New,
        /// Only deleted so far (a table deleted and added back).
        Deleted,
        Fresh(Fresh<'a>),
        Out,
    }
    let mut tables: HashMap<(u8, &str), State<'_>> = HashMap::new();
    let mut order: Vec<(u8, &str)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let (family, table) = op.table();
        let key = (family.into(), table);
        let state = tables.entry(key).or_insert(State::New);
        let fresh = match state {
            State::Out => continue,
            State::New | State::Deleted => {
                *state = match op {
                    Op::DeleteTable { .. } if matches!(state, State::New) => State::Deleted,
                    Op::AddTable { .. } => {
                        order.push(key);
                        State::Fresh(Fresh {
                            family: key.0,
                            table: key.1,
                            taken: 0,
                            rules: Vec::new(),
                        })
                    }
                    _ => State::Out,
                };
                continue;
            }
            State::Fresh(f) => f,
        };
        match op {
            Op::AddChain { chain, .. } if !is_binding(chain) => fresh.taken += 1,
            Op::AddObject { .. } | Op::AddFlowtable { .. } | Op::AddSet { .. } => fresh.taken += 1,
            Op::AddElements { .. } => {}
            Op::AddRule {
                chain,
                rule,
                position: Position::Append,
                id,
                bound,
                ..
            } if bound.is_empty() => fresh.rules.push(Slot {
                chain,
                rule,
                origin: None,
                added: Some((*id, i as u32)),
            }),
            _ => *state = State::Out,
        }
    }
    order
        .into_iter()
        .filter_map(|k| match tables.remove(&k) {
            Some(State::Fresh(f)) if f.rules.iter().any(|s| !s.rule.sets.is_empty()) => Some(f),
            _ => None,
        })
        .collect()
}

impl Encoder {
    /// The rules of `tables`: first every rule with anonymous sets, in
    /// order, then the others around them (see the module documentation).
    pub(super) fn fresh_rules(&mut self, tables: &[Fresh<'_>]) {
        // The handle of each set-carrying rule; 0 for the others.
        let mut handles: Vec<Vec<u64>> = Vec::with_capacity(tables.len());
        for t in tables {
            let mut next = t.taken;
            let mut h = vec![0; t.rules.len()];
            for (i, s) in t.rules.iter().enumerate() {
                if !s.rule.sets.is_empty() {
                    next += s.rule.sets.len() as u64 + 1;
                    h[i] = next;
                    self.fresh_rule(t, s, Place::Append);
                }
            }
            handles.push(h);
        }
        let mut before = Vec::new();
        for (t, h) in tables.iter().zip(&handles) {
            for chain in by_chain(&t.rules) {
                let tail = chain.iter().rposition(|&i| h[i] != 0).map_or(0, |k| k + 1);
                for &i in &chain[tail..] {
                    self.fresh_rule(t, &t.rules[i], Place::Append);
                }
                // The set-carrying rule before each rule, if any.
                before.clear();
                let mut last = None;
                for &i in &chain[..tail] {
                    before.push(last);
                    if h[i] != 0 {
                        last = Some(h[i]);
                    }
                }
                for (j, &i) in chain[..tail].iter().enumerate().rev() {
                    if h[i] == 0 {
                        let place = before[j].map_or(Place::Head, Place::After);
                        self.fresh_rule(t, &t.rules[i], place);
                    }
                }
            }
        }
    }

    fn fresh_rule(&mut self, t: &Fresh<'_>, s: &Slot<'_>, place: Place) {
        let echo = self.echo && s.added.is_some();
        if echo {
            self.out.echo_ops.extend(s.added.map(|(_, op)| op));
        }
        let flags = match place {
            Place::Head => 0,
            Place::After(_) | Place::Append => NLM_F_APPEND,
        } | if echo { NLM_F_ECHO } else { 0 };
        let chain = ChainRef::Name(s.chain);
        self.rule_at(t.family, t.table, chain, s.rule, s.origin, flags, |w| {
            if let Place::After(h) = place {
                w.put_u64_be(NFTA_RULE_POSITION, h);
            }
            if let Some((id, _)) = s.added {
                w.put_u32_be(NFTA_RULE_ID, id);
            }
        });
        if let Some((_, op)) = s.added {
            self.out.msg_ops.resize(self.out.batch.len(), op);
        }
    }
}

/// Indices of `rules` grouped by chain, chains in order of first
/// appearance, each in its order.
fn by_chain(rules: &[Slot<'_>]) -> Vec<Vec<usize>> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut chains: Vec<Vec<usize>> = Vec::new();
    for (i, s) in rules.iter().enumerate() {
        let k = *index.entry(s.chain).or_insert_with(|| {
            chains.push(Vec::new());
            chains.len() - 1
        });
        chains[k].push(i);
    }
    chains
}
