//! The crate's error types: what failed, on which object, and why.

use std::fmt;

/// A malformed or truncated netlink message or attribute.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("attribute {attr}: length {len}, expected {expected}")]
    BadLength {
        attr: u16,
        len: usize,
        expected: usize,
    },
    #[error("attribute {attr}: not a UTF-8 string")]
    BadString { attr: u16 },
    #[error("{object}: missing attribute {attr}")]
    Missing {
        object: &'static str,
        attr: &'static str,
    },
    #[error("{object}: invalid value {value} for {field}")]
    Invalid {
        object: &'static str,
        field: &'static str,
        value: u64,
    },
    #[error("unexpected message type {ty:#06x} ({context})")]
    UnexpectedMessage { ty: u16, context: &'static str },
}

/// One message of a batch that the kernel refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageFailure {
    /// Position in the batch: 1 is the first message after BATCH_BEGIN.
    pub index: usize,
    /// The operation, in nft's words (`add rule`, `delete set`, ...).
    pub op: &'static str,
    /// The object it concerned (`inet fw input`, `ip nat @blocked`, ...).
    pub object: String,
    /// Positive errno.
    pub errno: i32,
    /// The kernel's extended-ack text, when it gave one.
    pub extack: Option<String>,
    /// Byte offset of the offending attribute in that message.
    pub offset: Option<u32>,
    /// When a patch was pushed: the index of the operation this message
    /// belongs to (a rule's anonymous sets belong to the rule).
    pub operation: Option<usize>,
}

impl fmt::Display for MessageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "message {} ({} {}): {} (errno {})",
            self.index,
            self.op,
            self.object,
            std::io::Error::from_raw_os_error(self.errno),
            self.errno
        )?;
        if let Some(m) = &self.extack {
            write!(f, ": {m}")?;
        }
        if let Some(o) = self.offset {
            write!(f, " [attribute at byte {o}]")?;
        }
        Ok(())
    }
}

/// Every failure the kernel reported for a refused batch, in batch order.
/// The kernel aborted the whole batch: nothing of it was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchFailure(pub Vec<MessageFailure>);

impl BatchFailure {
    /// The first failing message: usually the cause of the others.
    pub fn first(&self) -> &MessageFailure {
        &self.0[0]
    }
}

impl fmt::Display for BatchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.first())?;
        if self.0.len() > 1 {
            write!(f, " (and {} more failing message(s))", self.0.len() - 1)?;
        }
        Ok(())
    }
}

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The network namespace could not be opened or entered.
    #[error("network namespace {netns}: {source}")]
    Netns {
        netns: String,
        #[source]
        source: std::io::Error,
    },
    /// A socket call failed.
    #[error("netlink {op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a single request (not a batch).
    #[error("{op} {object}: {} (errno {errno}){}", std::io::Error::from_raw_os_error(*errno), extack.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kernel {
        op: &'static str,
        object: String,
        errno: i32,
        extack: Option<String>,
    },
    /// The kernel refused a batch; nothing of it was applied.
    #[error("transaction refused, nothing applied: {0}")]
    Batch(BatchFailure),
    /// Another writer committed since the generation the batch was guarded
    /// with; the kernel applied nothing.
    #[error("ruleset generation moved (batch guarded with generation {expected}): another writer committed first; nothing applied")]
    GenerationMismatch { expected: u32 },
    /// The receive buffer overflowed while the kernel answered: answers were
    /// lost, so the outcome must be re-read from the kernel.
    #[error("netlink receive buffer overflowed during {op}: answers lost")]
    Overflow { op: &'static str },
    /// A table of the desired value exists without Linx's ownership marker:
    /// someone else's table is never modified unless adoption is asked for.
    #[error("table {family} {table} exists and is not managed by Linx (no ownership marker); refusing to modify it")]
    NotOwned { family: &'static str, table: String },
    /// Other writers kept committing: every guarded attempt was refused.
    #[error("gave up after {attempts} attempts: the ruleset generation kept moving (concurrent writers)")]
    Contention { attempts: u32 },
    /// A patch did not fit the state it was applied to in memory.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The kernel sent something this code cannot decode.
    #[error("malformed netlink data: {0}")]
    Decode(#[from] DecodeError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A patch that does not fit the value it is applied to
/// ([`Patch::apply_to`](crate::diff::Patch::apply_to)).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("patch does not apply: {0}")]
pub struct ApplyError(pub String);
