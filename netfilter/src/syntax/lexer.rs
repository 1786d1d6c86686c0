//! Tokens of the nft language. Values (numbers, addresses, ranges,
//! prefixes, symbolic names) are kept as raw words: their meaning depends
//! on the type of what they are compared with, which the compiler knows.

use super::diag::{Diagnostic, Span};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Tok {
    /// A bare word: keyword, name, number, address, range, prefix...
    Word(String),
    /// A double-quoted string, unescaped.
    Str(String),
    /// `$name`
    Var(String),
    /// `@name`
    At(String),
    /// Punctuation: `{ } ( ) ; , . : = == != < > <= >= & | ^ << >> ! + - / *`
    Punct(&'static str),
    /// End of a line (a statement separator).
    #[default]
    Newline,
}

/// (`Default`: a placeholder left where a token was moved out.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

impl Token {
    pub fn word(&self) -> Option<&str> {
        match &self.tok {
            Tok::Word(w) => Some(w),
            _ => None,
        }
    }
    pub fn is_punct(&self, p: &str) -> bool {
        matches!(&self.tok, Tok::Punct(q) if *q == p)
    }
    pub fn is_word(&self, w: &str) -> bool {
        matches!(&self.tok, Tok::Word(x) if x == w)
    }
    /// How the token reads in a message.
    pub fn describe(&self) -> String {
        match &self.tok {
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Var(v) => format!("${v}"),
            Tok::At(v) => format!("@{v}"),
            Tok::Punct(p) => format!("'{p}'"),
            Tok::Newline => "end of line".into(),
        }
    }
}

/// A position or length for a [`Span`] (saturating: no file is 4 GiB).
fn n32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-' | '*' | '%' | '[' | ']')
}

const PUNCTS: &[&str] = &[
    "==", "!=", "<=", ">=", "<<", ">>", "{", "}", "(", ")", ";", ",", ".", ":", "=", "<", ">", "&",
    "|", "^", "!", "+", "-", "/", "*",
];

/// Splits `src` into tokens. Comments (`#` to end of line) are dropped and
/// a backslash before a newline joins lines.
pub fn lex(src: &str) -> Result<Vec<Token>, Diagnostic> {
    lex_file(src, 0)
}

/// [`lex`] for the script's file number `file` (see [`Span::file`]).
pub fn lex_file(src: &str, file: u32) -> Result<Vec<Token>, Diagnostic> {
    lex_noting(src, file).map(|(t, _)| t)
}

/// What the lexer noticed on its way, so later passes need not read every
/// token again (a large file's tokens are far bigger than the caches).
#[derive(Clone, Copy, Debug, Default)]
pub struct Noted {
    /// A `$variable`, or a word that may start a definition or an include:
    /// the tokens need [`super::expand`].
    pub expands: bool,
    /// `flags` or `comment` as the first word of a line or block item: a
    /// table block may set its table's flags or comment after declaring
    /// something (see `parser::commands`).
    pub item_attributes: bool,
}

/// [`lex_file`], and what it noticed.
///
/// Scans bytes: everything but strings and comments is ASCII, so a
/// character is decoded only where a byte is not (columns count characters).
pub fn lex_noting(src: &str, file: u32) -> Result<(Vec<Token>, Noted), Diagnostic> {
    let b = src.as_bytes();
    let mut noted = Noted::default();
    // About one token per 5 characters in rulesets.
    let mut out: Vec<Token> = Vec::with_capacity(src.len() / 5);
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let word_byte = |c: u8| c.is_ascii() && is_word_char(c as char);
    while i < b.len() {
        let c = b[i];
        let start = Span {
            line: n32(line),
            column: n32(col),
            len: 1,
            file,
        };
        if c == b'\n' {
            out.push(Token {
                tok: Tok::Newline,
                span: start,
            });
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c == b'\\' && b.get(i + 1) == Some(&b'\n') {
            i += 2;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_ascii_whitespace() || c == 0x0b {
            i += 1;
            col += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'"' {
            let mut s = String::new();
            let mut j = i + 1;
            // Characters of the token, for the column.
            let mut n = 1;
            loop {
                let Some(ch) = src[j..].chars().next() else {
                    return Err(Diagnostic::new(start, "unterminated string"));
                };
                n += 1;
                match ch {
                    '\n' => return Err(Diagnostic::new(start, "unterminated string")),
                    '"' => break,
                    '\\' if j + 1 < b.len() => {
                        let next = src[j + 1..].chars().next().unwrap_or('\\');
                        // `\*` stays escaped: a literal star, not a wildcard.
                        if next == '*' {
                            s.push('\\');
                        }
                        s.push(next);
                        n += 1;
                        j += 1 + next.len_utf8();
                    }
                    ch => {
                        s.push(ch);
                        j += ch.len_utf8();
                    }
                }
            }
            out.push(Token {
                tok: Tok::Str(s),
                span: Span {
                    len: n32(n),
                    ..start
                },
            });
            i = j + 1;
            col += n;
            continue;
        }
        if (c == b'$' || c == b'@')
            && b.get(i + 1)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            let mut j = i + 1;
            while j < b.len()
                && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'_' | b'-' | b'.'))
            {
                j += 1;
            }
            // A trailing '.' belongs to a following concatenation, not the name.
            while j > i + 2 && b[j - 1] == b'.' {
                j -= 1;
            }
            let name = src[i + 1..j].to_owned();
            noted.expands |= c == b'$';
            let n = j - i;
            out.push(Token {
                tok: if c == b'$' {
                    Tok::Var(name)
                } else {
                    Tok::At(name)
                },
                span: Span {
                    len: n32(n),
                    ..start
                },
            });
            i = j;
            col += n;
            continue;
        }
        // A lone '.', ':', '-', '/' or '*' (followed by a space or a
        // delimiter) is an operator; inside a word it is part of the value.
        let lone = |j: usize| b.get(j).is_none_or(|n| !word_byte(*n));
        if word_byte(c) && !(matches!(c, b'.' | b':' | b'-' | b'/' | b'*') && lone(i + 1)) {
            let mut j = i;
            while j < b.len() && word_byte(b[j]) {
                j += 1;
            }
            // `22:` before a space is a key followed by a map colon, but `1234::` is an address.
            let mut w = &src[i..j];
            let mut n = j - i;
            let mut split_colon = false;
            if n > 1 && w.ends_with(':') && !w.ends_with("::") {
                w = &w[..n - 1];
                n -= 1;
                split_colon = true;
            }
            match w {
                "define" | "redefine" | "undefine" | "include" => noted.expands = true,
                "flags" | "comment" => {
                    noted.item_attributes |= out.last().is_none_or(|t| {
                        t.tok == Tok::Newline || matches!(t.tok, Tok::Punct(";" | "{" | "}"))
                    })
                }
                _ => {}
            }
            out.push(Token {
                tok: Tok::Word(w.to_owned()),
                span: Span {
                    len: n32(n),
                    ..start
                },
            });
            if split_colon {
                out.push(Token {
                    tok: Tok::Punct(":"),
                    span: Span {
                        line: n32(line),
                        column: n32(col + n),
                        len: 1,
                        file,
                    },
                });
            }
            col += j - i;
            i = j;
            continue;
        }
        if let Some(p) = PUNCTS.iter().find(|p| b[i..].starts_with(p.as_bytes())) {
            let n = p.len();
            out.push(Token {
                tok: Tok::Punct(p),
                span: Span {
                    len: n32(n),
                    ..start
                },
            });
            i += n;
            col += n;
            continue;
        }
        let ch = src[i..].chars().next().unwrap_or('?');
        if ch.is_whitespace() {
            i += ch.len_utf8();
            col += 1;
            continue;
        }
        return Err(Diagnostic::new(
            start,
            format!("unexpected character '{ch}'"),
        ));
    }
    Ok((out, noted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn values_stay_whole_and_operators_split() {
        assert_eq!(
            words("ip saddr . tcp dport {10.0.0.0/8 . 22-25}"),
            vec![
                Tok::Word("ip".into()),
                Tok::Word("saddr".into()),
                Tok::Punct("."),
                Tok::Word("tcp".into()),
                Tok::Word("dport".into()),
                Tok::Punct("{"),
                Tok::Word("10.0.0.0/8".into()),
                Tok::Punct("."),
                Tok::Word("22-25".into()),
                Tok::Punct("}"),
            ]
        );
        assert_eq!(
            words("{::dddd: drop, 22 : accept}")[1..4],
            [
                Tok::Word("::dddd".into()),
                Tok::Punct(":"),
                Tok::Word("drop".into())
            ]
        );
        assert_eq!(
            words("@s $v \"a b\" # c")[..3],
            [
                Tok::At("s".into()),
                Tok::Var("v".into()),
                Tok::Str("a b".into())
            ]
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let t = lex("\"é\\\"ü\"\u{a0}x # ß\ny").unwrap();
        assert_eq!(t[0].tok, Tok::Str("é\"ü".into()));
        assert_eq!((t[0].span.column, t[0].span.len), (1, 6));
        assert_eq!(t[1].tok, Tok::Word("x".into()));
        assert_eq!(t[1].span.column, 8);
        assert_eq!(
            (t[3].tok.clone(), t[3].span.line),
            (Tok::Word("y".into()), 2)
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(lex("\"open").is_err());
        assert!(lex("a ` b").is_err());
        assert!(lex("é ü \\").is_err());
    }
}
