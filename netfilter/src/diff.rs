//! Diff: the minimal patch that turns one ruleset value into another.
