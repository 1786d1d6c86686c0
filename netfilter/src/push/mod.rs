//! Writes a whole [`Ruleset`] value into the kernel as ONE transaction:
//! all of it is applied, or (on any error) none of it.
//!
//! ```no_run
//! use linx_netfilter::{push::{push, PushOptions}, pull::{pull, Selector}, Netns, Socket};
//! let mut from = Socket::open(&"/run/netns/a".parse::<Netns>().unwrap())?;
//! let mut to = Socket::open(&"/run/netns/b".parse::<Netns>().unwrap())?;
//! let value = pull(&mut from, &Selector::All)?.ruleset;
//! push(&mut to, &value, &PushOptions::default())?;
//! # Ok::<(), linx_netfilter::Error>(())
//! ```
//!
//! Message order (what the kernel accepts): per table `NEWTABLE`; then per
//! table its chains, objects, flowtables, named sets each followed by its
//! elements; then the rules, each preceded by its anonymous sets (with a
//! batch-local `NFTA_SET_ID` the rule's expressions refer to, their
//! elements right after) and by the rules of any binding chain it jumps to.
//! Named sets get their elements before any rule binds them: the kernel
//! refuses new elements in a bound constant set. In a table the batch
//! creates, the rules with anonymous sets go before the others, which are
//! placed around them ([`order`]: binding a set costs the kernel a walk of
//! the transaction so far).
//!
//! Anonymous sets are named by the push when it knows the table's sets (a
//! table it creates, a patch over a known or pulled state: see [`names`]),
//! sparing the kernel a scan of the table per set; otherwise (`Merge` into
//! a table of unknown contents, [`encode_patch`]) they are sent as nft sends
//! them, `__set%d`, for the kernel to number.
//!
//! Kernel-only facts in the value (handles, use counts, owner port id,
//! element expiry) are never sent.

mod names;
mod order;

use std::collections::HashMap;

pub use names::{name_patch, AnonNames};

use crate::codec::{self, element::Target, rule::ChainRef, setref};
use crate::diff::eq::is_binding;
use crate::diff::{Op, Patch, Position};
use crate::error::{Error, Result};
use crate::expr::{Data, Expr, OtherVerdict};
use crate::model::{Rule, Ruleset, Set, Table};
use crate::netlink::{Batch, Dump, Msg, Socket};
use crate::sys::*;

/// What to do with a table of the value that already exists in the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Existing {
    /// Refuse: the kernel answers `EEXIST` for that table and nothing is
    /// applied. The safe default for a first push.
    #[default]
    Fail,
    /// Add into it, as `nft -f` does: missing objects are created, existing
    /// chains and sets are kept, rules are appended (so pushing the same
    /// value twice duplicates its rules).
    Merge,
    /// Replace it whole in the same transaction (delete, then create):
    /// afterwards the table is exactly the value's.
    Replace,
}

/// Options of a push.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// Apply only if the ruleset is still at this generation (e.g. the one a
    /// pull returned); otherwise [`Error::GenerationMismatch`], nothing applied.
    pub generation: Option<u32>,
    pub existing: Existing,
}

/// What a push sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    pub messages: usize,
    pub tables: usize,
    pub chains: usize,
    pub rules: usize,
    /// Named and anonymous.
    pub sets: usize,
    pub elements: usize,
    pub objects: usize,
    pub flowtables: usize,
}

/// An encoded push: the batch, and what each message is about (to name a
/// rule precisely when the kernel refuses it).
#[derive(Clone, Debug, Default)]
pub struct Encoded {
    pub batch: Batch,
    pub summary: Pushed,
    /// Per message: (table index, chain index, rule index) for a rule or
    /// its anonymous sets; `None` for the rest.
    origins: Vec<Option<(u32, u32, u32)>>,
    /// Per rule asking for an echo, in batch order: its patch operation's
    /// index (the batch need not follow the patch's order: [`order`]).
    echo_ops: Vec<u32>,
    /// Some rules were sent out of the value's order ([`order`]): a
    /// refused batch is then encoded again in order and resent, so the kernel's errors are those nft would get (a rule
    /// refused early shifts the handles the others were placed by, and
    /// each would fail too) and a wrong guess of the handles costs a retry,
    /// not the push.
    reordered: bool,
    /// How a patch was encoded (who names its anonymous sets, whether
    /// added rules ask for an echo), to encode it again alike.
    patch_encoding: Option<(NamingKind, bool)>,
    /// Per message of a patch's batch: the index of its operation.
    msg_ops: Vec<u32>,
}

impl Encoded {
    /// The patch operation that message `index` (1: the first after
    /// BATCH_BEGIN, as [`crate::error::MessageFailure`] counts) belongs to.
    pub fn operation(&self, index: usize) -> Option<usize> {
        let i = index.checked_sub(1)?;
        self.msg_ops.get(i).map(|&op| op as usize)
    }

    /// `patch` encoded again in its own order, when this encoding of it
    /// was not (see `reordered`): to resend after a refusal.
    fn in_order(&self, patch: &Patch) -> Option<Encoded> {
        let (naming, echo) = self.patch_encoding.filter(|_| self.reordered)?;
        Some(encode_ops(patch, naming, echo, false))
    }

    /// `err` with each refused message's operation filled in.
    fn with_operations(&self, err: Error) -> Error {
        match err {
            Error::Batch(mut failure) => {
                for f in &mut failure.0 {
                    f.operation = self.operation(f.index);
                }
                Error::Batch(failure)
            }
            e => e,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NamingKind {
    Kernel,
    Given,
}

/// Pushes `rs` as one transaction; see the module documentation.
pub fn push(sock: &mut Socket, rs: &Ruleset, opts: &PushOptions) -> Result<Pushed> {
    let mut enc = encode(rs, opts);
    let mut sent = sock.commit(&mut enc.batch, opts.generation);
    if matches!(sent, Err(Error::Batch(_))) && enc.reordered {
        enc = encode_in(rs, opts, false);
        sent = sock.commit(&mut enc.batch, opts.generation);
    }
    match sent {
        Ok(_) => Ok(enc.summary),
        Err(Error::Batch(mut failure)) => {
            for f in &mut failure.0 {
                if let Some(Some((t, c, r))) =
                    f.index.checked_sub(1).and_then(|i| enc.origins.get(i))
                {
                    f.object = describe_rule(rs, *t as usize, *c as usize, *r as usize, &f.object);
                }
            }
            Err(Error::Batch(failure))
        }
        Err(e) => Err(e),
    }
}

/// `inet fw input rule #3 ("comment")`, plus what the message itself named
/// when it was the rule's anonymous set.
fn describe_rule(rs: &Ruleset, t: usize, c: usize, r: usize, object: &str) -> String {
    let table = &rs.tables[t];
    let chain = &table.chains[c];
    let rule = &chain.rules[r];
    let mut s = format!(
        "{} {} {} rule #{}",
        table.family.name(),
        table.name,
        chain.name,
        r + 1
    );
    if let Some(comment) = rule.comment() {
        s.push_str(&format!(" ({comment:?})"));
    }
    if let Some(set) = object.split_whitespace().find(|w| w.starts_with('@')) {
        s.push_str(&format!(", anonymous set {set}"));
    }
    s
}

/// Builds the batch for `rs` without sending it.
pub fn encode(rs: &Ruleset, opts: &PushOptions) -> Encoded {
    encode_in(rs, opts, true)
}

/// [`encode`]; `reorder`: may send rules out of the value's order.
fn encode_in(rs: &Ruleset, opts: &PushOptions, reorder: bool) -> Encoded {
    // Every table is created by the batch unless merging: its sets are the
    // value's named ones.
    let naming = if opts.existing == Existing::Merge {
        Naming::Kernel
    } else {
        let mut names = AnonNames::new();
        for t in &rs.tables {
            names.take_all(t, false);
        }
        Naming::Ours(names)
    };
    let mut e = Encoder::new(
        if opts.existing == Existing::Merge {
            0
        } else {
            NLM_F_EXCL
        },
        naming,
    );
    for t in &rs.tables {
        e.table(t, opts.existing);
    }
    for t in &rs.tables {
        e.table_contents(t);
    }
    // Every table but a merged one is created by the batch (NLM_F_EXCL).
    let mut fresh = Vec::new();
    for (ti, t) in rs.tables.iter().enumerate() {
        if !reorder || opts.existing == Existing::Merge || !order::whole_table(t) {
            e.rules(ti, t);
            continue;
        }
        let taken = t.chains.len() + t.objects.len() + t.flowtables.len() + t.sets.len();
        let mut rules = Vec::new();
        for (ci, c) in t.chains.iter().enumerate() {
            for (ri, r) in c.rules.iter().enumerate() {
                rules.push(order::Slot {
                    chain: &c.name,
                    rule: r,
                    origin: Some((ti as u32, ci as u32, ri as u32)),
                    added: None,
                });
            }
        }
        fresh.push(order::Fresh {
            family: t.family.into(),
            table: &t.name,
            taken: taken as u64,
            rules,
        });
    }
    if !fresh.is_empty() {
        e.fresh_rules(&fresh);
        e.out.reordered = true;
    }
    e.out.summary.messages = e.out.batch.len();
    e.out
}

/// Encodes a patch as one batch, in the patch's order (which the kernel
/// accepts: see [`crate::diff`]). A chain bound to a rule is sent as nft
/// sends it: unnamed, with a batch-local id its rules and the rule binding
/// it use. Anonymous sets are sent as `__set%d`, for the kernel to number:
/// when the state the patch applies to is known, [`name_patch`] then
/// [`encode_named_patch`] spare the kernel that.
pub fn encode_patch(patch: &Patch) -> Encoded {
    encode_ops(patch, NamingKind::Kernel, true, true)
}

/// [`encode_patch`] for a patch whose anonymous sets [`name_patch`] named:
/// they are sent under those names.
pub fn encode_named_patch(patch: &Patch) -> Encoded {
    encode_ops(patch, NamingKind::Given, true, true)
}

/// [`encode_named_patch`] without asking the kernel to echo added rules:
/// for a writer that will not keep the state (a one-shot `apply`), as
/// building and reading one echo per rule costs about a sixth of a whole
/// push's CPU. [`push_encoded_patch`] then learns no handles.
pub fn encode_named_patch_without_echo(patch: &Patch) -> Encoded {
    encode_ops(patch, NamingKind::Given, false, true)
}

/// `reorder`: may send rules out of the patch's order ([`order`]).
fn encode_ops(patch: &Patch, naming: NamingKind, echo: bool, reorder: bool) -> Encoded {
    let mut e = Encoder::new(
        0,
        match naming {
            NamingKind::Kernel => Naming::Kernel,
            NamingKind::Given => Naming::Given,
        },
    );
    e.echo = echo;
    let fresh = if reorder {
        order::fresh_in_patch(&patch.ops)
    } else {
        Vec::new()
    };
    let fresh_tables: std::collections::HashSet<(u8, &str)> =
        fresh.iter().map(|t| (t.family, t.table)).collect();
    let is_fresh = |op: &Op| {
        let (family, table) = op.table();
        !fresh_tables.is_empty() && fresh_tables.contains(&(family.into(), table))
    };
    for (i, op) in patch.ops.iter().enumerate() {
        match op {
            Op::AddRule { .. } if is_fresh(op) => {}
            Op::AddTable { table } if is_fresh(op) => {
                let flags = NLM_F_CREATE | NLM_F_EXCL;
                e.add(NFT_MSG_NEWTABLE, flags, table.family.into(), |w| {
                    codec::table::encode(w, table)
                });
            }
            _ => e.op(i as u32, op),
        }
        e.out.msg_ops.resize(e.out.batch.len(), i as u32);
    }
    if !fresh.is_empty() {
        e.fresh_rules(&fresh);
        e.out.reordered = true;
    }
    e.out.patch_encoding = Some((naming, echo));
    e.out.summary.messages = e.out.batch.len();
    e.out
}

/// Has the kernel validate `patch` (named by [`name_patch`]) against
/// `generation` without applying it; a refusal is checked again in the
/// patch's order, for the errors nft would get (see `Encoded::reordered`).
pub fn check_named_patch(sock: &mut Socket, patch: &Patch, generation: Option<u32>) -> Result<()> {
    let mut enc = encode_named_patch(patch);
    let mut checked = sock.check(&mut enc.batch, generation);
    if let (Err(Error::Batch(_)), Some(again)) = (&checked, enc.in_order(patch)) {
        enc = again;
        checked = sock.check(&mut enc.batch, generation);
    }
    checked.map_err(|e| enc.with_operations(e))
}

/// What pushing a patch produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatchPushed {
    /// The generation after the commit, when the push was guarded.
    pub generation: Option<u32>,
    /// Kernel handle of each added rule, by its batch-local id.
    pub handles: std::collections::HashMap<u32, u64>,
    pub messages: usize,
}

/// Pushes `patch` as one transaction, guarded by `generation` when given.
/// Nothing is sent for an empty patch.
pub fn push_patch(
    sock: &mut Socket,
    patch: &Patch,
    generation: Option<u32>,
) -> Result<PatchPushed> {
    if patch.is_empty() {
        return Ok(PatchPushed {
            generation,
            ..Default::default()
        });
    }
    push_encoded_patch(sock, patch, &mut encode_patch(patch), generation, |_, _| {
        Ok(None)
    })
}

/// Pushes `enc`, the encoding of `patch` ([`encode_patch`]), like
/// [`push_patch`]; but when the kernel refuses it because the generation
/// moved, `rebase` is asked (with the socket and the generation the batch
/// was guarded with) for a generation at which the *same encoded batch* is
/// still right — because only other tables changed — and it is sent again
/// there, without encoding anything anew. `None` gives up with
/// [`Error::GenerationMismatch`].
pub fn push_encoded_patch(
    sock: &mut Socket,
    patch: &Patch,
    enc: &mut Encoded,
    generation: Option<u32>,
    mut rebase: impl FnMut(&mut Socket, u32) -> Result<Option<u32>>,
) -> Result<PatchPushed> {
    let mut generation = generation;
    let (generation, echoes) = loop {
        match sock.commit_with_echo(&mut enc.batch, generation) {
            Err(Error::GenerationMismatch { expected }) => match rebase(sock, expected)? {
                Some(at) => generation = Some(at),
                None => return Err(Error::GenerationMismatch { expected }),
            },
            Err(e @ Error::Batch(_)) => match enc.in_order(patch) {
                Some(again) => *enc = again,
                None => return Err(enc.with_operations(e)),
            },
            other => break other?,
        }
    };
    let handles = echoed_handles(patch, &enc.echo_ops, &echoes);
    Ok(PatchPushed {
        generation,
        handles,
        messages: enc.summary.messages,
    })
}

/// The kernel echoes added rules in batch order (those asking for it: not
/// the rules of chains bound with them): pairs them with the `AddRule`
/// operations the encoder sent in that order (`echo_ops`) to learn each
/// one's handle. Every pair must name the same table and chain and the
/// counts must agree; otherwise no handle is trusted (an off-by-one pairing
/// would later delete the wrong rule), and the caller pulls instead.
fn echoed_handles(
    patch: &Patch,
    echo_ops: &[u32],
    echoes: &Dump,
) -> std::collections::HashMap<u32, u64> {
    let added: Vec<(&str, &str, u32)> = echo_ops
        .iter()
        .filter_map(|&i| match patch.ops.get(i as usize)? {
            Op::AddRule {
                table, chain, id, ..
            } => Some((table.as_str(), chain.as_str(), *id)),
            _ => None,
        })
        .collect();
    if added.len() != echo_ops.len() {
        return std::collections::HashMap::new();
    }
    let echoed: Vec<Msg<'_>> = echoes
        .iter()
        .filter_map(|m| m.ok())
        .filter(|m| m.nft_msg() == Some(NFT_MSG_NEWRULE))
        .collect();
    let mut handles = std::collections::HashMap::with_capacity(added.len());
    if echoed.len() != added.len() {
        return handles;
    }
    for ((table, chain, id), m) in added.into_iter().zip(&echoed) {
        match placed(m) {
            Some((t, c, h)) if t == table && c == chain => {
                handles.insert(id, h);
            }
            _ => return std::collections::HashMap::new(),
        }
    }
    handles
}

/// The table, chain and handle of an echoed rule; its expressions are not
/// decoded (a whole push echoes every rule it adds).
fn placed<'a>(m: &Msg<'a>) -> Option<(&'a str, &'a str, u64)> {
    let (_, attrs) = m.nfgen().ok()?;
    let (mut table, mut chain, mut handle) = (None, None, None);
    for a in attrs {
        let a = a.ok()?;
        match a.kind() {
            NFTA_RULE_TABLE => table = Some(a.str().ok()?),
            NFTA_RULE_CHAIN => chain = Some(a.str().ok()?),
            NFTA_RULE_HANDLE => handle = Some(a.u64_be().ok()?),
            _ => {}
        }
    }
    Some((table?, chain?, handle?))
}

/// Who names the anonymous sets of a batch.
enum Naming {
    /// The kernel: sent as `__set%d` / `__map%d`.
    Kernel,
    /// The value: names already chosen ([`name_patch`]).
    Given,
    /// The encoder, around the names taken so far.
    Ours(AnonNames),
}

struct Encoder {
    out: Encoded,
    excl: u16,
    naming: Naming,
    next_set_id: u32,
    next_chain_id: u32,
    /// Chains bound in this batch: (table, name) → batch-local id.
    bound: HashMap<(String, String), u32>,
    /// Added rules ask for an echo of themselves (their handles).
    echo: bool,
}

impl Encoder {
    fn new(excl: u16, naming: Naming) -> Self {
        Encoder {
            out: Encoded::default(),
            excl,
            naming,
            next_set_id: 0,
            next_chain_id: 0,
            bound: HashMap::new(),
            echo: false,
        }
    }

    fn add(
        &mut self,
        msg: u32,
        flags: u16,
        family: u8,
        attrs: impl FnOnce(&mut crate::netlink::Writer),
    ) {
        self.out.batch.add(msg, flags, family, attrs);
    }

    fn table(&mut self, t: &Table, existing: Existing) {
        let f = t.family.into();
        if existing == Existing::Replace {
            // Create-if-missing, delete, create: works whether or not it existed.
            self.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, f, |w| {
                w.put_str(NFTA_TABLE_NAME, &t.name)
            });
            self.add(NFT_MSG_DELTABLE, 0, f, |w| {
                w.put_str(NFTA_TABLE_NAME, &t.name)
            });
        }
        self.add(NFT_MSG_NEWTABLE, NLM_F_CREATE | self.excl, f, |w| {
            codec::table::encode(w, t)
        });
        self.out.summary.tables += 1;
    }

    fn table_contents(&mut self, t: &Table) {
        let f: u8 = t.family.into();
        let flags = NLM_F_CREATE | self.excl;
        for c in &t.chains {
            self.add(NFT_MSG_NEWCHAIN, flags, f, |w| {
                codec::chain::encode(w, &t.name, c)
            });
        }
        for o in &t.objects {
            self.add(NFT_MSG_NEWOBJ, flags, f, |w| {
                codec::object::encode(w, &t.name, o)
            });
        }
        for ft in &t.flowtables {
            self.add(NFT_MSG_NEWFLOWTABLE, flags, f, |w| {
                codec::flowtable::encode(w, &t.name, ft)
            });
        }
        for s in &t.sets {
            self.set(f, &t.name, s, None, None);
        }
        let s = &mut self.out.summary;
        s.chains += t.chains.len();
        s.objects += t.objects.len();
        s.flowtables += t.flowtables.len();
    }

    /// A set and its elements; `anon` = (name, set id) of an anonymous one:
    /// a name template, or a name of ours, which must be new (`NLM_F_EXCL`:
    /// a clash fails instead of filling the existing set).
    fn set(
        &mut self,
        family: u8,
        table: &str,
        s: &Set,
        anon: Option<(&str, u32)>,
        origin: Option<(u32, u32, u32)>,
    ) {
        let before = self.out.batch.len();
        // Every set gets a batch-local id, as nft sends (the kernel wants one).
        let (name, id) = match anon {
            Some((n, id)) => (n, id),
            None => (s.name.as_str(), self.set_id()),
        };
        let flags = if let Some((name, _)) = anon {
            if name.contains('%') {
                NLM_F_CREATE
            } else {
                NLM_F_CREATE | NLM_F_EXCL
            }
        } else {
            NLM_F_CREATE | self.excl
        };
        self.add(NFT_MSG_NEWSET, flags, family, |w| {
            codec::set::encode(w, table, s, Some(name), Some(id))
        });
        let to = Target {
            family,
            table,
            set: name,
            set_id: anon.map(|_| id),
        };
        codec::element::add_to_batch(&mut self.out.batch, NLM_F_CREATE, to, &s.elements);
        self.out.summary.sets += 1;
        self.out.summary.elements += s.elements.len();
        self.out.origins.resize(before, None);
        self.out.origins.resize(self.out.batch.len(), origin);
    }

    fn set_id(&mut self) -> u32 {
        self.next_set_id += 1;
        self.next_set_id
    }

    fn rules(&mut self, ti: usize, t: &Table) {
        if !t.chains.iter().any(is_binding) {
            for (ci, c) in t.chains.iter().enumerate() {
                for (ri, r) in c.rules.iter().enumerate() {
                    self.rule(ti, t, ci, ri, r);
                }
            }
            return;
        }
        // A binding chain's rules go in before the rule that binds it.
        let mut done = vec![false; t.chains.len()];
        for (ci, c) in t.chains.iter().enumerate() {
            if !is_binding(c) {
                self.chain_rules(ti, t, ci, &mut done);
            }
        }
        // Binding chains nothing jumps to (kept for losslessness).
        for ci in 0..t.chains.len() {
            self.chain_rules(ti, t, ci, &mut done);
        }
    }

    fn chain_rules(&mut self, ti: usize, t: &Table, ci: usize, done: &mut [bool]) {
        if std::mem::replace(&mut done[ci], true) {
            return;
        }
        for (ri, r) in t.chains[ci].rules.iter().enumerate() {
            for target in r.exprs.iter().filter_map(setref::jump_target) {
                if let Some(bi) = t
                    .chains
                    .iter()
                    .position(|c| c.name == target && is_binding(c))
                {
                    self.chain_rules(ti, t, bi, done);
                }
            }
            self.rule(ti, t, ci, ri, r);
        }
    }

    fn rule(&mut self, ti: usize, t: &Table, ci: usize, ri: usize, r: &Rule) {
        let origin = Some((ti as u32, ci as u32, ri as u32));
        self.rule_at(
            t.family.into(),
            &t.name,
            ChainRef::Name(&t.chains[ci].name),
            r,
            origin,
            NLM_F_APPEND,
            |_| {},
        );
    }

    /// A rule preceded by its anonymous sets: each is created under its
    /// name (see [`Naming`]) and a batch-local id, and the rule's references
    /// re-pointed at both (and its jumps to chains bound in this batch at
    /// theirs).
    /// `place` writes position attributes after the rule's own.
    #[allow(clippy::too_many_arguments)]
    fn rule_at(
        &mut self,
        f: u8,
        table: &str,
        chain: ChainRef<'_>,
        r: &Rule,
        origin: Option<(u32, u32, u32)>,
        flags: u16,
        place: impl FnOnce(&mut crate::netlink::Writer),
    ) {
        let mut anon_rule;
        let mut rule = r;
        let binds = |e: &Expr| {
            setref::jump_target(e)
                .and_then(|c| self.bound.get(&(table.to_owned(), c.to_owned())))
                .copied()
        };
        if !self.bound.is_empty() && r.exprs.iter().any(|e| binds(e).is_some()) {
            anon_rule = r.clone();
            for e in anon_rule.exprs.iter_mut() {
                if let Some(id) = binds(e) {
                    if let Expr::Immediate(i) = e {
                        if let Some(Data::Verdict(v)) = &mut i.data {
                            *v = crate::expr::Verdict::Other(Box::new(OtherVerdict {
                                code: v.code(),
                                chain: None,
                                chain_id: Some(id),
                                unknown: Vec::new(),
                            }));
                        }
                    }
                }
            }
            rule = &anon_rule;
        }
        if !r.sets.is_empty() {
            anon_rule = rule.clone();
            // (name in the value, name sent, id); re-pointed in one pass,
            // since a name sent may be another set's name in the value.
            let mut sent = Vec::with_capacity(r.sets.len());
            for s in &r.sets {
                let id = self.set_id();
                let name = match &mut self.naming {
                    Naming::Kernel => setref::anonymous_template(&s.name),
                    Naming::Given => s.name.clone(),
                    Naming::Ours(names) => names.name(f, table, s),
                };
                self.set(f, table, s, Some((&name, id)), origin);
                sent.push((s.name.as_str(), name, id));
            }
            for e in anon_rule.exprs.iter_mut() {
                setref::for_each_set_ref(e, |name, set_id| {
                    if let Some((_, to, id)) = sent.iter().find(|(from, ..)| from == name) {
                        name.clone_from(to);
                        *set_id = Some(*id);
                    }
                });
            }
            rule = &anon_rule;
        }
        self.add(NFT_MSG_NEWRULE, NLM_F_CREATE | flags, f, |w| {
            codec::rule::encode_in(w, table, chain, rule);
            place(w);
        });
        self.out.origins.resize(self.out.batch.len(), origin);
        self.out.summary.rules += 1;
    }

    /// Patch operation `index`. Added rules ask for an echo (`NLM_F_ECHO`),
    /// unless told not to, so the commit tells their handles.
    fn op(&mut self, index: u32, op: &Op) {
        match op {
            Op::AddTable { table } | Op::UpdateTable { table } => {
                self.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, table.family.into(), |w| {
                    codec::table::encode(w, table)
                });
            }
            Op::DeleteTable { family, name, .. } => {
                self.add(NFT_MSG_DELTABLE, 0, (*family).into(), |w| {
                    w.put_str(NFTA_TABLE_NAME, name)
                });
            }
            Op::AddChain {
                family,
                table,
                chain,
            }
            | Op::UpdateChain {
                family,
                table,
                chain,
            } => {
                self.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, (*family).into(), |w| {
                    codec::chain::encode(w, table, chain)
                });
            }
            Op::FlushChain {
                family,
                table,
                chain,
            } => self.add(NFT_MSG_DELRULE, 0, (*family).into(), |w| {
                w.put_str(NFTA_RULE_TABLE, table);
                w.put_str(NFTA_RULE_CHAIN, chain);
            }),
            Op::DeleteChain {
                family,
                table,
                name,
                ..
            } => self.add(NFT_MSG_DELCHAIN, 0, (*family).into(), |w| {
                w.put_str(NFTA_CHAIN_TABLE, table);
                w.put_str(NFTA_CHAIN_NAME, name);
            }),
            Op::AddSet { family, table, set } => self.set((*family).into(), table, set, None, None),
            Op::DeleteSet {
                family,
                table,
                name,
                ..
            } => self.add(NFT_MSG_DELSET, 0, (*family).into(), |w| {
                w.put_str(NFTA_SET_TABLE, table);
                w.put_str(NFTA_SET_NAME, name);
            }),
            Op::AddElements {
                family,
                table,
                set,
                elements,
            }
            | Op::DeleteElements {
                family,
                table,
                set,
                elements,
                ..
            } => {
                let msg = if matches!(op, Op::AddElements { .. }) {
                    NFT_MSG_NEWSETELEM
                } else {
                    NFT_MSG_DELSETELEM
                };
                let to = Target {
                    family: (*family).into(),
                    table,
                    set,
                    set_id: None,
                };
                codec::element::to_batch(&mut self.out.batch, msg, NLM_F_CREATE, to, elements);
                self.out.summary.elements += elements.len();
            }
            Op::AddObject {
                family,
                table,
                object,
            }
            | Op::UpdateObject {
                family,
                table,
                object,
            } => {
                self.add(NFT_MSG_NEWOBJ, NLM_F_CREATE, (*family).into(), |w| {
                    codec::object::encode(w, table, object)
                });
            }
            Op::DeleteObject {
                family,
                table,
                name,
                obj_type,
                ..
            } => self.add(NFT_MSG_DELOBJ, 0, (*family).into(), |w| {
                w.put_str(NFTA_OBJ_TABLE, table);
                w.put_str(NFTA_OBJ_NAME, name);
                w.put_u32_be(NFTA_OBJ_TYPE, *obj_type);
            }),
            Op::AddFlowtable {
                family,
                table,
                flowtable,
            } => self.add(NFT_MSG_NEWFLOWTABLE, NLM_F_CREATE, (*family).into(), |w| {
                codec::flowtable::encode(w, table, flowtable)
            }),
            Op::DeleteFlowtable {
                family,
                table,
                name,
                ..
            } => self.add(NFT_MSG_DELFLOWTABLE, 0, (*family).into(), |w| {
                w.put_str(NFTA_FLOWTABLE_TABLE, table);
                w.put_str(NFTA_FLOWTABLE_NAME, name);
            }),
            Op::DeleteRule {
                family,
                table,
                chain,
                handle,
                ..
            } => self.add(NFT_MSG_DELRULE, 0, (*family).into(), |w| {
                w.put_str(NFTA_RULE_TABLE, table);
                w.put_str(NFTA_RULE_CHAIN, chain);
                w.put_u64_be(NFTA_RULE_HANDLE, *handle);
            }),
            Op::AddRule {
                family,
                table,
                chain,
                rule,
                position,
                id,
                bound,
            } => {
                // The chains it binds first, unnamed, then their rules
                // (innermost first), as nft sends them.
                let f: u8 = (*family).into();
                let mut ids = Vec::with_capacity(bound.len());
                for c in bound {
                    self.next_chain_id += 1;
                    let cid = self.next_chain_id;
                    self.bound.insert((table.clone(), c.name.clone()), cid);
                    self.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, f, |w| {
                        codec::chain::encode_bound(w, table, c, cid)
                    });
                    ids.push(cid);
                }
                for (c, cid) in bound.iter().zip(ids) {
                    for r in c.rules.iter() {
                        self.rule_at(f, table, ChainRef::Id(cid), r, None, NLM_F_APPEND, |_| {});
                    }
                }
                // Without NLM_F_APPEND a positioned rule goes before its anchor.
                let echo = if self.echo {
                    self.out.echo_ops.push(index);
                    NLM_F_ECHO
                } else {
                    0
                };
                let flags = echo
                    | if matches!(position, Position::Before(_)) {
                        0
                    } else {
                        NLM_F_APPEND
                    };
                let into = match self.bound.get(&(table.clone(), chain.clone())) {
                    Some(id) => ChainRef::Id(*id),
                    None => ChainRef::Name(chain),
                };
                self.rule_at((*family).into(), table, into, rule, None, flags, |w| {
                    match position {
                        Position::Append => {}
                        Position::After(h) | Position::Before(h) => {
                            w.put_u64_be(NFTA_RULE_POSITION, *h)
                        }
                        Position::AfterAdded(prev) => w.put_u32_be(NFTA_RULE_POSITION_ID, *prev),
                    }
                    w.put_u32_be(NFTA_RULE_ID, *id);
                });
            }
        }
    }
}
