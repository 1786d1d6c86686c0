//! # linx-operator
//!
//! Watches FirewallRulesets, validates each without a kernel, folds the
//! node agents' `FirewallNodeReport`s into their status, and reports table
//! conflicts. Serves the validating admission webhook ([`webhook`], over
//! [`http`] with TLS from [`certs`]) on every replica. Resolves the
//! sources of sets (pods, services, namespaces) in one [`index`] and
//! publishes them as `FirewallAddressSet`s ([`publish`]). Pure parts
//! ([`status`], [`aggregate`], [`index`], [`publish::Publisher`],
//! [`leader::decide`], [`certs::plan`]) are separate from the writers
//! ([`controller::reconcile`], [`publish::run`], [`certs::CertManager`]),
//! which run on the leader only.

pub mod aggregate;
pub mod certs;
pub mod controller;
pub mod error;
pub mod http;
pub mod index;
pub mod leader;
pub mod manifests;
pub mod metrics;
pub mod publish;
pub mod status;
pub mod traces;
pub mod webhook;

pub use controller::{reconcile, Context};

/// Field manager of the operator's writes (status, address sets) and the
/// reporter of its events.
pub const FIELD_MANAGER: &str = "linx-operator";
pub use error::{Error, Result};
pub use metrics::Metrics;
