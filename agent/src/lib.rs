//! The node agent: finds each selected pod's network namespace and keeps
//! its firewall equal to the FirewallRulesets that select it.
//!
//! - [`pod`]: what the agent knows of a pod; [`resolve`]: its namespace.
//! - [`desired`]: the pluggable [`Policy`] computing each pod's ruleset;
//!   [`rulesets`]: the one from FirewallRulesets, with the set elements
//!   [`addresses`] assembles from FirewallAddressSets.
//! - [`cluster`]: the Kubernetes adapter (this node's pods, rulesets,
//!   address sets; the node report; events), handing on a [`snapshot`].
//! - [`controller`]: one worker per pod ([`worker`]), bounded concurrency.
//! - [`report`]: per-pod outcomes; [`metrics`]: Prometheus metrics, [`serve`]d.
//! - [`local`]: pods and values from a file; [`run`]: `linx-agent run`.
//! - [`cni`]: the local endpoint for the `linx-cni` plugin; [`install`]:
//!   chaining the plugin into the node's CNI configuration;
//!   [`readiness`]: the optional pod readiness gate.
//! - [`cli`]: the `linx-agent` commands, ending in an [`outcome`];
//!   [`observe`]: `linx-agent trace` and `linx-agent log`.
//! - [`traces`]: FirewallTraces of this node's pods; [`drops`]: the pods'
//!   NFLOG groups (Audit, drop logs) as counts, metrics and JSON lines.

pub mod addresses;
pub mod cli;
pub mod cluster;
pub mod cni;
pub mod controller;
pub mod desired;
pub mod drops;
pub mod install;
pub mod local;
pub mod metrics;
pub mod observe;
pub mod outcome;
pub mod pod;
pub mod readiness;
pub mod report;
pub mod resolve;
pub mod rulesets;
pub mod run;
pub mod serve;
pub mod snapshot;
#[cfg(feature = "testing")]
pub mod testing;
pub mod traces;
mod worker;

pub use controller::{NodeController, Options};
pub use desired::{Policy, Target};
pub use pod::Pod;
pub use report::{PodReport, PodState, Reports};
