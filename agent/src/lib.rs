//! The node agent: finds each selected pod's network namespace and keeps
//! its firewall equal to the FirewallRulesets that select it.

pub mod cli;
pub mod resolve;
