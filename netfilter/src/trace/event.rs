//! One trace message (`NFT_MSG_TRACE` on `NFNLGRP_NFTRACE`): a step of a
//! traced packet through one chain, decoded attribute by attribute.

use std::collections::VecDeque;

use serde::Serialize;

use crate::error::{DecodeError, Result};
use crate::expr::{AttrValue, Bytes, RawAttr, Verdict};
use crate::model::Family;
use crate::netlink::stream::{receive, Feed, Received, Stream};
use crate::netlink::{Msg, Socket};
use crate::netns::Netns;
use crate::packet::Headers;
use crate::sys::*;

crate::kernel_enum! {
    /// What a trace message reports (`enum nft_trace_types`).
    pub enum TraceKind: u32 {
        /// A rule matched; its verdict follows.
        Rule = NFT_TRACETYPE_RULE,
        /// The end of a chain jumped to (or an explicit `return`).
        Return = NFT_TRACETYPE_RETURN,
        /// The end of a base chain: its policy decided.
        Policy = NFT_TRACETYPE_POLICY,
    }
}

/// One decoded trace message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    /// The packet's trace id: every message about one pass of a packet
    /// through the hooks carries the same.
    pub id: u32,
    pub kind: TraceKind,
    /// The table's family.
    pub family: Family,
    pub table: String,
    pub chain: String,
    /// The rule's handle (rule messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    /// The rule's verdict (rule and return messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The chain's policy, `NF_ACCEPT` or `NF_DROP` (policy messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<u32>,
    /// The packet's protocol family (`NFPROTO_IPV4`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nfproto: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iif: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iiftype: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oif: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oiftype: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<u32>,
    /// Raw headers, sent with the first message of each base chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_header: Option<Bytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_header: Option<Bytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_header: Option<Bytes>,
    /// Attributes this code does not know, kept verbatim.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttr>,
}

impl TraceEvent {
    /// Decodes one message; `None` for messages that are not traces.
    pub fn decode(msg: &Msg<'_>) -> Result<Option<TraceEvent>, DecodeError> {
        if msg.nft_msg() != Some(NFT_MSG_TRACE) {
            return Ok(None);
        }
        let (family, attrs) = msg.nfgen()?;
        let (mut id, mut kind, mut table, mut chain) = (None, None, None, None);
        let mut ev = TraceEvent {
            id: 0,
            kind: TraceKind::Rule,
            family: Family::from(family),
            table: String::new(),
            chain: String::new(),
            handle: None,
            verdict: None,
            policy: None,
            nfproto: None,
            iif: None,
            iiftype: None,
            oif: None,
            oiftype: None,
            mark: None,
            link_header: None,
            network_header: None,
            transport_header: None,
            unknown: Vec::new(),
        };
        for a in attrs {
            let a = a?;
            match a.kind() {
                NFTA_TRACE_ID => id = Some(a.u32_be()?),
                NFTA_TRACE_TYPE => kind = Some(TraceKind::from(a.u32_be()?)),
                NFTA_TRACE_TABLE => table = Some(a.str()?),
                NFTA_TRACE_CHAIN => chain = Some(a.str()?),
                NFTA_TRACE_RULE_HANDLE => ev.handle = Some(a.u64_be()?),
                NFTA_TRACE_VERDICT => ev.verdict = Some(Verdict::decode(&a)?),
                NFTA_TRACE_POLICY => ev.policy = Some(a.u32_be()?),
                NFTA_TRACE_NFPROTO => ev.nfproto = Some(a.u32_be()?),
                NFTA_TRACE_IIF => ev.iif = Some(a.u32_be()?),
                NFTA_TRACE_IIFTYPE => ev.iiftype = Some(a.u16_be()?),
                NFTA_TRACE_OIF => ev.oif = Some(a.u32_be()?),
                NFTA_TRACE_OIFTYPE => ev.oiftype = Some(a.u16_be()?),
                NFTA_TRACE_MARK => ev.mark = Some(a.u32_be()?),
                NFTA_TRACE_LL_HEADER => ev.link_header = Some(Bytes::from(a.payload())),
                NFTA_TRACE_NETWORK_HEADER => ev.network_header = Some(Bytes::from(a.payload())),
                NFTA_TRACE_TRANSPORT_HEADER => ev.transport_header = Some(Bytes::from(a.payload())),
                NFTA_TRACE_PAD => {}
                _ => ev.unknown.push(RawAttr::from_attr(&a)),
            }
        }
        let missing = |attr| DecodeError::Missing {
            object: "trace",
            attr,
        };
        ev.id = id.ok_or(missing("NFTA_TRACE_ID"))?;
        ev.kind = kind.ok_or(missing("NFTA_TRACE_TYPE"))?;
        ev.table = table.ok_or(missing("NFTA_TRACE_TABLE"))?.to_owned();
        ev.chain = chain.ok_or(missing("NFTA_TRACE_CHAIN"))?.to_owned();
        Ok(Some(ev))
    }

    /// Whether the message carries the packet's headers (the first
    /// message of each base chain does).
    pub fn has_headers(&self) -> bool {
        self.network_header.is_some() || self.link_header.is_some()
    }

    /// The packet's headers, parsed; empty when not carried.
    pub fn headers(&self) -> Headers {
        Headers::from_parts(
            self.link_header.as_ref().map(|b| &b.0[..]),
            self.network_header.as_ref().map(|b| &b.0[..]),
            self.transport_header.as_ref().map(|b| &b.0[..]),
        )
    }

    /// What decided at this step: the rule's verdict, or the policy as
    /// `accept` / `drop`.
    pub fn decision(&self) -> Option<Verdict> {
        match (self.kind, &self.verdict, self.policy) {
            (TraceKind::Policy, _, Some(p)) => Some(policy_verdict(p)),
            (_, Some(v), _) => Some(v.clone()),
            _ => None,
        }
    }
}

/// A chain policy as a verdict.
pub fn policy_verdict(p: u32) -> Verdict {
    match p {
        NF_ACCEPT => Verdict::Accept,
        NF_DROP => Verdict::Drop,
        code => Verdict::Other(Box::new(crate::expr::OtherVerdict {
            code: code as i32,
            chain: None,
            chain_id: None,
            unknown: Vec::new(),
        })),
    }
}

/// A subscription to one namespace's trace messages: every packet that has
/// `meta nftrace` set, whoever set it. A [`Feed`] of [`TraceItem`]s.
pub struct Tracer {
    sock: Socket,
    pending: VecDeque<TraceItem>,
}

/// One thing read from a [`Tracer`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceItem {
    Event(Box<TraceEvent>),
    /// The socket overflowed: messages were lost, so some paths are
    /// incomplete.
    Lost,
}

impl Tracer {
    /// Subscribes inside `netns` with a receive buffer of `bytes`.
    pub fn subscribe(netns: &Netns, bytes: usize) -> Result<Self> {
        let mut sock = Socket::open(netns)?;
        sock.set_receive_buffer(bytes)?;
        sock.subscribe(NFNLGRP_NFTRACE)?;
        Ok(Tracer {
            sock,
            pending: VecDeque::new(),
        })
    }

    /// An async `Stream` of items (needs a Tokio runtime).
    pub fn into_stream(self) -> Result<Stream<Tracer>> {
        Stream::new(self)
    }
}

impl Feed for Tracer {
    type Item = TraceItem;

    fn fill(&mut self, block: bool) -> Result<bool> {
        let pending = &mut self.pending;
        let r = receive(&mut self.sock, block, TraceEvent::decode, |e| {
            pending.push_back(TraceItem::Event(Box::new(e)))
        })?;
        if r == Received::Overflow {
            pending.push_back(TraceItem::Lost);
        }
        Ok(r != Received::Nothing)
    }

    fn pop(&mut self) -> Option<TraceItem> {
        self.pending.pop_front()
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}
