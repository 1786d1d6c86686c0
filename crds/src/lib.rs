//! The `FirewallRuleset` custom resource.
