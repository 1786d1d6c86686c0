//! Rule tracing: what the firewall did to a packet.
//!
//! - [`event`]: one trace message (`NFT_MSG_TRACE`) decoded, and
//!   [`Tracer`], a subscription to a namespace's trace messages.
//! - [`path`]: the messages of one packet grouped into its [`PacketPath`]:
//!   chains, matching rules, and the verdict that decided it.
//! - [`marking`]: the table a session marks packets with, from an nft
//!   match, and [`check_match`] (no kernel needed: validation uses it).
//! - [`session`]: a [`Session`] marks the packets matching an nft
//!   expression in a table of its own (owned by its socket, so it cannot
//!   outlive the process), collects N paths or until a timeout, resolves
//!   each step's rule handle to the pulled rule (value, position in its
//!   chain, nft text), and removes the table.

#[cfg(feature = "kernel")]
pub mod event;
pub mod marking;
#[cfg(feature = "kernel")]
pub mod path;
#[cfg(feature = "kernel")]
pub mod session;

#[cfg(feature = "kernel")]
pub use event::{TraceEvent, TraceItem, TraceKind, Tracer};
pub use marking::{check_match, TraceError};
#[cfg(feature = "kernel")]
pub use path::{Assembler, PacketPath, Step};
#[cfg(feature = "kernel")]
pub use session::{Next, Session, SessionConfig};
