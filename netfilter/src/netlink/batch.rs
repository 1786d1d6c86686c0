//! A transaction under construction: nf_tables messages written back to
//! back into one buffer, later framed by BATCH_BEGIN / BATCH_END and sent in
//! one `sendmsg` by [`Socket::commit`](super::Socket::commit).

use super::attr::Writer;
use super::msg::{Msg, Msgs};
use crate::sys::{self, nft_msg_type};

/// The messages of one transaction, in order.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    w: Writer,
    /// Start offset of each message, to stamp sequence numbers at commit
    /// time and to find a message again when the kernel refuses it.
    starts: Vec<u32>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_capacity(messages: usize, bytes: usize) -> Self {
        Self {
            w: Writer::with_capacity(bytes),
            starts: Vec::with_capacity(messages),
        }
    }

    /// Appends one nf_tables message (`msg` is an `NFT_MSG_*` number).
    /// No acknowledgement is asked for (as nft does): the kernel reports an
    /// error for any message of a batch regardless, with its sequence
    /// number, and success costs it one answer per message otherwise.
    pub fn add(&mut self, msg: u32, flags: u16, family: u8, attrs: impl FnOnce(&mut Writer)) {
        self.starts.push(self.w.len() as u32);
        let start = self
            .w
            .begin_msg(nft_msg_type(msg), sys::NLM_F_REQUEST | flags, 0, family, 0);
        attrs(&mut self.w);
        self.w.end_msg(start);
    }

    /// Number of messages (BATCH_BEGIN and BATCH_END not counted).
    pub fn len(&self) -> usize {
        self.starts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
    /// The encoded messages, back to back.
    pub fn bytes(&self) -> &[u8] {
        self.w.as_bytes()
    }
    /// Message `i` (0-based), as it will be sent.
    pub fn message(&self, i: usize) -> Option<Msg<'_>> {
        let start = *self.starts.get(i)? as usize;
        Msgs::new(&self.w.as_bytes()[start..]).next()?.ok()
    }
    /// The raw bytes of message `i`.
    pub fn message_bytes(&self, i: usize) -> Option<&[u8]> {
        let start = *self.starts.get(i)? as usize;
        let end = self
            .starts
            .get(i + 1)
            .map(|e| *e as usize)
            .unwrap_or(self.w.len());
        self.w.as_bytes().get(start..end)
    }
    /// Iterates the messages in order.
    pub fn messages(&self) -> Msgs<'_> {
        Msgs::new(self.w.as_bytes())
    }

    /// Numbers the messages `first`, `first + 1`, ...
    #[cfg_attr(not(feature = "kernel"), allow(dead_code))] // used by the kernel's side only
    pub(crate) fn stamp_sequence(&mut self, first: u32) {
        let bytes = self.w.bytes_mut();
        for (i, &start) in self.starts.iter().enumerate() {
            let at = start as usize + 8;
            bytes[at..at + 4].copy_from_slice(&(first + i as u32).to_ne_bytes());
        }
    }
}
