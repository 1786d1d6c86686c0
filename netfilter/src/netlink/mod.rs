//! The netlink transport: framing, a namespace-bound socket, batches.

pub mod attr;
mod batch;
pub mod describe;
pub mod msg;
#[cfg(feature = "kernel")]
mod socket;
#[cfg(feature = "kernel")]
pub mod stream;

pub use attr::{Attr, Attrs, Writer};
pub use batch::Batch;
pub use msg::{KernelError, Msg, Msgs};
#[cfg(feature = "kernel")]
pub use socket::{Dump, Generation, Socket};
