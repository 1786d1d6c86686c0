//! Trace messages grouped into each packet's path: the chains it went
//! through, each rule that matched, and the verdict that decided it.
//!
//! The kernel gives every message about one pass of a packet the same
//! trace id, but reuses ids (a retransmitted TCP SYN came back with its
//! first id, measured), so ids alone do not delimit packets. A path ends
//! at a verdict that ends the packet (`drop`, or one that steals or
//! queues it); an accepted packet may still meet later hooks, so its path
//! ends when no message came for it during `settle`. With a session's own
//! table known, a path starts only at that table's marking rule (so
//! packets traced by someone else are not mixed in), and that rule firing
//! again starts a new path.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::event::{TraceEvent, TraceKind};
use crate::expr::Verdict;
use crate::interfaces::Interface;
use crate::model::{Family, Rule};
use crate::packet::Headers;
use crate::sys::{NF_DROP, NF_QUEUE, NF_STOLEN};

/// One step of a path: a rule that matched, the end of a chain jumped
/// to, or a base chain's policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub family: Family,
    pub table: String,
    pub chain: String,
    pub kind: TraceKind,
    /// The rule's handle (rule steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    /// The rule's verdict, or the policy as `accept` / `drop`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "verdict_text"
    )]
    pub verdict: Option<Verdict>,
    /// The rule's position in its chain (0 is the first), once resolved
    /// against the ruleset: what maps a step back to where the rule came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The rule as nft lists it, once resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The rule as a value (pulled), once resolved.
    #[serde(skip)]
    pub rule: Option<Rule>,
}

fn verdict_text<S: serde::Serializer>(v: &Option<Verdict>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&crate::print::verdict(v)),
        None => s.serialize_none(),
    }
}

impl Step {
    fn from_event(e: &TraceEvent) -> Step {
        Step {
            family: e.family,
            table: e.table.clone(),
            chain: e.chain.clone(),
            kind: e.kind,
            handle: e.handle,
            verdict: e.decision(),
            index: None,
            text: None,
            rule: None,
        }
    }

    /// `inet linx input`.
    pub fn chain_name(&self) -> String {
        format!("{} {} {}", self.family.name(), self.table, self.chain)
    }

    /// `policy drop`, `rule 4: tcp dport 22 drop` (4 is the handle, as
    /// `nft -a` shows it), `return`.
    pub fn what(&self) -> String {
        let v = self.verdict.as_ref().map(crate::print::verdict);
        match self.kind {
            TraceKind::Policy => format!("policy {}", v.unwrap_or_default()),
            TraceKind::Rule => {
                let mut s = match self.handle {
                    Some(h) => format!("rule {h}"),
                    None => "rule".to_owned(),
                };
                match &self.text {
                    Some(t) => s.push_str(&format!(": {t}")),
                    None => s.push_str(" (not in the ruleset read)"),
                }
                s
            }
            TraceKind::Return => "return (end of chain)".to_owned(),
            TraceKind::Unknown(n) => format!("trace type {n}"),
        }
    }
}

/// One packet's path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PacketPath {
    /// The kernel's trace id.
    pub id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iif: Option<Interface>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oif: Option<Interface>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<u32>,
    /// The packet as the first chain saw it.
    pub headers: Headers,
    pub steps: Vec<Step>,
    /// The final verdict: the last `accept`, or what ended the packet.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "verdict_text"
    )]
    pub verdict: Option<Verdict>,
    /// The step that gave [`PacketPath::verdict`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<usize>,
    /// Messages were lost while the path was open: steps may be missing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
}

impl PacketPath {
    fn new(id: u32) -> Self {
        PacketPath {
            id,
            iif: None,
            oif: None,
            mark: None,
            headers: Headers::default(),
            steps: Vec::new(),
            verdict: None,
            decided_by: None,
            incomplete: false,
        }
    }

    /// Takes what the message says about the packet itself.
    fn note_packet(&mut self, e: &TraceEvent) {
        if self.headers == Headers::default() && e.has_headers() {
            self.headers = e.headers();
        }
        let iface = |i| Interface {
            index: i,
            name: None,
        };
        self.iif = self.iif.take().or(e.iif.map(iface));
        self.oif = self.oif.take().or(e.oif.map(iface));
        self.mark = self.mark.or(e.mark);
    }

    /// The step that decided the packet, if any.
    pub fn deciding_step(&self) -> Option<&Step> {
        self.steps.get(self.decided_by?)
    }

    /// The last line of the text form: `DROP by inet linx input: policy
    /// drop`, `ACCEPT by inet linx input rule 4: tcp dport { 80, 443 }
    /// accept`.
    pub fn summary(&self) -> String {
        match (&self.verdict, self.deciding_step()) {
            (Some(v), Some(s)) => format!(
                "{} by {}{}{}",
                crate::print::verdict(v).to_uppercase(),
                s.chain_name(),
                if s.kind == TraceKind::Policy {
                    ": "
                } else {
                    " "
                },
                s.what()
            ),
            _ => "NO VERDICT seen".to_owned(),
        }
    }
}

impl fmt::Display for PacketPath {
    /// The packet, one line per step, then the summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trace id {:08x}", self.id)?;
        for (key, dev) in [("iif", &self.iif), ("oif", &self.oif)] {
            if let Some(d) = dev {
                match &d.name {
                    Some(n) => write!(f, " {key} {n:?}")?,
                    None => write!(f, " {key} {}", d.index)?,
                }
            }
        }
        writeln!(f, " {}", self.headers)?;
        for s in &self.steps {
            write!(f, "  {} {}", s.chain_name(), s.what())?;
            match (&s.kind, &s.verdict) {
                (TraceKind::Rule | TraceKind::Return, Some(v)) => {
                    writeln!(f, " (verdict {})", crate::print::verdict(v))?
                }
                _ => writeln!(f)?,
            }
        }
        if self.incomplete {
            writeln!(f, "  (messages were lost: steps may be missing)")?;
        }
        write!(f, "{}", self.summary())
    }
}

/// Whether a verdict ends the packet's way through the hooks.
fn ends_packet(v: &Verdict) -> bool {
    let code = v.code() as u32 & 0xff;
    matches!(v, Verdict::Drop)
        || (matches!(v, Verdict::Other(_)) && matches!(code, NF_DROP | NF_STOLEN | NF_QUEUE))
}

struct Open {
    path: PacketPath,
    last: Instant,
    /// Chains jumped to and not yet returned from, as (table, chain).
    calls: Vec<(String, String)>,
}

impl Open {
    fn new(path: PacketPath, now: Instant) -> Self {
        Open {
            path,
            last: now,
            calls: Vec::new(),
        }
    }
}

/// Groups trace messages into paths (pure: no socket, time passed in).
pub struct Assembler {
    own: Option<(Family, String)>,
    settle: Duration,
    open: FxHashMap<u32, Open>,
    done: VecDeque<PacketPath>,
}

impl Assembler {
    /// `own`: the session's table, whose rule marks packets (its steps are
    /// left out of paths); `None` to take every traced packet.
    pub fn new(own: Option<(Family, String)>, settle: Duration) -> Self {
        Assembler {
            own,
            settle,
            open: FxHashMap::default(),
            done: VecDeque::new(),
        }
    }

    /// Takes one message.
    pub fn push(&mut self, e: &TraceEvent, now: Instant) {
        let own = self
            .own
            .as_ref()
            .is_some_and(|(f, t)| *f == e.family && *t == e.table);
        if own {
            // The marking rule itself (the end of the chain is a rule
            // message too, without a handle).
            if e.kind == TraceKind::Rule && e.handle.is_some() {
                self.finish(e.id);
                let mut path = PacketPath::new(e.id);
                path.note_packet(e);
                self.open.insert(e.id, Open::new(path, now));
            } else if let Some(o) = self.open.get_mut(&e.id) {
                o.last = now;
            }
            return;
        }
        if !self.open.contains_key(&e.id) {
            if self.own.is_some() {
                return; // traced by someone else
            }
            self.open
                .insert(e.id, Open::new(PacketPath::new(e.id), now));
        }
        let o = self.open.get_mut(&e.id).expect("inserted above");
        o.last = now;
        o.path.note_packet(e);
        if e.has_headers() {
            o.calls.clear(); // a base chain starts: no jump is pending
        }
        // The kernel reports reaching the end of a chain as a rule message
        // without a handle (verdict continue). At the end of a chain jumped
        // to, that is the return to the caller; at the end of a base chain
        // the policy message follows, and says more.
        if e.kind == TraceKind::Rule && e.handle.is_none() {
            let here = (e.table.as_str(), e.chain.as_str());
            if o.calls
                .last()
                .is_some_and(|(t, c)| (t.as_str(), c.as_str()) == here)
            {
                o.calls.pop();
                let mut step = Step::from_event(e);
                step.kind = TraceKind::Return;
                step.verdict = None;
                o.path.steps.push(step);
            }
            return;
        }
        let step = Step::from_event(e);
        match &step.verdict {
            Some(Verdict::Jump(c)) => o.calls.push((e.table.clone(), c.clone())),
            Some(Verdict::Goto(c)) => {
                o.calls.pop();
                o.calls.push((e.table.clone(), c.clone()));
            }
            Some(Verdict::Return) => {
                o.calls.pop();
            }
            _ => {}
        }
        let decisive = match &step.verdict {
            Some(v @ Verdict::Accept) => Some((v.clone(), false)),
            Some(v) if ends_packet(v) => Some((v.clone(), true)),
            _ => None,
        };
        o.path.steps.push(step);
        if let Some((v, ends)) = decisive {
            o.path.verdict = Some(v);
            o.path.decided_by = Some(o.path.steps.len() - 1);
            if ends {
                self.finish(e.id);
            }
        }
    }

    /// Messages were lost: every open path may miss steps.
    pub fn lost(&mut self) {
        for o in self.open.values_mut() {
            o.path.incomplete = true;
        }
    }

    /// Ends the paths that have been quiet for `settle`.
    pub fn expire(&mut self, now: Instant) {
        let settle = self.settle;
        let mut quiet: Vec<(Instant, u32)> = self
            .open
            .iter()
            .filter(|(_, o)| now.duration_since(o.last) >= settle)
            .map(|(id, o)| (o.last, *id))
            .collect();
        quiet.sort_unstable();
        for (_, id) in quiet {
            self.finish(id);
        }
    }

    /// Ends every open path (oldest first).
    pub fn flush(&mut self) {
        self.expire(Instant::now() + self.settle);
    }

    /// When the next open path settles.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open.values().map(|o| o.last + self.settle).min()
    }

    /// The next finished path.
    pub fn pop(&mut self) -> Option<PacketPath> {
        self.done.pop_front()
    }

    /// Paths still open.
    pub fn open_paths(&self) -> usize {
        self.open.len()
    }

    fn finish(&mut self, id: u32) {
        if let Some(o) = self.open.remove(&id) {
            self.done.push_back(o.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(
        id: u32,
        table: &str,
        chain: &str,
        handle: Option<u64>,
        v: Option<Verdict>,
    ) -> TraceEvent {
        TraceEvent {
            id,
            kind: TraceKind::Rule,
            family: Family::Inet,
            table: table.into(),
            chain: chain.into(),
            handle,
            verdict: v,
            policy: None,
            nfproto: Some(2),
            iif: Some(3),
            iiftype: Some(1),
            oif: None,
            oiftype: None,
            mark: None,
            link_header: None,
            network_header: None,
            transport_header: None,
            unknown: Vec::new(),
        }
    }

    fn policy(id: u32, chain: &str, p: u32) -> TraceEvent {
        TraceEvent {
            kind: TraceKind::Policy,
            policy: Some(p),
            ..ev(id, "fw", chain, None, None)
        }
    }

    /// What the kernel sent for a SYN marked by the session, jumping into
    /// `admin`, matching a counter there, falling off its end and off the
    /// end of `input` into its drop policy (measured, see tests/trace.rs).
    fn jump_then_policy_drop(id: u32) -> Vec<TraceEvent> {
        vec![
            ev(id, "own", "prerouting", Some(2), Some(Verdict::Continue)),
            ev(id, "own", "prerouting", None, Some(Verdict::Continue)),
            TraceEvent {
                kind: TraceKind::Policy,
                policy: Some(crate::sys::NF_ACCEPT),
                ..ev(id, "own", "prerouting", None, None)
            },
            ev(
                id,
                "fw",
                "input",
                Some(4),
                Some(Verdict::Jump("admin".into())),
            ),
            ev(id, "fw", "admin", Some(8), Some(Verdict::Continue)),
            ev(id, "fw", "admin", None, Some(Verdict::Continue)),
            ev(id, "fw", "input", None, Some(Verdict::Continue)),
            policy(id, "input", NF_DROP),
        ]
    }

    fn own() -> Assembler {
        Assembler::new(
            Some((Family::Inet, "own".into())),
            Duration::from_millis(100),
        )
    }

    #[test]
    fn a_drop_ends_the_path_with_the_jump_and_its_return() {
        let mut a = own();
        let now = Instant::now();
        for e in jump_then_policy_drop(7) {
            a.push(&e, now);
        }
        let p = a.pop().expect("a drop ends the path at once");
        let steps: Vec<_> = p.steps.iter().map(|s| (s.chain.as_str(), s.kind)).collect();
        assert_eq!(
            steps,
            [
                ("input", TraceKind::Rule),
                ("admin", TraceKind::Rule),
                ("admin", TraceKind::Return),
                ("input", TraceKind::Policy),
            ]
        );
        assert_eq!(p.verdict, Some(Verdict::Drop));
        assert_eq!(p.decided_by, Some(3));
        assert_eq!(p.summary(), "DROP by inet fw input: policy drop");
        assert_eq!(a.open_paths(), 0);
    }

    #[test]
    fn a_reused_id_starts_a_new_path_and_foreign_traces_are_ignored() {
        let mut a = own();
        let now = Instant::now();
        for e in jump_then_policy_drop(7)
            .into_iter()
            .chain(jump_then_policy_drop(7))
        {
            a.push(&e, now);
        }
        // Traced by someone else: never marked by the session's rule.
        a.push(&ev(9, "fw", "input", Some(4), Some(Verdict::Drop)), now);
        assert!(a.pop().is_some() && a.pop().is_some());
        assert!(a.pop().is_none());
        assert_eq!(a.open_paths(), 0);
    }

    #[test]
    fn an_accepted_packet_settles_and_lost_messages_mark_it() {
        let mut a = own();
        let t0 = Instant::now();
        a.push(
            &ev(5, "own", "prerouting", Some(2), Some(Verdict::Continue)),
            t0,
        );
        a.push(&ev(5, "fw", "input", Some(6), Some(Verdict::Accept)), t0);
        a.lost();
        a.expire(t0 + Duration::from_millis(50));
        assert!(a.pop().is_none(), "an accepted packet may meet later hooks");
        assert_eq!(a.next_deadline(), Some(t0 + Duration::from_millis(100)));
        a.expire(t0 + Duration::from_millis(100));
        let p = a.pop().unwrap();
        assert_eq!(p.verdict, Some(Verdict::Accept));
        assert!(p.incomplete);
        assert_eq!(p.iif.as_ref().map(|i| i.index), Some(3));
    }

    #[test]
    fn without_a_session_table_every_traced_packet_is_taken() {
        let mut a = Assembler::new(None, Duration::ZERO);
        let now = Instant::now();
        a.push(&ev(9, "fw", "input", Some(4), Some(Verdict::Drop)), now);
        let p = a.pop().unwrap();
        assert_eq!(
            p.summary(),
            "DROP by inet fw input rule 4 (not in the ruleset read)"
        );
    }
}
