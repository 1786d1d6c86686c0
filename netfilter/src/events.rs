//! Kernel events for one namespace (`NFNLGRP_NFTABLES`): what was added or
//! deleted, and each new generation with the process that committed it.
//!
//! When the socket overflows (the kernel dropped events because we read
//! too slowly) the stream yields [`Event::Resync`]: the consumer must pull
//! again instead of trusting a gap.
//!
//! A [`Journal`] keeps, from those events, which tables each recent commit
//! touched: what a reconciler needs to resend a patch that lost the race
//! only to commits in other writers' tables (see [`crate::reconcile`]).

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use crate::error::{DecodeError, Result};
use crate::model::Family;
use crate::netlink::stream::{receive, wait_readable, Feed, Received, Stream};
use crate::netlink::{Attrs, Msg, Socket};
use crate::netns::Netns;
use crate::sys::*;

/// Whether an object appeared or went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Deleted,
}

/// What kind of object an event concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Table,
    Chain,
    Rule,
    Set,
    Element,
    Object,
    Flowtable,
}

/// One kernel event.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// An object was added or deleted. `name` is the chain, set, object or
    /// flowtable name (None for tables); `chain` and `handle` are set for rules.
    Object {
        change: Change,
        kind: ObjectKind,
        family: Family,
        table: String,
        name: Option<String>,
        chain: Option<String>,
        handle: Option<u64>,
    },
    /// A transaction committed: the new generation and who wrote it.
    Generation {
        id: u32,
        pid: Option<u32>,
        process: Option<String>,
    },
    /// Events were lost: pull again.
    Resync,
}

impl Event {
    /// Decodes one multicast message; `None` for messages that are not
    /// nf_tables ruleset events.
    pub fn decode(msg: &Msg<'_>) -> Result<Option<Event>, DecodeError> {
        let Some(m) = msg.nft_msg() else {
            return Ok(None);
        };
        let (family, attrs) = msg.nfgen()?;
        if m == NFT_MSG_NEWGEN {
            let (mut id, mut pid, mut process) = (None, None, None);
            for a in attrs {
                let a = a?;
                match a.kind() {
                    NFTA_GEN_ID => id = Some(a.u32_be()?),
                    NFTA_GEN_PROC_PID => pid = Some(a.u32_be()?),
                    NFTA_GEN_PROC_NAME => process = Some(a.str()?.to_owned()),
                    _ => {}
                }
            }
            let id = id.ok_or(DecodeError::Missing {
                object: "generation event",
                attr: "NFTA_GEN_ID",
            })?;
            return Ok(Some(Event::Generation { id, pid, process }));
        }
        use Change::*;
        use ObjectKind::*;
        // (change, kind, table attr, name attr, chain attr, handle attr)
        let (change, kind, t, n, c, h) = match m {
            NFT_MSG_NEWTABLE => (Added, Table, NFTA_TABLE_NAME, 0, 0, 0),
            NFT_MSG_DELTABLE => (Deleted, Table, NFTA_TABLE_NAME, 0, 0, 0),
            NFT_MSG_NEWCHAIN => (Added, Chain, NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, 0, 0),
            NFT_MSG_DELCHAIN => (Deleted, Chain, NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, 0, 0),
            NFT_MSG_NEWRULE => (
                Added,
                Rule,
                NFTA_RULE_TABLE,
                0,
                NFTA_RULE_CHAIN,
                NFTA_RULE_HANDLE,
            ),
            NFT_MSG_DELRULE => (
                Deleted,
                Rule,
                NFTA_RULE_TABLE,
                0,
                NFTA_RULE_CHAIN,
                NFTA_RULE_HANDLE,
            ),
            NFT_MSG_NEWSET => (Added, Set, NFTA_SET_TABLE, NFTA_SET_NAME, 0, 0),
            NFT_MSG_DELSET => (Deleted, Set, NFTA_SET_TABLE, NFTA_SET_NAME, 0, 0),
            NFT_MSG_NEWSETELEM => (
                Added,
                Element,
                NFTA_SET_ELEM_LIST_TABLE,
                NFTA_SET_ELEM_LIST_SET,
                0,
                0,
            ),
            NFT_MSG_DELSETELEM => (
                Deleted,
                Element,
                NFTA_SET_ELEM_LIST_TABLE,
                NFTA_SET_ELEM_LIST_SET,
                0,
                0,
            ),
            NFT_MSG_NEWOBJ => (Added, Object, NFTA_OBJ_TABLE, NFTA_OBJ_NAME, 0, 0),
            NFT_MSG_DELOBJ => (Deleted, Object, NFTA_OBJ_TABLE, NFTA_OBJ_NAME, 0, 0),
            NFT_MSG_NEWFLOWTABLE => (
                Added,
                Flowtable,
                NFTA_FLOWTABLE_TABLE,
                NFTA_FLOWTABLE_NAME,
                0,
                0,
            ),
            NFT_MSG_DELFLOWTABLE => (
                Deleted,
                Flowtable,
                NFTA_FLOWTABLE_TABLE,
                NFTA_FLOWTABLE_NAME,
                0,
                0,
            ),
            _ => return Ok(None),
        };
        let (mut table, mut name, mut chain, mut handle) = (None, None, None, None);
        for a in Attrs::new(attrs.rest()) {
            let a = a?;
            let k = a.kind();
            if k == t {
                table = Some(a.str()?.to_owned());
            } else if n != 0 && k == n {
                name = Some(a.str()?.to_owned());
            } else if c != 0 && k == c {
                chain = Some(a.str()?.to_owned());
            } else if h != 0 && k == h {
                handle = Some(a.u64_be()?);
            }
        }
        let table = table.ok_or(DecodeError::Missing {
            object: "event",
            attr: "table name",
        })?;
        Ok(Some(Event::Object {
            change,
            kind,
            family: Family::from(family),
            table,
            name,
            chain,
            handle,
        }))
    }
}

/// A subscription to one namespace's ruleset events.
pub struct Events {
    sock: Socket,
    pending: std::collections::VecDeque<Event>,
}

impl Events {
    /// Subscribes inside `netns`.
    pub fn subscribe(netns: &Netns) -> Result<Self> {
        Self::open(netns, None)
    }

    /// Subscribes with a receive buffer of `bytes` (small values make
    /// overflow, and so `Resync`, easy to provoke in tests).
    pub fn subscribe_with_buffer(netns: &Netns, bytes: usize) -> Result<Self> {
        Self::open(netns, Some(bytes))
    }

    fn open(netns: &Netns, buffer: Option<usize>) -> Result<Self> {
        let mut sock = Socket::open(netns)?;
        if let Some(bytes) = buffer {
            sock.set_receive_buffer(bytes)?;
        }
        sock.subscribe(NFNLGRP_NFTABLES)?;
        Ok(Events {
            sock,
            pending: Default::default(),
        })
    }

    /// Blocks for the next event.
    pub fn next_blocking(&mut self) -> Result<Event> {
        Feed::next_blocking(self)
    }

    /// The next event if one is queued, without blocking.
    pub fn try_next(&mut self) -> Result<Option<Event>> {
        Feed::try_next(self)
    }

    /// An async `Stream` of events (needs a Tokio runtime).
    pub fn into_stream(self) -> Result<EventStream> {
        Stream::new(self)
    }
}

impl Feed for Events {
    type Item = Event;

    fn fill(&mut self, block: bool) -> Result<bool> {
        let pending = &mut self.pending;
        let r = receive(&mut self.sock, block, Event::decode, |e| {
            pending.push_back(e)
        })?;
        if r == Received::Overflow {
            pending.push_back(Event::Resync);
        }
        Ok(r != Received::Nothing)
    }

    fn pop(&mut self) -> Option<Event> {
        self.pending.pop_front()
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}

/// Async stream of [`Event`]s; see [`Events::into_stream`].
pub type EventStream = Stream<Events>;

/// A table, by family and name.
pub type TableId = (Family, String);

/// Kernel memory charged per queued event (a rule message and the skb
/// around it, counted generously).
const EVENT_TRUESIZE: usize = 2048;
/// The most [`Journal::expect_events`] grows an event socket's buffer to.
const MAX_EVENT_BUFFER: usize = 64 << 20;

/// Commits remembered by a [`Journal`] (older ones are forgotten, and the
/// journal then answers only about what came after them).
const JOURNAL_COMMITS: usize = 1024;

/// Which tables each recent commit of one namespace touched, read from
/// its event stream ([`CommitLog`] over a subscription).
pub struct Journal {
    events: Events,
    log: CommitLog,
}

impl Journal {
    /// Subscribes inside `netns`.
    pub fn subscribe(netns: &Netns) -> Result<Self> {
        Ok(Journal {
            events: Events::subscribe(netns)?,
            log: CommitLog::default(),
        })
    }

    /// The event socket's descriptor, to wait for readability in a reactor
    /// (the journal stays its only reader).
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.events.sock.as_raw_fd()
    }

    /// Reads every event queued, without blocking, records it, and hands it
    /// to `f`. Returns how many events were read.
    pub fn drain(&mut self, mut f: impl FnMut(&Event)) -> Result<usize> {
        let mut n = 0;
        while let Some(ev) = self.events.try_next()? {
            self.log.record(&ev);
            f(&ev);
            n += 1;
        }
        Ok(n)
    }

    /// Makes room for the events of a commit of `messages` messages about
    /// to be made (one event each, about their size): so that a big commit
    /// of the caller's own does not overflow the socket and cost the
    /// journal what it knew. Best effort, capped.
    pub fn expect_events(&mut self, messages: usize) {
        let _ = self.events.sock.grow_receive_buffer(
            messages
                .saturating_mul(EVENT_TRUESIZE)
                .min(MAX_EVENT_BUFFER),
        );
    }

    /// Waits up to `timeout` for an event to be queued; whether one was.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        if !self.events.pending.is_empty() {
            return Ok(true);
        }
        wait_readable(self.as_raw_fd(), timeout)
    }

    /// Reads what is queued and, if the log does not know from when it is
    /// complete (new, or events were lost), the current generation through
    /// `sock` (a socket in the same namespace).
    pub fn settle(&mut self, sock: &mut Socket) -> Result<()> {
        self.drain(|_| {})?;
        if !self.log.settled() {
            self.log.settle(sock.generation()?.id);
        }
        Ok(())
    }

    /// See [`CommitLog::since`].
    pub fn since(&self, generation: u32, ours: &BTreeSet<TableId>) -> Since {
        self.log.since(generation, ours)
    }
}

/// What a [`CommitLog`] knows of the commits after a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    /// Not complete since then (not settled yet, events lost, a gap).
    Unknown,
    /// A commit since touched one of the tables asked about (or one is
    /// touching it: its objects announced, its generation not yet).
    Touched,
    /// Every commit since touched other tables only; the latest announced
    /// generation (the one asked about when none was).
    Foreign(u32),
}

/// The tables each recent commit touched, from a namespace's events.
///
/// It answers one question: "since generation G, did every commit touch
/// only tables other than these?" ([`CommitLog::since`]). A log is
/// *complete* after a generation: every later commit was seen with all its
/// events. Before the first events, and after the socket overflowed
/// (events lost), it knows nothing until [`CommitLog::settle`] is given
/// the current generation C, read after that point; it is then complete
/// after C. That relies on the kernel counting a commit's generation
/// before it announces the commit's objects — measured here: in 10 of 10
/// large commits, the generation read right after the commit's first event
/// was already the new one — so every commit after C sends its events after
/// the subscription, or after the overflow was reported (a later loss is
/// reported again).
#[derive(Clone, Debug, Default)]
pub struct CommitLog {
    /// Every commit after this generation is recorded; `None` until settled.
    complete_after: Option<u32>,
    /// Tables touched by a commit whose generation event has not come yet.
    pending: Vec<TableId>,
    /// Recent commits, oldest first: generation and the tables it touched.
    commits: VecDeque<(u32, Vec<TableId>)>,
}

impl CommitLog {
    /// Records one event.
    pub fn record(&mut self, ev: &Event) {
        match ev {
            Event::Object { family, table, .. } => {
                if !self.pending.iter().any(|(f, t)| f == family && t == table) {
                    self.pending.push((*family, table.clone()));
                }
            }
            Event::Generation { id, .. } => {
                let tables = std::mem::take(&mut self.pending);
                if self.commits.len() == JOURNAL_COMMITS {
                    if let Some((g, _)) = self.commits.pop_front() {
                        self.complete_after = self.complete_after.map(|c| later(c, g));
                    }
                }
                self.commits.push_back((*id, tables));
            }
            Event::Resync => {
                self.complete_after = None;
                self.pending.clear();
                self.commits.clear();
            }
        }
    }

    /// Whether the log knows from when it is complete.
    pub fn settled(&self) -> bool {
        self.complete_after.is_some()
    }

    /// Sets the log complete after `now`, the current generation read after
    /// the events recorded so far (those up to `now` may miss events: forgotten).
    pub fn settle(&mut self, now: u32) {
        self.commits.retain(|(g, _)| generation_after(*g, now));
        self.complete_after = Some(now);
    }

    /// What is known of the commits after generation `since` with regard
    /// to the tables `ours`.
    pub fn since(&self, since: u32, ours: &BTreeSet<TableId>) -> Since {
        let Some(from) = self.complete_after else {
            return Since::Unknown;
        };
        if generation_after(from, since) {
            return Since::Unknown;
        }
        let mut at = since;
        for (g, tables) in self
            .commits
            .iter()
            .filter(|(g, _)| generation_after(*g, since))
        {
            if *g != next_generation(at) {
                return Since::Unknown;
            }
            if tables.iter().any(|t| ours.contains(t)) {
                return Since::Touched;
            }
            at = *g;
        }
        if self.pending.iter().any(|t| ours.contains(t)) {
            return Since::Touched;
        }
        Since::Foreign(at)
    }
}

/// The generation a commit at `g` produces (the kernel skips 0).
pub fn next_generation(g: u32) -> u32 {
    g.wrapping_add(1).max(1)
}

/// Whether generation `a` comes after `b` (with wrap-around).
pub fn generation_after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < u32::MAX / 2
}

fn later(a: u32, b: u32) -> u32 {
    if generation_after(b, a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod commit_log_tests {
    use super::*;

    fn journal_with(events: &[Event], settled_at: Option<u32>) -> CommitLog {
        let mut j = CommitLog {
            complete_after: settled_at,
            ..Default::default()
        };
        for e in events {
            j.record(e);
        }
        j
    }

    fn obj(table: &str) -> Event {
        Event::Object {
            change: Change::Added,
            kind: ObjectKind::Rule,
            family: Family::Inet,
            table: table.into(),
            name: None,
            chain: Some("c".into()),
            handle: Some(1),
        }
    }

    fn generation(id: u32) -> Event {
        Event::Generation {
            id,
            pid: None,
            process: None,
        }
    }

    #[test]
    fn only_foreign_commits_since_a_generation_allow_a_rebase() {
        let ours = BTreeSet::from([(Family::Inet, "linx".to_string())]);
        let events = [
            obj("linx"),
            generation(5),
            obj("other"),
            generation(6),
            obj("other"),
            obj("more"),
            generation(7),
        ];
        let j = journal_with(&events, Some(4));
        assert_eq!(j.since(5, &ours), Since::Foreign(7));
        assert_eq!(j.since(6, &ours), Since::Foreign(7));
        assert_eq!(j.since(7, &ours), Since::Foreign(7), "nothing new");
        assert_eq!(j.since(4, &ours), Since::Touched, "5 touched ours");
        // Not complete before 5: nothing is known of commit 5 itself.
        let j = journal_with(&events[2..], Some(5));
        assert_eq!(j.since(5, &ours), Since::Foreign(7));
        assert_eq!(j.since(4, &ours), Since::Unknown);
        // Unsettled, or after an overflow: nothing is known until settled.
        assert_eq!(journal_with(&events, None).since(5, &ours), Since::Unknown);
        let mut lost = events.to_vec();
        lost.push(Event::Resync);
        lost.push(obj("other"));
        lost.push(generation(8));
        let mut j = journal_with(&lost, Some(4));
        assert_eq!(j.since(5, &ours), Since::Unknown);
        // Settled at 8 (read after the overflow): commit 8 may have lost
        // events and is forgotten; what comes after is known.
        j.settle(8);
        assert_eq!(j.since(7, &ours), Since::Unknown);
        assert_eq!(j.since(8, &ours), Since::Foreign(8));
        j.record(&obj("other"));
        j.record(&generation(9));
        assert_eq!(j.since(8, &ours), Since::Foreign(9));
        // A commit touching ours in flight (its generation not seen yet).
        let mut landing = events.to_vec();
        landing.push(obj("linx"));
        assert_eq!(
            journal_with(&landing, Some(4)).since(5, &ours),
            Since::Touched
        );
        // A gap in generations (a lost announcement) is never bridged.
        let gap = [obj("other"), generation(6), generation(8)];
        assert_eq!(journal_with(&gap, Some(5)).since(5, &ours), Since::Unknown);
        assert_eq!(next_generation(u32::MAX), 1);
        assert!(generation_after(1, u32::MAX));
    }
}
