//! One validation finding: where (field path, table, chain, item, line and
//! column inside the nft text) and what.

use std::fmt;

/// A validation error in a FirewallRuleset spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostic {
    /// JSON path of the field, e.g. `spec.tables[0].chains[1].rules[3]`.
    pub field: String,
    /// Table as `family name`, when the error is inside one.
    pub table: Option<String>,
    /// Chain name, when the error is inside one.
    pub chain: Option<String>,
    /// The item inside the table or chain: `rule 3` (0-based, as in the
    /// field path), `set allowed`, `map ports`, `object web`.
    pub item: Option<String>,
    /// 1-based line and column inside the nft text of the field.
    pub position: Option<(u32, u32)>,
    pub message: String,
}

impl Diagnostic {
    /// A finding on `field` with `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            field: field.into(),
            message: message.into(),
            ..Default::default()
        }
    }
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }
    pub fn chain(mut self, chain: impl Into<String>) -> Self {
        self.chain = Some(chain.into());
        self
    }
    pub fn item(mut self, item: impl Into<String>) -> Self {
        self.item = Some(item.into());
        self
    }
    pub fn at(mut self, line: u32, column: u32) -> Self {
        self.position = Some((line, column));
        self
    }
}

/// `table inet fw, chain input, rule 3, 1:10: jump to unknown chain "x" (spec.tables[0].chains[0].rules[3])`
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(t) = &self.table {
            write!(f, "table {t}")?;
            sep = ", ";
        }
        if let Some(c) = &self.chain {
            write!(f, "{sep}chain {c}")?;
            sep = ", ";
        }
        if let Some(i) = &self.item {
            write!(f, "{sep}{i}")?;
            sep = ", ";
        }
        let pos = self.position.map(|(l, c)| format!("{l}:{c}"));
        if sep.is_empty() {
            // Nothing inside a table to name: the field leads.
            return match pos {
                Some(p) => write!(f, "{}, {p}: {}", self.field, self.message),
                None => write!(f, "{}: {}", self.field, self.message),
            };
        }
        if let Some(p) = pos {
            write!(f, "{sep}{p}")?;
        }
        write!(f, ": {} ({})", self.message, self.field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_every_known_place() {
        let d = Diagnostic::new(
            "spec.tables[0].chains[1].rules[3]",
            "jump to unknown chain \"x\"",
        )
        .table("inet fw")
        .chain("input")
        .item("rule 3")
        .at(1, 10);
        assert_eq!(
            d.to_string(),
            "table inet fw, chain input, rule 3, 1:10: jump to unknown chain \"x\" (spec.tables[0].chains[1].rules[3])"
        );
        assert_eq!(
            Diagnostic::new("spec", "give tables or nft").to_string(),
            "spec: give tables or nft"
        );
        assert_eq!(
            Diagnostic::new("spec.nft", "unterminated string")
                .at(2, 3)
                .to_string(),
            "spec.nft, 2:3: unterminated string"
        );
    }
}
