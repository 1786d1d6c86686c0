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
    let chars: Vec<char> = src.chars().collect();
    // About one token per 5 characters in rulesets.
    let mut out = Vec::with_capacity(src.len() / 5);
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    while i < chars.len() {
        let c = chars[i];
        let start = Span {
            line,
            column: col,
            len: 1,
            file,
        };
        if c == '\n' {
            out.push(Token {
                tok: Tok::Newline,
                span: start,
            });
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c == '\\' && chars.get(i + 1) == Some(&'\n') {
            i += 2;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            col += 1;
            continue;
        }
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '"' {
            let mut s = String::new();
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None | Some('\n') => return Err(Diagnostic::new(start, "unterminated string")),
                    Some('"') => break,
                    Some('\\') if j + 1 < chars.len() => {
                        // `\*` stays escaped: a literal star, not a wildcard.
                        if chars[j + 1] == '*' {
                            s.push('\\');
                        }
                        s.push(chars[j + 1]);
                        j += 2;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        j += 1;
                    }
                }
            }
            let n = j + 1 - i;
            out.push(Token {
                tok: Tok::Str(s),
                span: Span { len: n, ..start },
            });
            i = j + 1;
            col += n;
            continue;
        }
        if (c == '$' || c == '@')
            && chars
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            let mut j = i + 1;
            while j < chars.len()
                && (chars[j].is_ascii_alphanumeric() || matches!(chars[j], '_' | '-' | '.'))
            {
                j += 1;
            }
            // A trailing '.' belongs to a following concatenation, not the name.
            while j > i + 2 && chars[j - 1] == '.' {
                j -= 1;
            }
            let name: String = chars[i + 1..j].iter().collect();
            let n = j - i;
            out.push(Token {
                tok: if c == '$' {
                    Tok::Var(name)
                } else {
                    Tok::At(name)
                },
                span: Span { len: n, ..start },
            });
            i = j;
            col += n;
            continue;
        }
        // A lone '.', ':', '-', '/' or '*' (followed by a space or a
        // delimiter) is an operator; inside a word it is part of the value.
        let lone = |j: usize| chars.get(j).is_none_or(|n| !is_word_char(*n));
        if is_word_char(c) && !(matches!(c, '.' | ':' | '-' | '/' | '*') && lone(i + 1)) {
            let mut j = i;
            while j < chars.len() && is_word_char(chars[j]) {
                j += 1;
            }
            // `22:` before a space is a key followed by a map colon, but `1234::` is an address.
            let mut w = String::with_capacity(j - i);
            w.extend(&chars[i..j]);
            let mut n = j - i;
            let mut split_colon = false;
            if n > 1 && w.ends_with(':') && !w.ends_with("::") {
                w.pop();
                n -= 1;
                split_colon = true;
            }
            out.push(Token {
                tok: Tok::Word(w),
                span: Span { len: n, ..start },
            });
            if split_colon {
                out.push(Token {
                    tok: Tok::Punct(":"),
                    span: Span {
                        line,
                        column: col + n,
                        len: 1,
                        file,
                    },
                });
            }
            col += j - i;
            i = j;
            continue;
        }
        let rest: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
            let n = p.len();
            out.push(Token {
                tok: Tok::Punct(p),
                span: Span { len: n, ..start },
            });
            i += n;
            col += n;
            continue;
        }
        return Err(Diagnostic::new(
            start,
            format!("unexpected character '{c}'"),
        ));
    }
    Ok(out)
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
    fn bad_input_is_an_error_not_a_panic() {
        assert!(lex("\"open").is_err());
        assert!(lex("a ` b").is_err());
        assert!(lex("é ü \\").is_err());
    }
}
