//! A shallow scanner over nft text: splits words, quoted strings, `@set`
//! references and punctuation, with line and column. It knows no grammar;
//! the validator uses it to find names that refer to other objects (jump
//! targets, sets, named objects) and to catch unbalanced text before the
//! compiler sees it.

/// One token and where it starts (1-based line and column, in characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: TokenKind,
    /// The text; for strings, without the quotes.
    pub text: &'a str,
    pub line: u32,
    pub column: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Word,
    Str,
    /// `@name`; `text` is the name.
    SetRef,
    /// One of `{ } ( ) [ ] , : ; =` or a newline (nft's statement separator).
    Punct,
}

/// What the scanner could not make sense of.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ScanError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Splits `src` into tokens; `#` starts a comment to the end of the line.
/// Checks that strings end and that braces and brackets balance.
pub fn scan(src: &str) -> Result<Vec<Token<'_>>, ScanError> {
    let mut out = Vec::new();
    let mut open: Vec<(char, u32, u32)> = Vec::new();
    let (mut line, mut col) = (1u32, 1u32);
    let mut it = src.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let (tl, tc) = (line, col);
        col += 1;
        match c {
            '\n' => {
                out.push(Token {
                    kind: TokenKind::Punct,
                    text: &src[i..i + 1],
                    line: tl,
                    column: tc,
                });
                line += 1;
                col = 1;
            }
            c if c.is_whitespace() => {}
            '#' => {
                while let Some(&(_, c)) = it.peek() {
                    if c == '\n' {
                        break;
                    }
                    it.next();
                    col += 1;
                }
            }
            '"' => {
                let start = i + 1;
                let mut end = None;
                for (j, c) in it.by_ref() {
                    col += 1;
                    if c == '"' {
                        end = Some(j);
                        break;
                    }
                    if c == '\n' {
                        break;
                    }
                }
                let Some(end) = end else {
                    return Err(ScanError {
                        line: tl,
                        column: tc,
                        message: "unterminated string".into(),
                    });
                };
                out.push(Token {
                    kind: TokenKind::Str,
                    text: &src[start..end],
                    line: tl,
                    column: tc,
                });
            }
            '{' | '(' | '[' => {
                open.push((c, tl, tc));
                out.push(Token {
                    kind: TokenKind::Punct,
                    text: &src[i..i + 1],
                    line: tl,
                    column: tc,
                });
            }
            '}' | ')' | ']' => {
                let want = match c {
                    '}' => '{',
                    ')' => '(',
                    _ => '[',
                };
                match open.pop() {
                    Some((o, _, _)) if o == want => {}
                    Some((o, l, cc)) => {
                        return Err(ScanError {
                            line: tl,
                            column: tc,
                            message: format!("'{c}' closes '{o}' opened at {l}:{cc}"),
                        })
                    }
                    None => {
                        return Err(ScanError {
                            line: tl,
                            column: tc,
                            message: format!("'{c}' without opening '{want}'"),
                        })
                    }
                }
                out.push(Token {
                    kind: TokenKind::Punct,
                    text: &src[i..i + 1],
                    line: tl,
                    column: tc,
                });
            }
            ',' | ':' | ';' | '=' => {
                out.push(Token {
                    kind: TokenKind::Punct,
                    text: &src[i..i + 1],
                    line: tl,
                    column: tc,
                });
            }
            '@' => {
                let start = i + 1;
                let mut end = start;
                while let Some(&(j, c)) = it.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    end = j + c.len_utf8();
                    it.next();
                    col += 1;
                }
                if end == start {
                    return Err(ScanError {
                        line: tl,
                        column: tc,
                        message: "'@' must be followed by a set or map name".into(),
                    });
                }
                out.push(Token {
                    kind: TokenKind::SetRef,
                    text: &src[start..end],
                    line: tl,
                    column: tc,
                });
            }
            _ => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, c)) = it.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    end = j + c.len_utf8();
                    it.next();
                    col += 1;
                }
                out.push(Token {
                    kind: TokenKind::Word,
                    text: &src[i..end],
                    line: tl,
                    column: tc,
                });
            }
        }
    }
    if let Some((o, l, c)) = open.pop() {
        return Err(ScanError {
            line: l,
            column: c,
            message: format!("'{o}' is never closed"),
        });
    }
    Ok(out)
}

fn is_word_char(c: char) -> bool {
    !(c.is_whitespace()
        || matches!(
            c,
            '{' | '}' | '(' | ')' | '[' | ']' | ',' | ':' | ';' | '=' | '"' | '#' | '@'
        ))
}

impl Token<'_> {
    /// True for a word or string equal to `s`.
    pub fn is(&self, s: &str) -> bool {
        matches!(self.kind, TokenKind::Word | TokenKind::Str) && self.text == s
    }
    /// True for a name-like token (a word or a quoted string).
    pub fn is_name(&self) -> bool {
        matches!(self.kind, TokenKind::Word | TokenKind::Str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<(TokenKind, &str, u32, u32)> {
        scan(src)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text, t.line, t.column))
            .collect()
    }

    #[test]
    fn splits_words_strings_refs_and_punctuation() {
        assert_eq!(
            words(r#"ip saddr @allowed tcp dport { 22, 80 } counter comment "a b""#),
            vec![
                (TokenKind::Word, "ip", 1, 1),
                (TokenKind::Word, "saddr", 1, 4),
                (TokenKind::SetRef, "allowed", 1, 10),
                (TokenKind::Word, "tcp", 1, 19),
                (TokenKind::Word, "dport", 1, 23),
                (TokenKind::Punct, "{", 1, 29),
                (TokenKind::Word, "22", 1, 31),
                (TokenKind::Punct, ",", 1, 33),
                (TokenKind::Word, "80", 1, 35),
                (TokenKind::Punct, "}", 1, 38),
                (TokenKind::Word, "counter", 1, 40),
                (TokenKind::Word, "comment", 1, 48),
                (TokenKind::Str, "a b", 1, 56),
            ]
        );
    }

    #[test]
    fn tracks_lines_and_skips_comments() {
        let t = words("table inet t { # x }\n  chain c {\n}\n}");
        assert_eq!(t[4], (TokenKind::Punct, "\n", 1, 21));
        assert_eq!(t[5], (TokenKind::Word, "chain", 2, 3));
    }

    #[test]
    fn reports_unbalanced_text_with_position() {
        assert_eq!(
            scan("a { b").unwrap_err().to_string(),
            "1:3: '{' is never closed"
        );
        assert_eq!(
            scan("a }").unwrap_err().to_string(),
            "1:3: '}' without opening '{'"
        );
        assert_eq!(
            scan("a [ }").unwrap_err().to_string(),
            "1:5: '}' closes '[' opened at 1:3"
        );
        assert_eq!(
            scan("x \"abc").unwrap_err().to_string(),
            "1:3: unterminated string"
        );
        assert_eq!(
            scan("ip saddr @ x").unwrap_err().to_string(),
            "1:10: '@' must be followed by a set or map name"
        );
    }
}
