//! What `linx-cni` and the node agent say to each other: one request and
//! one answer per connection, over a `SOCK_SEQPACKET` Unix socket (message
//! boundaries kept by the kernel, so no framing of our own). An `Add` or
//! `Check` request carries the sandbox's network namespace as a descriptor
//! (`SCM_RIGHTS`): the plugin opens `CNI_NETNS`, so the agent needs no
//! mount of the runtime's netns directory and no path it could misread.
//!
//! Messages are JSON. Both sides use these types; nothing else defines them.

use std::fmt;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{
    self, recvmsg, sendmsg, setsockopt, sockopt, AddressFamily, ControlMessage,
    ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
};
use nix::sys::time::TimeVal;
use serde::{Deserialize, Serialize};

/// Where the agent listens on the node.
pub const DEFAULT_SOCKET: &str = "/run/linx/agent.sock";
/// Largest message either side sends or accepts (a GC request listing
/// every sandbox of a full node fits with room to spare).
pub const MAX_MESSAGE: usize = 128 * 1024;

/// The pod a sandbox belongs to, from `CNI_ARGS`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    /// `K8S_POD_UID`, when the runtime passes it (containerd and CRI-O do):
    /// tells a pod from an earlier one of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A request of the plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Request {
    /// Enforce the pod's FirewallRulesets in the namespace sent with the
    /// request, and answer once the kernel has committed them (or
    /// [`Response::Unselected`] at once). The agent keeps the pod from then
    /// on. `timeout_ms`: the plugin gives up after this; the agent answers
    /// [`Response::Failed`] before it rather than leave it waiting.
    Add {
        pod: PodRef,
        container_id: String,
        timeout_ms: u64,
    },
    /// Whether the namespace sent with the request holds exactly the pod's
    /// firewall.
    Check { pod: PodRef, container_id: String },
    /// The sandbox is being torn down: let go of its namespace. Always
    /// answered [`Response::Done`], for pods the agent knows or not.
    Del {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pod: Option<PodRef>,
        container_id: String,
    },
    /// Every sandbox not listed is gone (CNI 1.1 `GC`): let go of them.
    Gc { valid: Vec<String> },
}

/// The agent's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "result",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Response {
    /// The pod's firewall is in the namespace: these tables
    /// (`family name`), committed at this ruleset generation with this
    /// many operations (0: it was already there).
    Applied {
        tables: Vec<String>,
        generation: u32,
        operations: usize,
    },
    /// No FirewallRuleset selects the pod: nothing to wait for.
    Unselected,
    /// `Check`: the firewall is as it should be; `Del`, `Gc`: done.
    Done,
    /// The request could not be met, and why.
    Failed { message: String },
}

/// A message as sent.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    serde_json::to_vec(msg).expect("protocol messages serialize")
}

/// A message as received.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Sends one message, with `fd` attached when given.
pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fd: Option<BorrowedFd<'_>>) -> nix::Result<()> {
    let iov = [IoSlice::new(bytes)];
    let fds: Vec<RawFd> = fd.map(|f| f.as_raw_fd()).into_iter().collect();
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    let n = sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    if n != bytes.len() {
        return Err(nix::Error::EMSGSIZE);
    }
    Ok(())
}

/// Receives one message into `buf`: its length (0: the peer closed) and
/// the descriptor sent with it, if any (close-on-exec). A message larger
/// than `buf` is an error, never half-read.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<(usize, Option<OwnedFd>)> {
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut received = None;
    let mut extra = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed this descriptor in our
                // table for us; nothing else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if received.is_none() {
                    received = Some(owned);
                } else {
                    extra.push(owned); // closed on drop: one namespace per request
                }
            }
        }
    }
    if msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
    {
        return Err(nix::Error::EMSGSIZE);
    }
    Ok((msg.bytes, received))
}

/// Why a call to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nothing listens there: the agent is not running on this node.
    #[error("the node agent is not reachable at {path}: {source}")]
    Unreachable { path: PathBuf, source: nix::Error },
    #[error("the node agent did not answer within {0:?}")]
    Timeout(Duration),
    #[error("talking to the node agent at {path}: {source}")]
    Io { path: PathBuf, source: nix::Error },
    #[error("the node agent closed the connection without answering")]
    Closed,
    #[error("the node agent's answer is not understood: {0}")]
    Decode(serde_json::Error),
}

/// One request to the agent listening at `path`, with `fd` attached, and
/// its answer; gives up after `timeout` (connecting included).
pub fn call(
    path: &Path,
    req: &Request,
    fd: Option<BorrowedFd<'_>>,
    timeout: Duration,
) -> Result<Response, CallError> {
    let io = |source| CallError::Io {
        path: path.to_owned(),
        source,
    };
    let sock = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io)?;
    let tv = TimeVal::new(
        timeout.as_secs() as i64,
        timeout.subsec_micros() as nix::sys::time::suseconds_t,
    );
    // Bounds connect (a stopped agent's full backlog), send and receive.
    setsockopt(&sock, sockopt::SendTimeout, &tv).map_err(io)?;
    setsockopt(&sock, sockopt::ReceiveTimeout, &tv).map_err(io)?;
    let addr = UnixAddr::new(path).map_err(io)?;
    match socket::connect(sock.as_raw_fd(), &addr) {
        Ok(()) => {}
        Err(nix::Error::EAGAIN | nix::Error::EINPROGRESS) => {
            return Err(CallError::Timeout(timeout))
        }
        Err(source) => {
            return Err(CallError::Unreachable {
                path: path.to_owned(),
                source,
            })
        }
    }
    send(sock.as_fd(), &encode(req), fd).map_err(|e| match e {
        nix::Error::EAGAIN => CallError::Timeout(timeout),
        e => io(e),
    })?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (n, _) = recv(sock.as_fd(), &mut buf).map_err(|e| match e {
        nix::Error::EAGAIN => CallError::Timeout(timeout),
        e => io(e),
    })?;
    if n == 0 {
        return Err(CallError::Closed);
    }
    decode(&buf[..n]).map_err(CallError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_json_in_camel_case() {
        let req = Request::Add {
            pod: PodRef {
                namespace: "shop".into(),
                name: "web-0".into(),
                uid: Some("u1".into()),
            },
            container_id: "c0ffee".into(),
            timeout_ms: 5000,
        };
        let text = String::from_utf8(encode(&req)).unwrap();
        assert_eq!(
            text,
            r#"{"op":"add","pod":{"namespace":"shop","name":"web-0","uid":"u1"},"containerId":"c0ffee","timeoutMs":5000}"#
        );
        assert_eq!(decode::<Request>(text.as_bytes()).unwrap(), req);
        let resp = Response::Applied {
            tables: vec!["inet linx".into()],
            generation: 7,
            operations: 3,
        };
        let text = String::from_utf8(encode(&resp)).unwrap();
        assert_eq!(
            text,
            r#"{"result":"applied","tables":["inet linx"],"generation":7,"operations":3}"#
        );
        assert_eq!(decode::<Response>(text.as_bytes()).unwrap(), resp);
        assert!(decode::<Request>(br#"{"op":"reboot"}"#).is_err());
    }

    #[test]
    fn a_descriptor_travels_with_its_message() {
        let (a, b) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let file = std::fs::File::open("/proc/self/ns/net").unwrap();
        send(a.as_fd(), b"hello", Some(file.as_fd())).unwrap();
        send(a.as_fd(), b"bare", None).unwrap();
        let mut buf = [0u8; 16];
        let (n, fd) = recv(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let (got, want) = (
            nix::sys::stat::fstat(fd.unwrap()).unwrap(),
            nix::sys::stat::fstat(&file).unwrap(),
        );
        assert_eq!((got.st_dev, got.st_ino), (want.st_dev, want.st_ino));
        let (n, fd) = recv(b.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fd.is_none()), (&b"bare"[..], true));
        // Too large for the buffer: refused, not cut.
        send(a.as_fd(), &[7u8; 32], None).unwrap();
        assert_eq!(recv(b.as_fd(), &mut buf).unwrap_err(), nix::Error::EMSGSIZE);
        drop(a);
        assert_eq!(recv(b.as_fd(), &mut buf).unwrap().0, 0);
    }

    #[test]
    fn a_missing_agent_is_unreachable_at_once() {
        let dir = std::env::temp_dir().join(format!("linx-cni-proto-{}", std::process::id()));
        let err = call(
            &dir.join("agent.sock"),
            &Request::Gc { valid: vec![] },
            None,
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(err, CallError::Unreachable { .. }), "{err}");
    }
}
