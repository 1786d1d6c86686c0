//! A NETLINK_NETFILTER socket bound to one network namespace.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use nix::sys::socket::{setsockopt, sockopt};

use super::attr::Writer;
use super::batch::Batch;
use super::describe;
use super::msg::{KernelError, Msg, Msgs};
use crate::error::{BatchFailure, DecodeError, Error, MessageFailure, Result};
use crate::netns::Netns;
use crate::sys::{self, nft_msg_type};

/// Receive buffer for one `recv`: the kernel fills at most 32 KiB per dump
/// message, but multicast events for big rules can be larger.
const RECV_CHUNK: usize = 256 * 1024;
/// Kernel memory charged per queued answer (an error or an echo; skb
/// overhead included, measured generously), used to size the receive
/// buffer for a batch so that even one answer per message fits.
const ACK_TRUESIZE: usize = 1024;
const MIN_SOCKBUF: usize = 4 << 20;
/// A dump interrupted by a concurrent commit is retried this many times.
const DUMP_ATTEMPTS: usize = 32;
const ERESTART: i32 = 85;

/// A netlink socket speaking nf_tables inside one network namespace.
pub struct Socket {
    sock: netlink_sys::Socket,
    /// The namespace as the caller named it, for messages only: a socket
    /// opened from a held descriptor does not keep that descriptor open
    /// (the socket itself pins its namespace; see [`Socket::netns`]).
    netns_name: String,
    seq: u32,
    rbuf: Vec<u8>,
    rcvbuf: usize,
    sndbuf: usize,
}

/// A generation as `NFT_MSG_GETGEN` reports it, with the last writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    pub id: u32,
    /// Pid of the process that made the last commit (when the kernel says).
    pub pid: Option<u32>,
    /// Its command name.
    pub name: Option<String>,
}

/// The messages of a completed dump, stored back to back.
#[derive(Clone, Debug, Default)]
pub struct Dump {
    buf: Vec<u8>,
    count: usize,
}

impl Dump {
    pub fn iter(&self) -> Msgs<'_> {
        Msgs::new(&self.buf)
    }
    pub fn len(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }
}

impl Socket {
    /// Opens a socket inside `netns`; it stays bound to that namespace for
    /// its whole life, whichever thread uses it.
    pub fn open(netns: &Netns) -> Result<Self> {
        let sock = netns.run_in(|| netlink_sys::Socket::new(sys::NETLINK_NETFILTER))?;
        let mut sock = sock.map_err(|source| Error::Io {
            op: "socket",
            source,
        })?;
        sock.bind_auto()
            .map_err(|source| Error::Io { op: "bind", source })?;
        sock.set_ext_ack(true).map_err(|source| Error::Io {
            op: "NETLINK_EXT_ACK",
            source,
        })?;
        sock.set_cap_ack(true).map_err(|source| Error::Io {
            op: "NETLINK_CAP_ACK",
            source,
        })?;
        let mut s = Socket {
            sock,
            netns_name: netns.to_string(),
            seq: 0,
            rbuf: Vec::with_capacity(RECV_CHUNK),
            rcvbuf: 0,
            sndbuf: 0,
        };
        s.ensure_buffers(MIN_SOCKBUF, MIN_SOCKBUF)?;
        s.seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1);
        Ok(s)
    }

    /// The namespace this socket lives in, opened anew from the socket
    /// (`SIOCGSKNS`): e.g. to open another socket beside it without having
    /// kept a descriptor of the namespace.
    pub fn netns(&self) -> Result<Netns> {
        // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor.
        let fd = unsafe { libc::ioctl(self.sock.as_raw_fd(), libc::SIOCGSKNS) };
        if fd < 0 {
            return Err(Error::Netns {
                netns: self.netns_name.clone(),
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
        Ok(Netns::Fd(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    /// The namespace as it was named when the socket was opened.
    pub fn netns_name(&self) -> &str {
        &self.netns_name
    }

    /// The socket's netlink port id (the kernel's owner id for owned tables).
    pub fn port_id(&self) -> Result<u32> {
        let mut addr = netlink_sys::SocketAddr::new(0, 0);
        self.sock
            .get_address(&mut addr)
            .map_err(|source| Error::Io {
                op: "getsockname",
                source,
            })?;
        Ok(addr.port_number())
    }

    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is owned by `self.sock` and outlives the borrow.
        unsafe { BorrowedFd::borrow_raw(self.sock.as_raw_fd()) }
    }

    /// Grows the kernel-side buffers (with the FORCE variants: as root we may
    /// exceed rmem_max/wmem_max) so big batches and their acknowledgements
    /// never hit ENOBUFS.
    fn ensure_buffers(&mut self, rcv: usize, snd: usize) -> Result<()> {
        if rcv > self.rcvbuf {
            let want = rcv.min(i32::MAX as usize / 2);
            setsockopt(&self.fd(), sockopt::RcvBufForce, &want)
                .or_else(|_| setsockopt(&self.fd(), sockopt::RcvBuf, &want))
                .map_err(|e| Error::Io {
                    op: "SO_RCVBUF",
                    source: e.into(),
                })?;
            self.rcvbuf = want;
        }
        if snd > self.sndbuf {
            let want = snd.min(i32::MAX as usize / 2);
            setsockopt(&self.fd(), sockopt::SndBufForce, &want)
                .or_else(|_| setsockopt(&self.fd(), sockopt::SndBuf, &want))
                .map_err(|e| Error::Io {
                    op: "SO_SNDBUF",
                    source: e.into(),
                })?;
            self.sndbuf = want;
        }
        Ok(())
    }

    fn next_seq(&mut self, n: u32) -> u32 {
        let first = self.seq.wrapping_add(1).max(1);
        self.seq = first.wrapping_add(n);
        first
    }

    fn send(&self, bufs: &[IoSlice<'_>], op: &'static str) -> Result<()> {
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        let sent = nix::sys::socket::sendmsg::<nix::sys::socket::NetlinkAddr>(
            self.sock.as_raw_fd(),
            bufs,
            &[],
            nix::sys::socket::MsgFlags::empty(),
            None,
        )
        .map_err(|e| Error::Io {
            op,
            source: e.into(),
        })?;
        if sent != want {
            return Err(Error::Io {
                op,
                source: io::Error::new(io::ErrorKind::WriteZero, "short netlink send"),
            });
        }
        Ok(())
    }

    /// One `recv` into the internal buffer. `Ok(false)` when non-blocking and
    /// nothing is queued.
    fn recv(&mut self, nonblocking: bool, op: &'static str) -> Result<bool> {
        self.rbuf.clear();
        let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        match self.sock.recv(&mut self.rbuf, flags) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Err(Error::Overflow { op }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(source) => Err(Error::Io { op, source }),
        }
    }

    /// Sends one request (not a batch) and collects its answer messages up
    /// to the acknowledgement, NLMSG_DONE, or the single reply.
    fn request(
        &mut self,
        ty: u16,
        flags: u16,
        (family, res_id): (u8, u16),
        attrs: impl FnOnce(&mut Writer),
        op: &'static str,
    ) -> Result<(Dump, bool)> {
        let seq = self.next_seq(1);
        let mut w = Writer::with_capacity(128);
        let start = w.begin_msg(
            ty,
            sys::NLM_F_REQUEST | sys::NLM_F_ACK | flags,
            seq,
            family,
            res_id,
        );
        attrs(&mut w);
        w.end_msg(start);
        self.send(&[IoSlice::new(w.as_bytes())], op)?;
        let mut out = Dump::default();
        let mut interrupted = false;
        loop {
            self.recv(false, op)?;
            // One growth per datagram, not per message.
            out.buf.reserve(self.rbuf.len());
            for m in Msgs::new(&self.rbuf) {
                let m = m?;
                if m.seq != seq {
                    continue; // stale answer to an earlier request
                }
                if m.flags & sys::NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match m.ty {
                    sys::NLMSG_DONE => {
                        // DONE carries the dump's final status.
                        let status = m
                            .payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        if status < 0 {
                            return Err(self.kernel_error(op, &w, -status, None));
                        }
                        return Ok((out, interrupted));
                    }
                    sys::NLMSG_ERROR => {
                        let e = m.error()?.expect("NLMSG_ERROR");
                        if e.errno != 0 {
                            return Err(self.kernel_error(op, &w, e.errno, e.message));
                        }
                        return Ok((out, interrupted));
                    }
                    _ => {
                        out.buf.extend_from_slice(m.bytes);
                        out.buf.resize(super::attr::align4(out.buf.len()), 0);
                        out.count += 1;
                    }
                }
            }
        }
    }

    fn kernel_error(
        &self,
        op: &'static str,
        req: &Writer,
        errno: i32,
        extack: Option<String>,
    ) -> Error {
        let object = Msgs::new(req.as_bytes())
            .next()
            .and_then(|m| m.ok())
            .map(|m| describe::object_name(&m))
            .unwrap_or_default();
        Error::Kernel {
            op,
            object,
            errno,
            extack,
        }
    }

    /// Dumps every object of one kind (`NFT_MSG_GETTABLE`, `GETRULE`, ...),
    /// optionally narrowed by attributes (e.g. one table's rules, one chain).
    /// A dump the kernel marks interrupted (a commit happened meanwhile) is
    /// discarded and redone, so the result is one consistent snapshot.
    pub fn dump(&mut self, msg: u32, family: u8, attrs: impl Fn(&mut Writer)) -> Result<Dump> {
        for _ in 0..DUMP_ATTEMPTS {
            let (d, interrupted) = self.request(
                nft_msg_type(msg),
                sys::NLM_F_DUMP,
                (family, 0),
                &attrs,
                "dump",
            )?;
            if !interrupted {
                return Ok(d);
            }
        }
        Err(Error::Io {
            op: "dump",
            source: io::Error::other("dump interrupted by concurrent commits too many times"),
        })
    }

    /// A non-dump GET (one object), returning its reply messages.
    pub fn get(&mut self, msg: u32, family: u8, attrs: impl FnOnce(&mut Writer)) -> Result<Dump> {
        self.request(nft_msg_type(msg), 0, (family, 0), attrs, describe_get(msg))
            .map(|(d, _)| d)
    }

    /// Sends one request of another nfnetlink subsystem (`ty` is the whole
    /// message type, e.g. NFLOG's `NFULNL_MSG_CONFIG`; `res_id` is that
    /// subsystem's resource, e.g. the log group) and waits for its
    /// acknowledgement.
    pub fn configure(
        &mut self,
        ty: u16,
        family: u8,
        res_id: u16,
        attrs: impl FnOnce(&mut Writer),
        op: &'static str,
    ) -> Result<()> {
        self.request(ty, 0, (family, res_id), attrs, op).map(|_| ())
    }

    /// The ruleset's current generation (`NFT_MSG_GETGEN`): one round trip.
    pub fn generation(&mut self) -> Result<Generation> {
        let d = self.get(sys::NFT_MSG_GETGEN, 0, |_| {})?;
        let m = d.iter().next().ok_or(DecodeError::Missing {
            object: "generation",
            attr: "NFT_MSG_NEWGEN",
        })??;
        let (_, attrs) = m.nfgen()?;
        let mut g = Generation {
            id: 0,
            pid: None,
            name: None,
        };
        let mut seen = false;
        for a in attrs {
            let a = a?;
            match a.kind() {
                sys::NFTA_GEN_ID => {
                    g.id = a.u32_be()?;
                    seen = true;
                }
                sys::NFTA_GEN_PROC_PID => g.pid = Some(a.u32_be()?),
                sys::NFTA_GEN_PROC_NAME => g.name = Some(a.str()?.to_owned()),
                _ => {}
            }
        }
        if !seen {
            return Err(DecodeError::Missing {
                object: "generation",
                attr: "NFTA_GEN_ID",
            }
            .into());
        }
        Ok(g)
    }

    /// Sends `batch` as ONE transaction. With `genid`, the kernel refuses it
    /// whole ([`Error::GenerationMismatch`]) if any other commit happened
    /// since that generation was read. Returns the generation the commit
    /// produced when guarded (the kernel counts commits one by one).
    pub fn commit(&mut self, batch: &mut Batch, genid: Option<u32>) -> Result<Option<u32>> {
        self.transact(batch, genid, true, None)?;
        Ok(genid.map(|g| g.wrapping_add(1).max(1)))
    }

    /// [`Socket::commit`], also returning what the kernel echoed for
    /// messages sent with `NLM_F_ECHO` (e.g. added rules with their handles).
    pub fn commit_with_echo(
        &mut self,
        batch: &mut Batch,
        genid: Option<u32>,
    ) -> Result<(Option<u32>, Dump)> {
        let mut echoes = Dump::default();
        self.transact(batch, genid, true, Some(&mut echoes))?;
        Ok((genid.map(|g| g.wrapping_add(1).max(1)), echoes))
    }

    /// Has the kernel validate `batch` fully without applying it (the batch
    /// is sent without BATCH_END, as `nft -c` does).
    pub fn check(&mut self, batch: &mut Batch, genid: Option<u32>) -> Result<()> {
        self.transact(batch, genid, false, None)
    }

    fn transact(
        &mut self,
        batch: &mut Batch,
        genid: Option<u32>,
        commit: bool,
        mut echoes: Option<&mut Dump>,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u32;
        let first = self.next_seq(n + 2);
        batch.stamp_sequence(first + 1);
        let res_id = sys::NFNL_SUBSYS_NFTABLES as u16;
        let mut begin = Writer::with_capacity(32);
        let s = begin.begin_msg(
            sys::NFNL_MSG_BATCH_BEGIN,
            sys::NLM_F_REQUEST,
            first,
            0,
            res_id,
        );
        if let Some(g) = genid {
            begin.put_u32_be(sys::NFNL_BATCH_GENID, g);
        }
        begin.end_msg(s);
        let mut end = Writer::with_capacity(20);
        let s = end.begin_msg(
            sys::NFNL_MSG_BATCH_END,
            sys::NLM_F_REQUEST,
            first + n + 1,
            0,
            res_id,
        );
        end.end_msg(s);
        let total = begin.len() + batch.bytes().len() + end.len();
        self.ensure_buffers(
            MIN_SOCKBUF.max(batch.len() * ACK_TRUESIZE * 2),
            MIN_SOCKBUF.max(total * 2),
        )?;

        let mut parts = vec![IoSlice::new(begin.as_bytes()), IoSlice::new(batch.bytes())];
        if commit {
            parts.push(IoSlice::new(end.as_bytes()));
        }
        self.send(&parts, "send batch")?;

        // The kernel processes the batch inside sendmsg: every answer is
        // queued by now, so drain without blocking.
        let mut failures = Vec::new();
        let mut stale_generation = false;
        while self.recv(true, "batch acknowledgements")? {
            for m in Msgs::new(&self.rbuf) {
                let m = m?;
                let Some(e) = m.error()? else {
                    if let Some(out) = echoes.as_deref_mut() {
                        if m.seq > first && m.seq <= first + n {
                            out.buf.extend_from_slice(m.bytes);
                            out.buf.resize(super::attr::align4(out.buf.len()), 0);
                            out.count += 1;
                        }
                    }
                    continue;
                };
                if e.errno == 0 || e.seq < first || e.seq > first + n + 1 {
                    continue;
                }
                if e.seq == first && e.errno == ERESTART && genid.is_some() {
                    stale_generation = true;
                    continue;
                }
                failures.push(failure(batch, first, e));
            }
        }
        if stale_generation {
            return Err(Error::GenerationMismatch {
                expected: genid.unwrap_or(0),
            });
        }
        if !failures.is_empty() {
            failures.sort_by_key(|f| f.index);
            return Err(Error::Batch(BatchFailure(failures)));
        }
        Ok(())
    }

    /// Grows the receive buffer to at least `bytes` (never shrinks it).
    pub fn grow_receive_buffer(&mut self, bytes: usize) -> Result<()> {
        self.ensure_buffers(bytes, 0)
    }

    /// Sets the receive buffer to exactly `bytes` (may shrink it).
    pub fn set_receive_buffer(&mut self, bytes: usize) -> Result<()> {
        setsockopt(&self.fd(), sockopt::RcvBufForce, &bytes)
            .or_else(|_| setsockopt(&self.fd(), sockopt::RcvBuf, &bytes))
            .map_err(|e| Error::Io {
                op: "SO_RCVBUF",
                source: e.into(),
            })?;
        self.rcvbuf = bytes;
        Ok(())
    }

    /// Joins a multicast group (e.g. `NFNLGRP_NFTABLES` for ruleset events).
    pub fn subscribe(&mut self, group: u32) -> Result<()> {
        self.sock.add_membership(group).map_err(|source| Error::Io {
            op: "NETLINK_ADD_MEMBERSHIP",
            source,
        })
    }

    /// Blocks for the next datagram and hands each message in it to `f`.
    pub fn recv_messages(&mut self, mut f: impl FnMut(Msg<'_>)) -> Result<()> {
        self.recv(false, "receive")?;
        for m in Msgs::new(&self.rbuf) {
            f(m?);
        }
        Ok(())
    }

    /// Like [`Socket::recv_messages`], but returns `Ok(false)` at once when
    /// nothing is queued.
    pub fn try_recv_messages(&mut self, mut f: impl FnMut(Msg<'_>)) -> Result<bool> {
        if !self.recv(true, "receive")? {
            return Ok(false);
        }
        for m in Msgs::new(&self.rbuf) {
            f(m?);
        }
        Ok(true)
    }

    /// The raw descriptor, for registering with an async reactor.
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}

fn describe_get(msg: u32) -> &'static str {
    if msg == sys::NFT_MSG_GETGEN {
        "read generation"
    } else {
        "get"
    }
}

fn failure(batch: &Batch, first: u32, e: KernelError) -> MessageFailure {
    let index = (e.seq - first) as usize;
    let (op, object) = match index.checked_sub(1).and_then(|i| batch.message(i)) {
        Some(m) => (describe::op_name(&m), describe::object_name(&m)),
        None if index == 0 => ("begin transaction", String::new()),
        None => ("commit transaction", String::new()),
    };
    MessageFailure {
        index,
        op,
        object,
        errno: e.errno,
        extack: e.message,
        offset: e.offset,
        operation: None,
    }
}
