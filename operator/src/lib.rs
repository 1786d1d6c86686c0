//! # linx-operator
//!
//! Watches FirewallRulesets, validates each without a kernel, folds the
//! node agents' `FirewallNodeReport`s into their status, and reports table
//! conflicts. Serves the validating admission webhook ([`webhook`], over
//! [`http`] with TLS from [`certs`]) on every replica. Pure parts
//! ([`status`], [`aggregate`], [`leader::decide`], [`certs::plan`]) are
//! separate from the writers ([`controller::reconcile`],
//! [`certs::CertManager`]), which run on the leader only.

pub mod aggregate;
pub mod certs;
pub mod controller;
pub mod error;
pub mod http;
pub mod leader;
pub mod manifests;
pub mod metrics;
pub mod status;
pub mod webhook;

pub use controller::{reconcile, Context};
pub use error::{Error, Result};
pub use metrics::Metrics;
