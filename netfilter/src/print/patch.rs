//! A patch as text: one line per operation in nft syntax. Here, not in
//! `diff`, because an added rule prints as nft lists it: the diff computes,
//! the printer renders.

use std::fmt;

use super::PrintOptions;
use crate::diff::{Op, Patch, Position};
use crate::model::{Family, Ruleset, Table};

impl Patch {
    /// One line per operation in nft syntax (`+ add rule inet fw input tcp
    /// dport 22 accept`), rules printed in the context of `desired`'s
    /// tables (so lookups into named sets and maps print fully).
    pub fn render(&self, desired: &Ruleset) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for op in &self.ops {
            // Written in place: no String per line.
            let _ = writeln!(
                out,
                "{}",
                OpLine {
                    op,
                    context: Some(desired),
                }
            );
        }
        out
    }
}

impl fmt::Display for Patch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for op in &self.ops {
            writeln!(f, "{op}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        OpLine {
            op: self,
            context: None,
        }
        .fmt(f)
    }
}

/// An operation printed with (or without) the tables it applies to.
struct OpLine<'a> {
    op: &'a Op,
    context: Option<&'a Ruleset>,
}

impl fmt::Display for OpLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.operation(f)?;
        match self.op.recreate() {
            Some(why) => write!(f, " (recreated: {why})"),
            None => Ok(()),
        }
    }
}

impl OpLine<'_> {
    fn operation(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fam = |fam: &Family| fam.name();
        match self.op {
            Op::AddTable { table } => {
                write!(f, "+ add table {} {}", fam(&table.family), table.name)
            }
            Op::UpdateTable { table } => write!(
                f,
                "~ add table {} {} {{ flags {:#x} }}",
                fam(&table.family),
                table.name,
                table.flags
            ),
            Op::DeleteTable { family, name, .. } => {
                write!(f, "- delete table {} {name}", fam(family))
            }
            Op::AddChain {
                family,
                table,
                chain,
            } => write!(f, "+ add chain {} {table} {}", fam(family), chain.name),
            Op::UpdateChain {
                family,
                table,
                chain,
            } => {
                write!(
                    f,
                    "~ add chain {} {table} {} {{ policy {} }}",
                    fam(family),
                    chain.name,
                    policy_name(chain.policy)
                )
            }
            Op::FlushChain {
                family,
                table,
                chain,
            } => write!(f, "- flush chain {} {table} {chain}", fam(family)),
            Op::DeleteChain {
                family,
                table,
                name,
                ..
            } => write!(f, "- delete chain {} {table} {name}", fam(family)),
            Op::AddSet { family, table, set } => {
                write!(
                    f,
                    "+ add {} {} {table} {}",
                    if set.is_map() { "map" } else { "set" },
                    fam(family),
                    set.name
                )?;
                if !set.elements.is_empty() {
                    write!(f, " ({} elements)", set.elements.len())?;
                }
                Ok(())
            }
            Op::DeleteSet {
                family,
                table,
                name,
                ..
            } => write!(f, "- delete set {} {table} {name}", fam(family)),
            Op::AddElements {
                family,
                table,
                set,
                elements,
            } => {
                write!(
                    f,
                    "+ add element {} {table} {set} ({} elements)",
                    fam(family),
                    elements.len()
                )
            }
            Op::DeleteElements {
                family,
                table,
                set,
                elements,
                ..
            } => {
                write!(
                    f,
                    "- delete element {} {table} {set} ({} elements)",
                    fam(family),
                    elements.len()
                )
            }
            Op::AddObject {
                family,
                table,
                object,
            } => write!(f, "+ add object {} {table} {}", fam(family), object.name),
            Op::UpdateObject {
                family,
                table,
                object,
            } => write!(
                f,
                "~ update object {} {table} {} (in place: its state is kept)",
                fam(family),
                object.name
            ),
            Op::DeleteObject {
                family,
                table,
                name,
                ..
            } => write!(f, "- delete object {} {table} {name}", fam(family)),
            Op::AddFlowtable {
                family,
                table,
                flowtable,
            } => write!(
                f,
                "+ add flowtable {} {table} {}",
                fam(family),
                flowtable.name
            ),
            Op::DeleteFlowtable {
                family,
                table,
                name,
                ..
            } => write!(f, "- delete flowtable {} {table} {name}", fam(family)),
            Op::AddRule {
                family,
                table,
                chain,
                rule,
                position,
                ..
            } => {
                let verb = match position {
                    Position::Before(_) => "insert",
                    _ => "add",
                };
                write!(f, "+ {verb} rule {} {table} {chain}", fam(family))?;
                match position {
                    Position::After(h) | Position::Before(h) => write!(f, " position {h}")?,
                    _ => {}
                }
                let empty;
                let context = match self.context.and_then(|c| {
                    c.tables
                        .iter()
                        .find(|t| t.family == *family && &t.name == table)
                }) {
                    Some(t) => t,
                    None => {
                        empty = Table::new(*family, table.clone());
                        &empty
                    }
                };
                let text = super::rule(*family, context, rule, &PrintOptions::default());
                write!(f, " {text}")
            }
            Op::DeleteRule {
                family,
                table,
                chain,
                handle,
                ..
            } => write!(
                f,
                "- delete rule {} {table} {chain} handle {handle}",
                fam(family)
            ),
        }
    }
}

fn policy_name(p: Option<u32>) -> &'static str {
    match p {
        Some(0) => "drop",
        _ => "accept",
    }
}
