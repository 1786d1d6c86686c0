//! Diagnostics: where in the source something went wrong, and what was
//! expected there, printed with the offending line and a caret.

use std::fmt;

/// One problem in nft source text. `line` and `column` are 1-based;
/// `len` is the number of characters underlined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub len: usize,
    pub message: String,
    /// What the parser would have accepted here (may be empty).
    pub expected: Vec<String>,
    /// The source line, for display.
    pub source_line: String,
}

/// A position in the source: byte offset plus line/column for display.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub line: usize,
    pub column: usize,
    pub len: usize,
}

impl Span {
    /// The span covering both `self` and `other` when on the same line.
    pub fn to(self, other: Span) -> Span {
        if other.line == self.line && other.column >= self.column {
            Span {
                len: other.column + other.len - self.column,
                ..self
            }
        } else {
            self
        }
    }
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            line: span.line,
            column: span.column,
            len: span.len.max(1),
            message: message.into(),
            expected: Vec::new(),
            source_line: String::new(),
        }
    }
    pub fn expected(mut self, what: &[&str]) -> Self {
        self.expected = what.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Fills `source_line` from the whole source text.
    pub fn with_source(mut self, src: &str) -> Self {
        if self.source_line.is_empty() {
            self.source_line = src
                .lines()
                .nth(self.line.saturating_sub(1))
                .unwrap_or("")
                .to_owned();
        }
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)?;
        if !self.expected.is_empty() {
            write!(f, " (expected {})", self.expected.join(", "))?;
        }
        if !self.source_line.is_empty() {
            writeln!(f)?;
            writeln!(f, "{}", self.source_line)?;
            let pad = self.column.saturating_sub(1);
            write!(f, "{:pad$}{}", "", "^".repeat(self.len.max(1)), pad = pad)?;
        }
        Ok(())
    }
}

/// All problems found; never empty when returned as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn one(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
    pub fn first(&self) -> Option<&Diagnostic> {
        self.0.first()
    }
    pub(crate) fn with_source(self, src: &str) -> Self {
        Diagnostics(self.0.into_iter().map(|d| d.with_source(src)).collect())
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
