//! # linx-netfilter
//!
//! nf_tables rulesets as plain Rust values, and the netlink transport that
//! moves them in and out of the kernel — in any network namespace, without
//! moving the rest of the process.
//!
//! ```no_run
//! use linx_netfilter::{Netns, Socket};
//! let mut sock = Socket::open(&"/run/netns/pod1".parse::<Netns>().unwrap())?;
//! let generation = sock.generation()?;
//! println!("ruleset generation {}", generation.id);
//! # Ok::<(), linx_netfilter::Error>(())
//! ```
//!
//! ## Features
//!
//! - `kernel` (default): sockets in any namespace and all that talks to a
//!   kernel — `netns`, `pull`, `push`, `reconcile`, `events`, `nflog`,
//!   `interfaces`, `packet` and trace sessions. Without it
//!   (`default-features = false`, as the operator gets it through
//!   `linx-crds`) the crate is values, codec, the compiler ([`syntax`]),
//!   the printer ([`print`]), [`diff`] and a trace's match check: no socket
//!   code, no Tokio, no namespaces.
//! - `testing`: throwaway namespaces and an `nft` oracle for tests (implies
//!   `kernel`).

pub mod codec;
pub mod diff;
pub mod error;
#[cfg(feature = "kernel")]
pub mod events;
pub mod expr;
#[cfg(feature = "kernel")]
pub mod interfaces;
pub mod model;
pub mod netlink;
#[cfg(feature = "kernel")]
pub mod netns;
#[cfg(feature = "kernel")]
pub mod nflog;
pub mod object;
#[cfg(feature = "kernel")]
pub mod packet;
pub mod print;
pub mod proto;
#[cfg(feature = "kernel")]
pub mod pull;
#[cfg(feature = "kernel")]
pub mod push;
#[cfg(feature = "kernel")]
pub mod reconcile;
pub mod syntax;
pub mod sys;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;

pub use error::{ApplyError, BatchFailure, DecodeError, Error, MessageFailure, Result};
pub use model::{
    Chain, Element, Elements, Exprs, Family, Flowtable, Hook, Object, Rule, Rules, Ruleset, Set,
    SharedVec, Table, Userdata,
};
pub use netlink::Batch;
#[cfg(feature = "kernel")]
pub use netlink::{Generation, Socket};
#[cfg(feature = "kernel")]
pub use netns::Netns;
