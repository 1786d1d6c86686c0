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

pub mod codec;
pub mod diff;
pub mod error;
pub mod events;
pub mod expr;
pub mod interfaces;
pub mod model;
pub mod netlink;
pub mod netns;
pub mod nflog;
pub mod object;
pub mod packet;
pub mod print;
pub mod proto;
pub mod pull;
pub mod push;
pub mod reconcile;
pub mod syntax;
pub mod sys;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;

pub use error::{ApplyError, BatchFailure, DecodeError, Error, MessageFailure, Result};
pub use model::{
    Chain, Element, Exprs, Family, Flowtable, Hook, Object, Rule, Rules, Ruleset, Set, SharedVec,
    Table, Userdata,
};
pub use netlink::{Batch, Generation, Socket};
pub use netns::Netns;
