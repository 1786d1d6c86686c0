//! Protocol knowledge shared by the compiler (`syntax`) and the printer
//! (`print`), as data: header fields (base, bit offset, bit length,
//! datatype), meta and ct keys, extension headers and options, nft's
//! datatypes with their symbolic constants and set type ids, and the
//! set userdata TLVs nft writes.
//!
//! Learnt from nft's behaviour (its listings, `--debug=netlink`, the
//! conformance corpus), not from its source.

pub mod datatype;
pub mod exthdr;
pub mod header;
pub mod keys;
pub mod udata;

pub use datatype::{ByteOrder, Datatype, Format, Symbol};
pub use exthdr::{Exthdr, ExthdrOp};
pub use header::{Field, Header};
pub use keys::Key;
