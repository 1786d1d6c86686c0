//! A trace session: mark the packets matching an nft expression with
//! `meta nftrace set 1`, collect their paths, and remove the marking.
//!
//! The marking lives in a table of its own, `inet linx-trace-<port>`,
//! created with the kernel's owner flag by the session's socket: the
//! kernel deletes it when that socket closes, so a session that is killed
//! (even with SIGKILL) never leaves a tracing rule behind. Its two chains
//! hook prerouting (packets arriving) and output (packets sent from the
//! namespace) at the earliest priority there is, `-2147483648`, before
//! any other chain (conntrack and defragmentation included: a non-first
//! fragment carries no ports and does not match a port expression).
//! The table carries no Linx ownership marker: no reconciler ever
//! adopts or deletes it.
//!
//! ```no_run
//! use linx_netfilter::trace::{Next, Session, SessionConfig};
//! let netns = "/run/netns/pod1".parse().unwrap();
//! let mut s = Session::start(&netns, &SessionConfig::new("tcp dport 5432"))?;
//! while let Next::Path(p) = s.next(std::time::Duration::from_secs(1))? {
//!     println!("{p}");
//! }
//! s.stop()?;
//! # Ok::<(), linx_netfilter::trace::TraceError>(())
//! ```

use std::time::{Duration, Instant};

use super::event::{TraceItem, Tracer};
use super::marking::{marking_table, TraceError};
use super::path::{Assembler, PacketPath};
use crate::diff::{Op, Patch};
use crate::interfaces::Interfaces;
use crate::model::{Family, Ruleset};
use crate::netlink::stream::Feed;
use crate::netlink::Socket;
use crate::netns::Netns;
use crate::print::PrintOptions;
use crate::pull::{pull, Selector};
use crate::push::{push, push_patch, PushOptions};

/// What to trace, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// An nft match (`tcp dport 5432`, `ip saddr 10.0.0.0/8 udp dport 53`);
    /// empty traces every packet.
    pub matching: String,
    /// Stop after this many packets' paths.
    pub count: Option<usize>,
    /// Stop after this long.
    pub timeout: Option<Duration>,
    /// An accepted packet's path ends when no message came for it this
    /// long (it may still meet later hooks).
    pub settle: Duration,
    /// Receive buffer of the trace socket.
    pub receive_buffer: usize,
}

impl SessionConfig {
    /// Packets matching `matching`, one packet, at most 10 s.
    pub fn new(matching: impl Into<String>) -> Self {
        SessionConfig {
            matching: matching.into(),
            count: Some(1),
            timeout: Some(Duration::from_secs(10)),
            settle: Duration::from_millis(100),
            receive_buffer: 8 << 20,
        }
    }
}

/// What [`Session::next`] found.
#[derive(Debug)]
pub enum Next {
    Path(Box<PacketPath>),
    /// Nothing within the wait: ask again.
    Pending,
    /// The count or the timeout was reached: [`Session::stop`] it.
    Done,
}

/// A running trace session; see the module documentation.
pub struct Session {
    owner: Socket,
    tracer: Tracer,
    table: (Family, String),
    assembler: Assembler,
    ruleset: Ruleset,
    names: Interfaces,
    count: Option<usize>,
    deadline: Option<Instant>,
    emitted: usize,
    removed: bool,
}

impl Session {
    /// Starts tracing inside `netns`.
    pub fn start(netns: &Netns, cfg: &SessionConfig) -> Result<Session, TraceError> {
        // Subscribe first: no message of a marked packet can come before.
        let tracer = Tracer::subscribe(netns, cfg.receive_buffer)?;
        let mut owner = Socket::open(netns)?;
        let name = format!("linx-trace-{}", owner.port_id()?);
        let table = marking_table(&name, &cfg.matching)?;
        let ruleset = pull(&mut owner, &Selector::All)?.ruleset;
        push(
            &mut owner,
            &Ruleset {
                tables: vec![table],
            },
            &PushOptions::default(),
        )?;
        let key = (Family::Inet, name);
        Ok(Session {
            owner,
            tracer,
            assembler: Assembler::new(Some(key.clone()), cfg.settle),
            table: key,
            ruleset,
            names: Interfaces::open(netns)?,
            count: cfg.count,
            deadline: cfg.timeout.map(|t| Instant::now() + t),
            emitted: 0,
            removed: false,
        })
    }

    /// The session's table (`inet`, `linx-trace-<port>`).
    pub fn table(&self) -> &(Family, String) {
        &self.table
    }

    /// The next packet's path, waiting at most `wait`.
    pub fn next(&mut self, wait: Duration) -> Result<Next, TraceError> {
        let until = Instant::now() + wait;
        loop {
            if self.count.is_some_and(|c| self.emitted >= c) {
                return Ok(Next::Done);
            }
            if let Some(mut p) = self.assembler.pop() {
                self.resolve(&mut p)?;
                self.emitted += 1;
                return Ok(Next::Path(Box::new(p)));
            }
            let now = Instant::now();
            if self.deadline.is_some_and(|d| now >= d) {
                // Out of time: what is open is all there will be.
                self.assembler.flush();
                if self.assembler.pop().is_none() {
                    return Ok(Next::Done);
                }
                self.deadline = Some(now);
                continue;
            }
            if now >= until {
                return Ok(Next::Pending);
            }
            let mut stop = until;
            for d in [self.deadline, self.assembler.next_deadline()]
                .into_iter()
                .flatten()
            {
                stop = stop.min(d);
            }
            let item = self
                .tracer
                .next_timeout(stop.saturating_duration_since(now))?;
            let now = Instant::now();
            match item {
                Some(TraceItem::Event(e)) => self.assembler.push(&e, now),
                Some(TraceItem::Lost) => self.assembler.lost(),
                None => {}
            }
            self.assembler.expire(now);
        }
    }

    /// Removes the marking table (the namespace is left as it was).
    pub fn stop(mut self) -> Result<(), TraceError> {
        self.remove()
    }

    fn remove(&mut self) -> Result<(), TraceError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        let patch = Patch {
            ops: vec![Op::DeleteTable {
                family: self.table.0,
                name: self.table.1.clone(),
                recreate: None,
            }],
        };
        push_patch(&mut self.owner, &patch, None)?;
        Ok(())
    }

    /// Fills in each step's rule (value, index and text) and the
    /// interfaces' names; pulls again once when a rule is not in the
    /// ruleset read (it changed since).
    fn resolve(&mut self, p: &mut PacketPath) -> Result<(), TraceError> {
        for pulled_again in [false, true] {
            let mut missing = false;
            for s in &mut p.steps {
                let Some(h) = s.handle else { continue };
                let Some(t) = self
                    .ruleset
                    .tables
                    .iter()
                    .find(|t| t.family == s.family && t.name == s.table)
                else {
                    missing = true;
                    continue;
                };
                let found = t.chain(&s.chain).and_then(|c| {
                    c.rules
                        .iter()
                        .position(|r| r.handle == Some(h))
                        .map(|i| (i, &c.rules[i]))
                });
                match found {
                    Some((i, r)) => {
                        let opts = PrintOptions {
                            stateless: true,
                            ..Default::default()
                        };
                        s.text = Some(crate::print::rule(t.family, t, r, &opts));
                        s.index = Some(i);
                        s.rule = Some(r.clone());
                    }
                    None => missing = true,
                }
            }
            if !missing || pulled_again {
                break;
            }
            self.ruleset = pull(&mut self.owner, &Selector::All)?.ruleset;
        }
        for dev in [&mut p.iif, &mut p.oif].into_iter().flatten() {
            *dev = self.names.get(dev.index);
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closing the owner socket deletes the table too; deleting it first
        // makes the removal synchronous.
        let _ = self.remove();
    }
}
