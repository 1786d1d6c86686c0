//! # linx-operator
//!
//! Watches FirewallRulesets, validates each without a kernel, folds the
//! node agents' `FirewallNodeReport`s into their status, and reports table
//! conflicts. Pure parts ([`status`], [`aggregate`], [`leader::decide`])
//! are separate from the one writer ([`controller::reconcile`]).

pub mod aggregate;
pub mod controller;
pub mod error;
pub mod http;
pub mod leader;
pub mod manifests;
pub mod metrics;
pub mod status;
pub mod traces;

pub use controller::{reconcile, Context};
pub use error::{Error, Result};
pub use metrics::Metrics;
