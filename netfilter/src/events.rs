//! Kernel events for one namespace (`NFNLGRP_NFTABLES`): what was added or
//! deleted, and each new generation with the process that committed it.
//!
//! When the socket overflows (the kernel dropped events because we read
//! too slowly) the stream yields [`Event::Resync`]: the consumer must pull
//! again instead of trusting a gap.

use crate::error::{DecodeError, Result};
use crate::model::Family;
use crate::netlink::stream::{receive, Feed, Received, Stream};
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
