//! Diagnostics: where in the source something went wrong, what was
//! expected there and how to fix it — structured, so callers can render
//! them their own way, and printed with the offending line and a caret.
//!
//! Quoting never fails, however long the line: a line of 400,000
//! characters (a one-line set of 70,000 ports) is shown as a window of
//! [`QUOTE_WIDTH`] characters around the position, as compilers do.

use std::fmt;

/// What the parser and compiler return: a value, or the one problem that
/// stopped them.
pub type Result<T, E = Diagnostic> = std::result::Result<T, E>;

/// An error at `span` saying `msg`.
pub(crate) fn err<T>(span: Span, msg: impl Into<String>) -> Result<T> {
    Err(Diagnostic::new(span, msg))
}

/// One problem in nft source text. `line` and `column` are 1-based
/// (columns count characters); `len` is the number of characters
/// underlined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub len: usize,
    pub message: String,
    /// What the parser would have accepted here (may be empty).
    pub expected: Box<[String]>,
    /// How to fix it (`did you mean 'accept'?`, what to write instead).
    pub help: Option<Box<str>>,
    /// The file the position is in: `None` for the text given to
    /// [`compile`](super::compile), a path for files read through
    /// [`compile_file`](super::compile_file) or `include`.
    pub file: Option<Box<str>>,
    /// The source line, for display. (Text fields are boxed: a compile
    /// error travels in every `Result` of the compiler, so it stays small.)
    pub source_line: Box<str>,
    /// Which of the script's files `line` is in ([`Span::file`]), until
    /// `file` and `source_line` are filled from it.
    pub(crate) source_id: u32,
}

/// A position in the source: line/column (1-based, in characters) and
/// length, and which of the script's files it is in (0: the main one;
/// others are `include`d, see [`super::include`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub line: u32,
    pub column: u32,
    pub len: u32,
    pub file: u32,
}

impl Span {
    /// The span covering both `self` and `other` when on the same line.
    pub fn to(self, other: Span) -> Span {
        if other.line == self.line && other.file == self.file && other.column >= self.column {
            Span {
                len: other.column + other.len - self.column,
                ..self
            }
        } else {
            self
        }
    }
}

/// Characters of a long source line quoted around the position.
pub const QUOTE_WIDTH: usize = 100;

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            line: span.line as usize,
            column: span.column as usize,
            len: span.len.max(1) as usize,
            message: message.into(),
            expected: Box::default(),
            help: None,
            file: None,
            source_line: Box::default(),
            source_id: span.file,
        }
    }
    pub fn expected(mut self, what: &[&str]) -> Self {
        self.expected = what.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Adds how to fix it.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into().into_boxed_str());
        self
    }
    /// Adds `did you mean 'x'?` when `word` is a near miss of one of
    /// `candidates` (see [`super::suggest`]).
    pub fn suggest<'a>(self, word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        match super::suggest::closest(word, candidates) {
            Some(s) => self.help(format!("did you mean '{s}'?")),
            None => self,
        }
    }
    /// Fills `source_line` from the whole source text.
    pub fn with_source(mut self, src: &str) -> Self {
        if self.source_line.is_empty() {
            self.source_line = src
                .lines()
                .nth(self.line.saturating_sub(1))
                .unwrap_or("")
                .into();
        }
        self
    }
    /// The message with what was expected and the help, on one line (for
    /// callers that show the position their own way).
    pub fn summary(&self) -> String {
        let mut s = self.message.clone();
        if !self.expected.is_empty() {
            s.push_str(&format!(" (expected {})", self.expected.join(", ")));
        }
        if let Some(h) = &self.help {
            s.push_str("; ");
            s.push_str(h);
        }
        s
    }
}

/// The part of `line` to quote and the caret's offset and width in it:
/// the whole line when short, else a window around the position with
/// `...` where it was cut. Tabs show as one space, so the caret lines up.
pub fn quote(line: &str, column: usize, len: usize) -> (String, usize, usize) {
    let chars: Vec<char> = line
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .collect();
    let at = column.saturating_sub(1).min(chars.len());
    let len = len.clamp(1, QUOTE_WIDTH / 2);
    if chars.len() <= QUOTE_WIDTH {
        return (chars.iter().collect(), at, len);
    }
    let start = at.saturating_sub(QUOTE_WIDTH / 2 - len / 2);
    let end = (start + QUOTE_WIDTH).min(chars.len());
    let start = end.saturating_sub(QUOTE_WIDTH).min(start);
    let mut s = String::new();
    let mut caret = at - start;
    if start > 0 {
        s.push_str("...");
        caret += 3;
    }
    s.extend(&chars[start..end]);
    if end < chars.len() {
        s.push_str("...");
    }
    (s, caret, len)
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        write!(f, "{}:{}: {}", self.line, self.column, self.message)?;
        if !self.expected.is_empty() {
            write!(f, " (expected {})", self.expected.join(", "))?;
        }
        if !self.source_line.is_empty() {
            let (text, caret, len) = quote(&self.source_line, self.column, self.len);
            writeln!(f)?;
            writeln!(f, "{text}")?;
            f.write_str(&" ".repeat(caret))?;
            f.write_str(&"^".repeat(len))?;
        }
        if let Some(h) = &self.help {
            write!(f, "\nhelp: {h}")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_far_along_a_long_line_prints_a_window() {
        let line = format!("add element t s {{ {} }}", "65535, ".repeat(60_000));
        let col = line.len() - 10;
        let d = Diagnostic::new(
            Span {
                line: 1,
                column: col as u32,
                len: 5,
                file: 0,
            },
            "out of range",
        )
        .with_source(&line);
        let text = d.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("1:{col}: out of range"));
        assert!(lines[1].starts_with("...") && lines[1].len() <= QUOTE_WIDTH + 6);
        let caret = lines[2].find('^').unwrap();
        assert_eq!(
            &lines[1][caret..caret + 5],
            &line[col - 1..col + 4],
            "{text}"
        );
    }

    #[test]
    fn short_lines_quote_whole_with_help() {
        let d = Diagnostic::new(
            Span {
                line: 1,
                column: 16,
                len: 5,
                file: 0,
            },
            "unknown statement 'acept'",
        )
        .suggest("acept", ["accept", "drop"])
        .with_source("tcp dport 9999 acept");
        assert_eq!(
            d.to_string(),
            "1:16: unknown statement 'acept'\ntcp dport 9999 acept\n               ^^^^^\nhelp: did you mean 'accept'?"
        );
    }
}
