//! `linx-cni`: a CNI plugin chained after the cluster's own, holding each
//! pod's start until the node agent has its firewall in the pod's network
//! namespace (see `docs/cni.md`).
//!
//! - [`plugin`]: the CNI operations (`ADD`, `DEL`, `CHECK`, `STATUS`, `GC`,
//!   `VERSION`).
//! - [`protocol`]: the requests and answers between the plugin and the
//!   agent, and their transport (the agent uses the same types).
//! - [`record`]: how each sandbox started, kept on the node for the report.
//! - [`conflist`]: inserting the plugin into the node's CNI configuration
//!   and removing it (the installer).

pub mod conflist;
pub mod plugin;
pub mod protocol;
pub mod record;
