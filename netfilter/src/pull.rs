//! Pull: the kernel's ruleset (or some tables of it) into a value.
