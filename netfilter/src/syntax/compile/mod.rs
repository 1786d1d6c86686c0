//! Compiler from parsed nft text to ruleset values.
use crate::model::{Family, Rule, Ruleset, Table};
use super::Diagnostics;

pub fn compile(_src: &str) -> Result<Ruleset, Diagnostics> { todo!() }
pub fn compile_rule(_f: Family, _t: &Table, _r: &str) -> Result<Rule, Diagnostics> { todo!() }
