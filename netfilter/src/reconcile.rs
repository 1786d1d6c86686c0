//! Reconcile: make the kernel's tables equal to a desired value by pushing
//! only the difference, in one transaction guarded by the generation the
//! difference was computed against.
//!
//! **Known state.** After each successful push the reconciler knows the
//! kernel's state of its tables and the generation that commit produced.
//! Before the next change it reads the generation (one small round trip):
//! if it has not moved, nothing else has committed, so it diffs against the
//! known state instead of pulling. A no-change reconcile is then one
//! `GETGEN` and no batch at all. If anyone committed meanwhile — in any
//! table — it pulls again (only its own tables).
//!
//! **Baseline.** With the known state it keeps a [`Baseline`] of the
//! desired value it made the kernel equal to: chains a later desired value
//! still shares with it (clones share rule lists until edited) are not
//! compared again, so a one-rule edit costs its chain, not the ruleset.
//! The known state's sets hold the desired value's very element lists
//! ([`Patch::apply_toward`]): one copy for every namespace given a value,
//! and a changed list's delta is taken once for all of them.
//!
//! **Conflicts.** A commit that loses the race is refused whole by the
//! kernel (`GenerationMismatch`); the reconciler pulls, diffs and pushes
//! again with backoff, a bounded number of times.
//!
//! **Rebase.** A reconciler that follows the namespace's events
//! ([`Reconciler::follow_events`]) knows which tables each commit touched
//! ([`Journal`]). When its push lost the race only to commits in tables
//! that are not its own (a busy neighbour), the patch it computed is still
//! exactly right: it resends the same encoded batch at the new generation at
//! once — no pull, no diff, no backoff — instead of redoing everything while
//! the neighbour keeps committing. Any doubt (a commit touching one of its
//! tables, lost events, a generation not yet announced) falls back to the
//! pull above.
//!
//! **Ownership.** Tables Linx creates carry a marker in their userdata
//! (an nft userdata TLV of type [`MARKER_TLV`]). A same-named table without
//! it is someone else's and is never modified unless adoption is asked for.
//! The kernel ignores userdata when updating a table, so an adopted table is
//! not marked (that would mean recreating it and resetting its counters): it
//! stays managed by this reconciler, and after a restart it needs adoption
//! again. Comparisons ignore the marker (and the owner flags Linx adds), so
//! desired values never need to carry them, and are never copied.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::diff::{diff, diff_from, share_elements, Baseline, Op, Patch};
use crate::error::{Error, Result};
use crate::events::{generation_after, Event, Journal, Since, TableId};
use crate::expr::Bytes;
use crate::model::{Family, Ruleset, Table, Userdata};
use crate::netlink::Socket;
use crate::pull::{self, pull_judged, Selector};
use crate::push;
use crate::sys::*;

/// Userdata TLV type of the ownership marker. nft uses types 0..=1 for
/// tables (comment, and reserved) and ignores others when listing.
pub const MARKER_TLV: u8 = 0x4c;
/// Its value.
pub const MARKER_VALUE: &[u8] = b"linx";

/// How to reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Push the minimal patch (default).
    Reconcile,
    /// Delete and recreate the desired tables in one transaction.
    Replace,
}

/// Options.
#[derive(Clone, Debug)]
pub struct Options {
    pub mode: Mode,
    /// Take over same-named tables that lack the ownership marker.
    pub adopt: bool,
    /// Create tables with the kernel's owner flag: they vanish when this
    /// reconciler's socket closes (so only while the process lives).
    pub owner: bool,
    /// With `owner`: keep the table when the owner goes (Linux 6.9+).
    pub persist: bool,
    /// Guarded attempts before giving up on contention.
    pub max_attempts: u32,
    /// First backoff after a conflict; doubles each time, with jitter.
    pub backoff: Duration,
    /// Learn the state a push leaves from the kernel's echo of the rules it
    /// added, so the next reconcile needs no pull (default). A one-shot
    /// caller (the CLI's `apply`) turns it off: the kernel then builds no
    /// echo and nothing is kept.
    pub remember: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Reconcile,
            adopt: false,
            owner: false,
            persist: false,
            max_attempts: 10,
            backoff: Duration::from_millis(2),
            remember: true,
        }
    }
}

/// What a reconcile did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// The operations pushed (empty: nothing to do, no batch sent).
    pub patch: Patch,
    /// The kernel's generation after it.
    pub generation: u32,
    /// Guarded pushes tried (1 when no conflict happened).
    pub attempts: u32,
    /// How many attempts the kernel refused because another writer committed first.
    pub conflicts: u32,
    /// Pulls made (0 when the known state was still current).
    pub pulls: u32,
    /// Messages sent in the committed batch.
    pub messages: usize,
    /// How often the push was guarded anew at a later generation, the
    /// patch kept as it was, because only other tables had changed since
    /// it was computed: before sending, or after the kernel refused it
    /// (those refusals also count as conflicts and attempts).
    pub rebases: u32,
}

/// How long a refused push waits for the event announcing the commit that
/// beat it, when that event is not queued yet, before falling back to a pull.
const REBASE_WAIT: Duration = Duration::from_millis(20);
/// How long a refused push waits for another writer's next commit before
/// resending (see `rebase_target`).
const REBASE_PACE: Duration = Duration::from_millis(15);

/// The kernel's state of our tables at a generation, normalized (see
/// [`Reconciler::current`]).
#[derive(Clone, Debug)]
struct Known {
    generation: u32,
    state: Ruleset,
    /// Tables known not to exist at that generation.
    absent: BTreeSet<(Family, String)>,
    /// `state` holds every table of the namespace (a [`Reconciler::prefetch`]):
    /// any other table is absent.
    complete: bool,
    /// The desired value `state` was last made equal to, if it was: the
    /// next diff skips the chains a new desired value still shares with it.
    baseline: Option<Baseline>,
}

/// The kernel's state of the tables a reconcile concerns, at a generation.
struct Current {
    state: Ruleset,
    generation: u32,
    /// Set when `state` is the known one and equals this baseline.
    baseline: Option<Baseline>,
}

impl Current {
    fn diff(&self, desired: &Ruleset) -> Patch {
        match &self.baseline {
            Some(b) => diff_from(&self.state, desired, b),
            None => diff(&self.state, desired),
        }
    }
}

/// Keeps one namespace's managed tables equal to desired values.
pub struct Reconciler {
    sock: Socket,
    opts: Options,
    known: Option<Known>,
    /// Tables this reconciler manages (pushed before, or adopted): a table
    /// that leaves the desired value is deleted.
    managed: BTreeSet<(Family, String)>,
    /// Tables that existed without the ownership marker at the last pull.
    unmarked: BTreeSet<(Family, String)>,
    /// The namespace's events, when followed: lets a refused push rebase.
    journal: Option<Journal>,
    rng: u64,
}

impl Reconciler {
    pub fn new(sock: Socket, opts: Options) -> Self {
        let rng = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Reconciler {
            sock,
            opts,
            known: None,
            managed: BTreeSet::new(),
            unmarked: BTreeSet::new(),
            journal: None,
            rng,
        }
    }

    /// Subscribes to the namespace's kernel events (one more socket), so a
    /// push refused only because other tables changed is resent as it is
    /// (see the module documentation). Events are read during reconciles
    /// and by [`Reconciler::drain_events`].
    pub fn follow_events(&mut self) -> Result<()> {
        if self.journal.is_none() {
            let mut j = Journal::subscribe(&self.sock.netns()?)?;
            j.settle(&mut self.sock)?;
            self.journal = Some(j);
        }
        Ok(())
    }

    /// The event socket's descriptor when events are followed, to wait for
    /// events in a reactor; read them with [`Reconciler::drain_events`].
    pub fn events_fd(&self) -> Option<std::os::fd::RawFd> {
        self.journal.as_ref().map(Journal::as_raw_fd)
    }

    /// Reads the queued events without blocking, handing each to `f` (the
    /// reconciler keeps what it needs of them); how many were read. Events
    /// read during a reconcile are not handed out: the reconcile accounted
    /// for them.
    pub fn drain_events(&mut self, f: impl FnMut(&Event)) -> Result<usize> {
        match &mut self.journal {
            Some(j) => j.drain(f),
            None => Ok(0),
        }
    }

    pub fn socket(&mut self) -> &mut Socket {
        &mut self.sock
    }

    /// Tables currently managed.
    pub fn managed(&self) -> impl Iterator<Item = &(Family, String)> {
        self.managed.iter()
    }

    /// Takes over every table in the namespace that carries Linx's marker
    /// (after a restart: converge from what is there, never flush first).
    pub fn adopt_marked(&mut self) -> Result<usize> {
        let before = self.managed.len();
        for t in pull::tables(&mut self.sock, &Selector::All)? {
            if is_marked(&t) {
                self.managed.insert((t.family, t.name));
            }
        }
        Ok(self.managed.len() - before)
    }

    /// Forgets the known state: the next reconcile pulls.
    pub fn forget(&mut self) {
        self.known = None;
    }

    /// Makes the managed tables equal to `desired` (which names every table
    /// to keep; managed tables it does not name are deleted).
    pub fn reconcile(&mut self, desired: &Ruleset) -> Result<Outcome> {
        self.reconcile_with(desired, false)
    }

    /// Like [`reconcile`](Self::reconcile), but managed tables `desired`
    /// does not name are kept as the kernel has them instead of deleted
    /// (for a caller that does not know what they should hold: removing
    /// them could drop rules still meant to apply).
    pub fn reconcile_keeping(&mut self, desired: &Ruleset) -> Result<Outcome> {
        self.reconcile_with(desired, true)
    }

    fn reconcile_with(&mut self, desired: &Ruleset, keep: bool) -> Result<Outcome> {
        let mut out = Outcome::default();
        // Attempts count guarded pushes, rebased ones included.
        while out.attempts < self.opts.max_attempts.max(1) {
            out.attempts += 1;
            let attempt = out.attempts;
            if let Some(j) = &mut self.journal {
                j.settle(&mut self.sock)?;
            }
            let current = self.current(desired, &mut out)?;
            let extended;
            let desired = if keep {
                extended = self.with_kept(desired, &current.state);
                &extended
            } else {
                desired
            };
            self.check_ownership(&current.state, desired)?;
            let result = self.push_patch(current, desired, &mut out);
            match result {
                Ok(()) => {
                    self.managed = table_ids(desired).collect();
                    return Ok(out);
                }
                Err(Error::GenerationMismatch { .. }) => {
                    out.conflicts += 1;
                    self.known = None;
                    std::thread::sleep(self.backoff(attempt));
                }
                Err(e) => {
                    self.known = None;
                    return Err(e);
                }
            }
        }
        Err(Error::Contention {
            attempts: out.attempts,
        })
    }

    /// The patch a reconcile would push now, and the generation it is
    /// computed against; nothing is sent. With `validate`, the kernel also
    /// checks the patch fully without committing it.
    pub fn plan(&mut self, desired: &Ruleset, validate: bool) -> Result<(Patch, u32)> {
        let mut out = Outcome::default();
        let current = self.current(desired, &mut out)?;
        self.check_ownership(&current.state, desired)?;
        let mut patch = self.patch(&current, desired);
        // Named as a push would name them, so the plan shows what it sends.
        push::name_patch(&mut patch, &current.state);
        let generation = current.generation;
        // Planning changes nothing: what was known stays known.
        self.known = Some(Known {
            generation,
            absent: absent_tables(&current.state, desired),
            complete: false,
            state: current.state,
            baseline: current.baseline,
        });
        if validate && !patch.is_empty() {
            push::check_named_patch(&mut self.sock, &patch, Some(generation))
                .map_err(|e| name_refused_rules(e, &patch, desired))?;
        }
        Ok((patch, generation))
    }

    /// The kernel's state of the tables `desired` names or we manage, and
    /// its generation: the known state if nothing committed since (moved
    /// out, not copied), else a fresh pull of just those tables.
    ///
    /// The state is *normalized*: Linx's decorations (the ownership marker,
    /// the owner/persist flags it adds) are taken off, so it compares with a
    /// plain desired value; patches are decorated again before sending.
    fn current(&mut self, desired: &Ruleset, out: &mut Outcome) -> Result<Current> {
        let tables: BTreeSet<TableId> = table_ids(desired)
            .chain(self.managed.iter().cloned())
            .collect();
        if let Some(k) = self.known.take() {
            let covered = k.complete
                || tables
                    .iter()
                    .all(|id| k.absent.contains(id) || k.state.tables.iter().any(|t| is(t, id)));
            let now = if covered {
                Some(self.sock.generation()?.id)
            } else {
                None
            };
            // Still the kernel's state if nothing committed since, or only
            // to other tables (a busy neighbour): then at the latest
            // generation the journal vouches for.
            let at = match now {
                Some(now) if now == k.generation => Some(now),
                Some(now) => foreign_through(&mut self.journal, k.generation, now, &tables)?,
                None => None,
            };
            if let Some(generation) = at {
                let mut state = k.state;
                state
                    .tables
                    .retain(|t| tables.contains(&(t.family, t.name.clone())));
                return Ok(Current {
                    state,
                    generation,
                    baseline: k.baseline,
                });
            }
        }
        let journal = &mut self.journal;
        let pulled = pull_judged(
            &mut self.sock,
            &Selector::Tables(tables.iter().cloned().collect()),
            |before, after| Ok(foreign_through(journal, before, after, &tables)?.is_some()),
        )?;
        out.pulls += 1;
        Ok(Current {
            generation: pulled.generation,
            state: self.normalize(pulled.ruleset),
            baseline: None,
        })
    }

    /// A pulled state as `current` keeps it: which tables lack the marker
    /// is noted, then the decorations are taken off.
    fn normalize(&mut self, mut state: Ruleset) -> Ruleset {
        self.unmarked = state
            .tables
            .iter()
            .filter(|t| !is_marked(t))
            .map(|t| (t.family, t.name.clone()))
            .collect();
        for t in &mut state.tables {
            self.undecorate(t);
        }
        state
    }

    /// Pulls every table of the namespace now and keeps it as the known
    /// state: the next reconcile or plan, whatever tables its desired value
    /// names, needs no pull if nothing commits meanwhile (otherwise it
    /// pulls as usual). For a one-shot caller that pulls on one thread
    /// while it still compiles the desired value on another.
    pub fn prefetch(&mut self) -> Result<()> {
        let pulled = pull::pull(&mut self.sock, &Selector::All)?;
        let state = self.normalize(pulled.ruleset);
        self.known = Some(Known {
            generation: pulled.generation,
            state,
            absent: BTreeSet::new(),
            complete: true,
            baseline: None,
        });
        Ok(())
    }

    /// `desired` plus the managed tables it does not name, as `current` has them.
    fn with_kept(&self, desired: &Ruleset, current: &Ruleset) -> Ruleset {
        let named: BTreeSet<TableId> = table_ids(desired).collect();
        let mut out = desired.clone();
        out.tables.extend(
            current
                .tables
                .iter()
                .filter(|t| {
                    let id = (t.family, t.name.clone());
                    self.managed.contains(&id) && !named.contains(&id)
                })
                .cloned(),
        );
        out
    }

    fn check_ownership(&self, current: &Ruleset, desired: &Ruleset) -> Result<()> {
        if self.opts.adopt {
            return Ok(());
        }
        for id in table_ids(desired) {
            let exists = current.tables.iter().any(|t| is(t, &id));
            if exists && self.unmarked.contains(&id) && !self.managed.contains(&id) {
                return Err(Error::NotOwned {
                    family: id.0.name(),
                    table: id.1,
                });
            }
        }
        Ok(())
    }

    /// What to push, decorated: the minimal patch, or (replace mode) every
    /// current table deleted and every desired one created.
    fn patch(&self, current: &Current, desired: &Ruleset) -> Patch {
        match self.opts.mode {
            Mode::Reconcile => self.decorate(current.diff(desired)),
            Mode::Replace => replace_patch(&current.state, &self.marked(desired)),
        }
    }

    fn push_patch(&mut self, current: Current, desired: &Ruleset, out: &mut Outcome) -> Result<()> {
        let generation = current.generation;
        let ours = self.concerned(desired);
        let mut patch = self.patch(&current, desired);
        out.generation = generation;
        if patch.is_empty() {
            // The state equals `desired` now: later changes to it are
            // recognised by what they still share with it (its element
            // lists too, once the state holds them).
            let mut state = current.state;
            share_elements(&mut state, desired);
            self.known = Some(Known {
                generation,
                absent: absent_tables(&state, desired),
                complete: false,
                state,
                baseline: Some(Baseline::of(desired)),
            });
            return Ok(());
        }
        let (journal, max) = (&mut self.journal, self.opts.max_attempts);
        push::name_patch(&mut patch, &current.state);
        let mut enc = if self.opts.remember {
            push::encode_named_patch(&patch)
        } else {
            push::encode_named_patch_without_echo(&patch)
        };
        if let Some(j) = journal {
            j.expect_events(enc.batch.len());
        }
        let generation = freshen(&mut self.sock, journal, generation, &ours, out)?;
        let pushed = push::push_encoded_patch(
            &mut self.sock,
            &patch,
            &mut enc,
            Some(generation),
            |sock, at| rebase_target(sock, journal, at, &ours, out, max),
        )
        .map_err(|e| name_refused_rules(e, &patch, desired))?;
        out.generation = pushed.generation.unwrap_or(generation);
        out.messages = pushed.messages;
        // Every added rule's handle came back in the echo: the new state is
        // known without pulling. Otherwise, pull next time.
        let added = patch
            .ops
            .iter()
            .filter(|o| matches!(o, Op::AddRule { .. }))
            .count();
        if self.opts.remember && pushed.handles.len() == added {
            let mut state = current.state;
            patch.apply_toward(&mut state, &pushed.handles, desired)?;
            for t in &mut state.tables {
                self.undecorate(t);
            }
            self.known = Some(Known {
                generation: out.generation,
                state,
                absent: BTreeSet::new(),
                complete: false,
                baseline: Some(Baseline::of(desired)),
            });
        }
        out.patch = patch;
        Ok(())
    }

    /// The tables a reconcile toward `desired` concerns: a commit touching
    /// any of them since the patch was computed makes the patch stale.
    fn concerned(&self, desired: &Ruleset) -> BTreeSet<TableId> {
        table_ids(desired)
            .chain(self.managed.iter().cloned())
            .collect()
    }

    /// Puts Linx's decorations on the tables a patch creates or updates.
    fn decorate(&self, mut patch: Patch) -> Patch {
        for op in &mut patch.ops {
            match op {
                Op::AddTable { table } => {
                    mark(table);
                    self.owner_flags(table);
                }
                Op::UpdateTable { table } => self.owner_flags(table),
                _ => {}
            }
        }
        patch
    }

    /// `desired` decorated whole (replace mode: every table is created anew).
    fn marked(&self, desired: &Ruleset) -> Ruleset {
        let mut d = desired.clone();
        for t in &mut d.tables {
            mark(t);
            self.owner_flags(t);
        }
        d
    }

    fn owner_flags(&self, t: &mut Table) {
        if self.opts.owner {
            t.flags |= NFT_TABLE_F_OWNER;
            if self.opts.persist {
                t.flags |= NFT_TABLE_F_PERSIST;
            }
        }
    }

    /// Takes Linx's decorations off a table as the kernel holds it.
    fn undecorate(&self, t: &mut Table) {
        if is_marked(t) {
            let rest = without_marker(t.userdata.as_ref());
            t.userdata = (!rest.is_empty()).then(|| Userdata(rest.into()));
        }
        if self.opts.owner {
            t.flags &= !(NFT_TABLE_F_OWNER | NFT_TABLE_F_PERSIST);
        }
        t.owner = None;
    }

    fn backoff(&mut self, attempt: u32) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let base = self.opts.backoff.saturating_mul(1 << attempt.min(8));
        base + base.mul_f64((self.rng % 1000) as f64 / 1000.0)
    }
}

/// After a push guarded at `since` was refused: the kernel's current
/// generation, at which to resend the same batch, when the journal shows
/// that every commit since up to it touched only tables outside `ours` and
/// attempts are left (counted in `out`); `None` to fall back to pulling.
/// (The current generation rather than the latest announced one: a
/// commit counted but not yet announced would make the resend fail again.)
fn rebase_target(
    sock: &mut Socket,
    journal: &mut Option<Journal>,
    since: u32,
    ours: &BTreeSet<TableId>,
    out: &mut Outcome,
    max_attempts: u32,
) -> Result<Option<u32>> {
    let Some(j) = journal.as_mut() else {
        return Ok(None);
    };
    if out.attempts >= max_attempts {
        return Ok(None);
    }
    pace(j)?;
    let now = sock.generation()?.id;
    let at = foreign_through(journal, since, now, ours)?;
    if at.is_some() {
        out.attempts += 1;
        out.conflicts += 1;
        out.rebases += 1;
    }
    Ok(at)
}

/// Just before a push computed at `generation`: the kernel's generation
/// now, if only other tables changed since (computing and encoding a big
/// patch takes long enough for a busy neighbour to commit); else
/// `generation` (and the push will fail and rebase or pull).
fn freshen(
    sock: &mut Socket,
    journal: &mut Option<Journal>,
    generation: u32,
    ours: &BTreeSet<TableId>,
    out: &mut Outcome,
) -> Result<u32> {
    let Some(j) = journal.as_mut() else {
        return Ok(generation);
    };
    if sock.generation()?.id == generation {
        return Ok(generation);
    }
    // Someone is committing: send right after their next commit.
    pace(j)?;
    let now = sock.generation()?.id;
    Ok(match foreign_through(journal, generation, now, ours)? {
        Some(at) => {
            out.rebases += 1;
            at
        }
        None => generation,
    })
}

/// Waits for another writer's next commit, if one lands soon: a writer
/// committing every few milliseconds then leaves its longest gap, and a big
/// batch takes the kernel milliseconds to receive before it checks the
/// generation (measured: 2–24 ms for 5 MB, 60–200 ms for 10 MB on this
/// loaded VM).
fn pace(j: &mut Journal) -> Result<()> {
    j.drain(|_| {})?;
    if j.wait(REBASE_PACE)? {
        j.drain(|_| {})?;
    }
    Ok(())
}

/// The latest generation, at least `at_least`, up to which the journal
/// shows every commit after `since` touched tables outside `ours` only
/// (so their state at `since` still holds there); waits briefly once for
/// announcements not read yet. `None` when there is no journal, a commit
/// touched `ours`, or the journal cannot tell.
fn foreign_through(
    journal: &mut Option<Journal>,
    since: u32,
    at_least: u32,
    ours: &BTreeSet<TableId>,
) -> Result<Option<u32>> {
    let Some(j) = journal.as_mut() else {
        return Ok(None);
    };
    j.drain(|_| {})?;
    let mut waited = false;
    loop {
        match j.since(since, ours) {
            Since::Foreign(h) if !generation_after(at_least, h) => return Ok(Some(h)),
            Since::Foreign(_) if !waited => {
                waited = true;
                if !j.wait(REBASE_WAIT)? {
                    return Ok(None);
                }
                j.drain(|_| {})?;
            }
            _ => return Ok(None),
        }
    }
}

fn table_ids(rs: &Ruleset) -> impl Iterator<Item = TableId> + '_ {
    rs.tables.iter().map(|t| (t.family, t.name.clone()))
}

fn is(t: &Table, id: &TableId) -> bool {
    t.family == id.0 && t.name == id.1
}

/// Desired tables the current state lacks.
fn absent_tables(current: &Ruleset, desired: &Ruleset) -> BTreeSet<TableId> {
    table_ids(desired)
        .filter(|id| !current.tables.iter().any(|t| is(t, id)))
        .collect()
}

/// The patch a replace amounts to: every existing table deleted, every
/// desired one created.
fn replace_patch(current: &Ruleset, desired: &Ruleset) -> Patch {
    let mut p = diff(current, &Ruleset::default());
    p.ops.extend(diff(&Ruleset::default(), desired).ops);
    p
}

fn without_marker(u: Option<&Userdata>) -> Vec<u8> {
    let mut out = Vec::new();
    for (ty, v) in u.into_iter().flat_map(|u| u.tlvs()) {
        if !(ty == MARKER_TLV && v == MARKER_VALUE) {
            out.push(ty);
            out.push(v.len() as u8);
            out.extend_from_slice(v);
        }
    }
    out
}

/// A refused patch's errors naming each refused rule by its text, as the
/// patch prints it (the kernel's message only names the chain).
fn name_refused_rules(err: Error, patch: &Patch, desired: &Ruleset) -> Error {
    let Error::Batch(mut failure) = err else {
        return err;
    };
    for f in &mut failure.0 {
        let Some(Op::AddRule {
            family,
            table,
            chain,
            rule,
            ..
        }) = f.operation.and_then(|i| patch.ops.get(i))
        else {
            continue;
        };
        let opts = crate::print::PrintOptions::default();
        let text = match desired
            .tables
            .iter()
            .find(|t| t.family == *family && t.name == *table)
        {
            Some(t) => crate::print::rule(*family, t, rule, &opts),
            None => crate::print::rule(*family, &Table::new(*family, table.clone()), rule, &opts),
        };
        let named = format!("{} {table} {chain} {text}", family.name());
        f.object = if f.op.ends_with("rule") {
            named
        } else {
            // One of the rule's anonymous sets.
            format!("{} of the rule {named}", f.object)
        };
    }
    Error::Batch(failure)
}

/// Whether a table carries Linx's ownership marker.
pub fn is_marked(t: &Table) -> bool {
    t.userdata.as_ref().is_some_and(|u| {
        u.tlvs()
            .any(|(ty, v)| ty == MARKER_TLV && v == MARKER_VALUE)
    })
}

/// Adds the ownership marker to a table's userdata (keeping its comment).
pub fn mark(t: &mut Table) {
    if is_marked(t) {
        return;
    }
    let mut bytes = t.userdata.take().map(|u| u.0 .0).unwrap_or_default();
    bytes.push(MARKER_TLV);
    bytes.push(MARKER_VALUE.len() as u8);
    bytes.extend_from_slice(MARKER_VALUE);
    t.userdata = Some(Userdata(Bytes(bytes)));
}
