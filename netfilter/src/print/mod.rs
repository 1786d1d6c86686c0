//! Values → nft's own listing text.
//!
//! [`rule`] turns one rule's expressions back into nft statements (as
//! `nft list chain` shows them inside a chain), and [`ruleset`] prints a
//! whole ruleset exactly as `nft list ruleset` does, tabs and all.
//! A diff's [`Patch`](crate::diff::Patch) renders here too (`render`,
//! `Display`), one line per operation.
//! [`PrintOptions`] mirrors `nft -s` (no counter values) and `nft -p`
//! (protocol numbers instead of names).

mod patch;
mod rule;
pub(crate) mod ruleset;
mod set;
mod stmt;
pub mod value;

pub use rule::verdict;
pub use ruleset::{chain_header, hook_name, priority_text, set_body};

use crate::model::{Family, Rule, Ruleset, Table};

/// Listing switches, as nft's command-line flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// `-s`: omit stateful values (counter packets/bytes, quota usage).
    pub stateless: bool,
    /// `-p`: print layer 4 protocols numerically (`ip protocol 6`).
    pub numeric_protocol: bool,
}

/// One rule as nft lists it inside its chain (without indentation or
/// newline). `table` supplies named sets; anonymous sets come from
/// `rule.sets`.
pub fn rule(family: Family, table: &Table, rule: &Rule, opts: &PrintOptions) -> String {
    rule::Decompiler::new(family, table, rule, opts).run()
}

/// The whole ruleset as `nft list ruleset` prints it.
pub fn ruleset(rs: &Ruleset, opts: &PrintOptions) -> String {
    ruleset::ruleset(rs, opts)
}

#[cfg(test)]
mod tests;
