//! Values → nft's own listing text.
//!
//! [`rule`] turns one rule's expressions back into nft statements (as
//! `nft list chain` shows them inside a chain), and [`ruleset`] prints a
//! whole ruleset exactly as `nft list ruleset` does, tabs and all.
//! A diff's [`Patch`](crate::diff::Patch) renders here too (`render`,
//! `Display`), one line per operation.
//! [`PrintOptions`] mirrors `nft -s` (no counter values) and `nft -p`
//! (protocol numbers instead of names).

// Layers, each using only those below it (no import circle): `options`,
// `value`, `stateful`, `regs`; `decompiler` (one rule's state), `deps`
// (protocol context), `set`, `matches`, `stmt`, `rule` (a whole rule);
// `ruleset` (the listing); `patch` (a diff's patch, rules as `rule`).
mod decompiler;
mod deps;
mod matches;
mod options;
mod patch;
mod regs;
mod rule;
pub(crate) mod ruleset;
mod set;
mod stateful;
mod stmt;
pub mod value;

pub use options::PrintOptions;
pub use regs::verdict;
pub use ruleset::{chain_header, hook_name, priority_text, set_body};

use crate::model::{Family, Rule, Ruleset, Table};

/// One rule as nft lists it inside its chain (without indentation or
/// newline). `table` supplies named sets; anonymous sets come from
/// `rule.sets`.
pub fn rule(family: Family, table: &Table, rule: &Rule, opts: &PrintOptions) -> String {
    decompiler::Decompiler::new(family, table, rule, opts).run()
}

/// The whole ruleset as `nft list ruleset` prints it.
pub fn ruleset(rs: &Ruleset, opts: &PrintOptions) -> String {
    ruleset::ruleset(rs, opts)
}

#[cfg(test)]
mod tests;
