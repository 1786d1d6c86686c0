//! Multicast subscriptions read as streams: the one pattern behind kernel
//! events ([`crate::events`]), NFLOG packets ([`crate::nflog`]) and trace
//! events ([`crate::trace`]).
//!
//! A [`Feed`] turns each datagram it reads into queued items (overflow
//! becomes an item too, never a silent gap); the same feed is read
//! blocking, with a timeout, without blocking, or as an async [`Stream`].

use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{Msg, Socket};
use crate::error::{DecodeError, Error, Result};

/// Items decoded from one netlink socket.
pub trait Feed {
    type Item;

    /// Reads one datagram (waiting for it when `block`) and queues what it
    /// holds; `Ok(false)` when not blocking and nothing was there.
    fn fill(&mut self, block: bool) -> Result<bool>;

    /// The next queued item.
    fn pop(&mut self) -> Option<Self::Item>;

    /// The socket, for waiting on it.
    fn raw_fd(&self) -> RawFd;

    /// Blocks for the next item.
    fn next_blocking(&mut self) -> Result<Self::Item> {
        loop {
            if let Some(e) = self.pop() {
                return Ok(e);
            }
            self.fill(true)?;
        }
    }

    /// The next item if one is queued or readable now, without blocking.
    fn try_next(&mut self) -> Result<Option<Self::Item>> {
        if let Some(e) = self.pop() {
            return Ok(Some(e));
        }
        while self.fill(false)? {
            if let Some(e) = self.pop() {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// The next item, waiting at most `timeout`; `None` when none came.
    fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Self::Item>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.try_next()? {
                return Ok(Some(e));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !wait_readable(self.raw_fd(), left)? {
                return Ok(None);
            }
        }
    }
}

/// What one read of a subscribed socket found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A datagram: its messages were decoded.
    Messages,
    /// Not blocking, and nothing was queued.
    Nothing,
    /// The socket overflowed (`ENOBUFS`): the kernel dropped messages.
    Overflow,
}

/// Reads one datagram (waiting for it when `block`) and hands what
/// `decode` makes of each message to `sink`. A message that does not
/// decode is an error, returned after the rest of the datagram was taken.
pub fn receive<T>(
    sock: &mut Socket,
    block: bool,
    decode: impl Fn(&Msg<'_>) -> Result<Option<T>, DecodeError>,
    mut sink: impl FnMut(T),
) -> Result<Received> {
    let mut bad = None;
    let mut f = |m: Msg<'_>| match decode(&m) {
        Ok(Some(v)) => sink(v),
        Ok(None) => {}
        Err(e) => bad = bad.take().or(Some(e)),
    };
    let r = if block {
        sock.recv_messages(&mut f).map(|_| Received::Messages)
    } else {
        sock.try_recv_messages(&mut f).map(|got| {
            if got {
                Received::Messages
            } else {
                Received::Nothing
            }
        })
    };
    let r = match r {
        Err(Error::Overflow { .. }) => Received::Overflow,
        other => other?,
    };
    match bad {
        Some(e) => Err(e.into()),
        None => Ok(r),
    }
}

/// Waits until `fd` has something to read or `timeout` passed (`false`).
/// A signal ends the wait early (`false`), so a caller polling a stop flag
/// sees Ctrl-C at once.
pub fn wait_readable(fd: RawFd, timeout: Duration) -> Result<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd, for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(Error::Io {
            op: "poll",
            source: e,
        });
    }
    Ok(n > 0)
}

struct FdWrap(RawFd);
impl std::os::fd::AsRawFd for FdWrap {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// An async `Stream` over a [`Feed`] (needs a Tokio runtime).
pub struct Stream<F> {
    // Field order: the reactor registration goes before the socket closes.
    fd: AsyncFd<FdWrap>,
    feed: F,
}

impl<F: Feed> Stream<F> {
    /// Registers the feed's socket with the runtime.
    pub fn new(feed: F) -> Result<Self> {
        // SAFETY: the descriptor belongs to `feed`, which moves into the same
        // `Stream` and is dropped after the registration (field order).
        let fd =
            unsafe { AsyncFd::register_with_interest(FdWrap(feed.raw_fd()), Interest::READABLE) }
                .map_err(|e| Error::Io {
                op: "register netlink socket",
                source: e.into_parts().1,
            })?;
        Ok(Stream { fd, feed })
    }

    /// The feed, e.g. to read its counters.
    pub fn get_ref(&self) -> &F {
        &self.feed
    }
}

impl<F: Feed + Unpin> futures_core::Stream for Stream<F> {
    type Item = Result<F::Item>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(e) = this.feed.pop() {
                return Poll::Ready(Some(Ok(e)));
            }
            let mut guard = match this.fd.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(source)) => {
                    return Poll::Ready(Some(Err(Error::Io {
                        op: "poll netlink socket",
                        source,
                    })))
                }
                Poll::Pending => return Poll::Pending,
            };
            match this.feed.fill(false) {
                Ok(true) => {}
                Ok(false) => guard.clear_ready(),
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}
