//! Rule tracing: what the firewall did to a packet.
//!
//! - [`event`]: one trace message (`NFT_MSG_TRACE`) decoded, and
//!   [`Tracer`], a subscription to a namespace's trace messages.
//! - [`path`]: the messages of one packet grouped into its [`PacketPath`]:
//!   chains, matching rules, and the verdict that decided it.
//! - [`session`]: a [`Session`] marks the packets matching an nft
//!   expression in a table of its own (owned by its socket, so it cannot
//!   outlive the process), collects N paths or until a timeout, resolves
//!   each step's rule handle to the pulled rule (value, position in its
//!   chain, nft text), and removes the table.

pub mod event;
pub mod path;
pub mod session;

pub use event::{TraceEvent, TraceItem, TraceKind, Tracer};
pub use path::{Assembler, PacketPath, Step};
pub use session::{check_match, Next, Session, SessionConfig, TraceError};
