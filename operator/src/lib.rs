//! The cluster-level operator that validates FirewallRulesets.
