//! NFLOG (`nfnetlink_log`): the packets that `log group N` statements send,
//! read from one namespace as typed values.
//!
//! [`Nflog::bind`] binds a group with a copy mode and range, queue
//! threshold, flush timeout and per-packet sequence numbers; dropping the
//! [`Nflog`] unbinds it (the kernel also unbinds when the socket closes).
//! Packets come as [`LogItem::Packet`]. When the socket overflows
//! (`ENOBUFS`: we read too slowly) the kernel's per-group sequence number
//! tells exactly how many were lost, and the stream yields
//! [`LogItem::Lost`] with that count before the next packet: never a
//! silent gap.
//!
//! ```no_run
//! use linx_netfilter::netlink::stream::Feed;
//! use linx_netfilter::nflog::{LogConfig, LogItem, Nflog};
//! let netns = "/run/netns/pod1".parse().unwrap();
//! let mut log = Nflog::bind(&netns, &LogConfig::group(7))?;
//! while let LogItem::Packet(p) = log.next_blocking()? {
//!     println!("{p}");
//! }
//! # Ok::<(), linx_netfilter::Error>(())
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::error::{DecodeError, Error, Result};
use crate::interfaces::{Interface, Interfaces};
use crate::model::Family;
use crate::netlink::stream::{receive, Feed, Received, Stream};
use crate::netlink::{Msg, Socket};
use crate::netns::Netns;
use crate::packet::Headers;
use crate::sys::*;

/// How much of each packet the kernel copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyMode {
    /// Metadata only (no payload).
    Meta,
    /// Up to `range` bytes from the network header (0: the whole packet,
    /// within the netlink buffer).
    Packet { range: u32 },
}

/// How to bind a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    pub group: u16,
    pub copy: CopyMode,
    /// Packets the kernel queues before sending them in one datagram
    /// (`None`: the kernel's default, 100).
    pub queue_threshold: Option<u32>,
    /// How long the kernel holds a partial queue (`None`: its default,
    /// 1 s), in steps of 10 ms.
    pub flush_timeout: Option<Duration>,
    /// Size of the kernel's per-group send buffer (`None`: its default).
    pub buffer_size: Option<u32>,
    /// Our socket's receive buffer: what the kernel can queue for us
    /// before packets are lost.
    pub receive_buffer: usize,
}

impl LogConfig {
    /// Group `group`: whole packets, batches of up to 100 packets (the
    /// kernel's default) but none held longer than 50 ms (the kernel's
    /// default of 1 s is long for someone watching), an 8 MiB receive
    /// buffer.
    pub fn group(group: u16) -> Self {
        LogConfig {
            group,
            copy: CopyMode::Packet { range: 0xffff },
            queue_threshold: None,
            flush_timeout: Some(Duration::from_millis(50)),
            buffer_size: None,
            receive_buffer: 8 << 20,
        }
    }
}

/// One thing read from a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogItem {
    Packet(Box<LoggedPacket>),
    /// This many packets were logged but never reached us (the socket
    /// overflowed): counted from the kernel's sequence numbers.
    Lost(u64),
}

/// A logged packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoggedPacket {
    pub group: u16,
    /// The `log prefix`, when the rule gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The family the packet was logged in (`ip`, `ip6`, `bridge`, ...).
    pub family: Family,
    /// Hook number (see [`LoggedPacket::hook_name`]).
    pub hook: u8,
    /// Link-layer protocol (EtherType).
    pub hw_protocol: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indev: Option<Interface>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outdev: Option<Interface>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physindev: Option<Interface>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physoutdev: Option<Interface>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<u32>,
    /// Owner of the sending socket, for locally generated packets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// When the packet was received, since the Unix epoch (when the kernel
    /// stamped it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Duration>,
    /// The group's sequence number of this packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hw_addr: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hw_type: Option<u16>,
    /// The copied bytes, from the network header.
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// Length of the copied bytes.
    pub payload_len: usize,
    pub headers: Headers,
}

impl LoggedPacket {
    /// Decodes one `NFULNL_MSG_PACKET`; `None` for other messages.
    /// Interfaces carry their index only (see [`Nflog`] for names).
    pub fn decode(msg: &Msg<'_>) -> Result<Option<LoggedPacket>, DecodeError> {
        if msg.ty != ulog_type(NFULNL_MSG_PACKET) {
            return Ok(None);
        }
        let (family, attrs) = msg.nfgen()?;
        let group = u16::from_be_bytes([msg.payload[2], msg.payload[3]]);
        let mut p = LoggedPacket {
            group,
            prefix: None,
            family: Family::from(family),
            hook: 0,
            hw_protocol: 0,
            indev: None,
            outdev: None,
            physindev: None,
            physoutdev: None,
            mark: None,
            uid: None,
            gid: None,
            timestamp: None,
            seq: None,
            hw_addr: None,
            hw_type: None,
            payload: Vec::new(),
            payload_len: 0,
            headers: Headers::default(),
        };
        let mut seen_hdr = false;
        let iface = |a: &crate::netlink::Attr<'_>| -> Result<Option<Interface>, DecodeError> {
            Ok(Some(Interface {
                index: a.u32_be()?,
                name: None,
            }))
        };
        for a in attrs {
            let a = a?;
            match a.kind() {
                NFULA_PACKET_HDR => {
                    let b = fixed(&a, 4)?;
                    p.hw_protocol = u16::from_be_bytes([b[0], b[1]]);
                    p.hook = b[2];
                    seen_hdr = true;
                }
                NFULA_MARK => p.mark = Some(a.u32_be()?),
                NFULA_TIMESTAMP => {
                    let b = fixed(&a, 16)?;
                    let sec = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
                    let usec = u64::from_be_bytes(b[8..16].try_into().expect("8 bytes"));
                    p.timestamp = Some(
                        Duration::from_secs(sec)
                            .checked_add(Duration::from_micros(usec))
                            .ok_or(DecodeError::Invalid {
                                object: "logged packet",
                                field: "timestamp",
                                value: sec,
                            })?,
                    );
                }
                NFULA_IFINDEX_INDEV => p.indev = iface(&a)?,
                NFULA_IFINDEX_OUTDEV => p.outdev = iface(&a)?,
                NFULA_IFINDEX_PHYSINDEV => p.physindev = iface(&a)?,
                NFULA_IFINDEX_PHYSOUTDEV => p.physoutdev = iface(&a)?,
                NFULA_HWADDR => {
                    let b = fixed(&a, 4)?;
                    let len = (u16::from_be_bytes([b[0], b[1]]) as usize).min(8);
                    let addr = a.payload().get(4..4 + len).ok_or(DecodeError::Truncated {
                        what: "NFULA_HWADDR",
                        need: 4 + len,
                        have: a.payload().len(),
                    })?;
                    p.hw_addr = Some(addr.to_vec());
                }
                NFULA_PAYLOAD => p.payload = a.payload().to_vec(),
                NFULA_PREFIX => {
                    let s = a.str()?;
                    if !s.is_empty() {
                        p.prefix = Some(s.to_owned());
                    }
                }
                NFULA_UID => p.uid = Some(a.u32_be()?),
                NFULA_GID => p.gid = Some(a.u32_be()?),
                NFULA_SEQ => p.seq = Some(a.u32_be()?),
                NFULA_HWTYPE => p.hw_type = Some(a.u16_be()?),
                _ => {}
            }
        }
        if !seen_hdr {
            return Err(DecodeError::Missing {
                object: "logged packet",
                attr: "NFULA_PACKET_HDR",
            });
        }
        p.payload_len = p.payload.len();
        if matches!(p.family, Family::Ip | Family::Ip6 | Family::Inet) {
            p.headers = Headers::from_ip(&p.payload);
        } else if p.hw_protocol == 0x0800 || p.hw_protocol == 0x86dd {
            // bridge and netdev copy from the network header too.
            p.headers = Headers::from_ip(&p.payload);
        }
        Ok(Some(p))
    }

    /// nft's name for the hook the packet was logged at.
    pub fn hook_name(&self) -> String {
        crate::print::hook_name(self.family, self.hook as u32)
    }

    /// The transport payload (after the TCP/UDP/ICMP header), when copied.
    pub fn data(&self) -> Option<&[u8]> {
        self.headers.payload(&self.payload)
    }
}

fn fixed<'a>(a: &crate::netlink::Attr<'a>, n: usize) -> Result<&'a [u8], DecodeError> {
    a.payload().get(..n).ok_or(DecodeError::BadLength {
        attr: a.kind(),
        len: a.payload().len(),
        expected: n,
    })
}

fn ulog_type(msg: u32) -> u16 {
    ((NFNL_SUBSYS_ULOG << 8) | msg) as u16
}

impl fmt::Display for LoggedPacket {
    /// One line: `group 7 prefix "drop " ip input iif "eth0" ip saddr ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}", self.group)?;
        if let Some(p) = &self.prefix {
            write!(f, " prefix {p:?}")?;
        }
        write!(f, " {} {}", self.family.name(), self.hook_name())?;
        for (key, dev) in [("iif", &self.indev), ("oif", &self.outdev)] {
            if let Some(d) = dev {
                match &d.name {
                    Some(n) => write!(f, " {key} {n:?}")?,
                    None => write!(f, " {key} {}", d.index)?,
                }
            }
        }
        if let Some(m) = self.mark {
            write!(f, " mark {m:#x}")?;
        }
        if let Some(u) = self.uid {
            write!(f, " skuid {u}")?;
        }
        let h = self.headers.to_string();
        if !h.is_empty() {
            write!(f, " {h}")?;
        }
        Ok(())
    }
}

/// A bound NFLOG group in one namespace. A [`Feed`]: read it blocking,
/// with a timeout, or as an async stream ([`Nflog::into_stream`]).
pub struct Nflog {
    sock: Socket,
    group: u16,
    pending: VecDeque<LogItem>,
    /// The sequence number the next packet should carry.
    expect: u32,
    /// Packets received, and packets counted lost.
    received: u64,
    lost: u64,
    names: Interfaces,
}

impl Nflog {
    /// Binds `cfg.group` inside `netns`. Fails (`EBUSY`) when another
    /// socket of that namespace has the group.
    pub fn bind(netns: &Netns, cfg: &LogConfig) -> Result<Self> {
        let mut sock = Socket::open(netns)?;
        sock.set_receive_buffer(cfg.receive_buffer)?;
        let group = cfg.group;
        let ty = ulog_type(NFULNL_MSG_CONFIG);
        let named = |e: Error| match e {
            Error::Kernel {
                op,
                object,
                errno,
                extack,
            } if object.is_empty() => Error::Kernel {
                op,
                object: format!("nflog group {group}"),
                errno,
                extack,
            },
            e => e,
        };
        let (mode, range) = match cfg.copy {
            CopyMode::Meta => (NFULNL_COPY_META, 0),
            CopyMode::Packet { range } => (NFULNL_COPY_PACKET, range),
        };
        let mut m = [0u8; 8]; // struct nfulnl_msg_config_mode, padded
        m[..4].copy_from_slice(&range.to_be_bytes());
        m[4] = mode as u8;
        // Bind and configure in one message: the group is never bound with
        // settings other than ours, not even between two messages.
        sock.configure(
            ty,
            0,
            group,
            |w| {
                w.put(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND as u8]);
                w.put(NFULA_CFG_MODE, &m);
                w.put(NFULA_CFG_FLAGS, &(NFULNL_CFG_F_SEQ as u16).to_be_bytes());
                if let Some(q) = cfg.queue_threshold {
                    w.put_u32_be(NFULA_CFG_QTHRESH, q);
                }
                if let Some(t) = cfg.flush_timeout {
                    // In hundredths of a second.
                    w.put_u32_be(
                        NFULA_CFG_TIMEOUT,
                        (t.as_millis() / 10).min(u32::MAX as u128) as u32,
                    );
                }
                if let Some(b) = cfg.buffer_size {
                    w.put_u32_be(NFULA_CFG_NLBUFSIZ, b);
                }
            },
            "bind nflog group",
        )
        .map_err(named)?;
        Ok(Nflog {
            names: Interfaces::open(netns)?,
            sock,
            group,
            pending: VecDeque::new(),
            expect: 0,
            received: 0,
            lost: 0,
        })
    }

    /// The bound group.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// Packets received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets reported lost so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// An async `Stream` of items (needs a Tokio runtime).
    pub fn into_stream(self) -> Result<Stream<Nflog>> {
        Stream::new(self)
    }

    fn take(&mut self, mut p: LoggedPacket) -> Result<(), DecodeError> {
        let seq = p.seq.ok_or(DecodeError::Missing {
            object: "logged packet (sequence numbers were asked for)",
            attr: "NFULA_SEQ",
        })?;
        // Wrapping distance: a group's counter wraps at 2^32.
        let gap = seq.wrapping_sub(self.expect);
        if gap != 0 && gap < u32::MAX / 2 {
            self.lost += gap as u64;
            self.pending.push_back(LogItem::Lost(gap as u64));
        }
        self.expect = seq.wrapping_add(1);
        for dev in [
            &mut p.indev,
            &mut p.outdev,
            &mut p.physindev,
            &mut p.physoutdev,
        ]
        .into_iter()
        .flatten()
        {
            *dev = self.names.get(dev.index);
        }
        self.received += 1;
        self.pending.push_back(LogItem::Packet(Box::new(p)));
        Ok(())
    }
}

impl Feed for Nflog {
    type Item = LogItem;

    fn fill(&mut self, block: bool) -> Result<bool> {
        let mut got = Vec::new();
        // On overflow, what was lost shows as a gap in the sequence numbers
        // of the packets that follow: nothing to report before then.
        let r = receive(&mut self.sock, block, LoggedPacket::decode, |p| got.push(p))?;
        for p in got {
            self.take(p)?;
        }
        Ok(r != Received::Nothing)
    }

    fn pop(&mut self) -> Option<LogItem> {
        self.pending.pop_front()
    }

    fn raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}

impl Drop for Nflog {
    fn drop(&mut self) {
        let group = self.group;
        let _ = self.sock.configure(
            ulog_type(NFULNL_MSG_CONFIG),
            0,
            group,
            |w| w.put(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_UNBIND as u8]),
            "unbind nflog group",
        );
    }
}
