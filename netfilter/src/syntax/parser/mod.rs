//! Recursive-descent parser: tokens → [`Script`]. Table blocks and flat
//! commands produce the same commands; `define`d variables are expanded
//! as tokens before parsing.

mod commands;
mod exprs;
mod stmts;

pub use commands::{handle_refusal, refusal};

use super::ast::*;
use super::diag::{Diagnostic, Span};
use super::expand::{expand, Sources};
use super::include::Includes;
use super::lexer::{lex, Tok, Token};
use super::Result as R;

/// Parses a whole nft script (no `include`: see [`super::compile_source`]).
pub fn parse_script(src: &str) -> Result<Script, Diagnostic> {
    let mut sources = Sources::new(None, src);
    parse_tokens(expand(lex(src)?, &mut sources, &Includes::Refuse)?)
}

/// Parses a script's tokens, includes and variables already expanded.
pub fn parse_tokens(toks: Vec<Token>) -> Result<Script, Diagnostic> {
    let mut script = Script::default();
    parse_into(toks, true, &mut script.commands)?;
    Ok(script)
}

/// Parses a script's tokens, handing each command to `out` as soon as it
/// is complete (what was sent before an error is the caller's to drop).
/// `item_attributes`: whether a table block may set its table's flags or
/// comment after a declaration ([`super::lexer::Noted`]); when it may, each
/// block is read ahead to find out.
pub(crate) fn parse_into(
    toks: Vec<Token>,
    item_attributes: bool,
    out: &mut dyn Sink,
) -> Result<(), Diagnostic> {
    let mut p = Parser {
        toks,
        pos: 0,
        item_attributes,
    };
    loop {
        p.skip_separators();
        if p.at_end() {
            return Ok(());
        }
        p.command(out)?;
    }
}

/// Where the parser sends each command once it is complete: a list, or
/// the evaluator, which then compiles a rule while its words are hot and
/// drops its syntax tree at once.
pub(crate) trait Sink {
    fn command(&mut self, cmd: Command);
    fn commands(&mut self, cmds: &mut dyn Iterator<Item = Command>) {
        for c in cmds {
            self.command(c);
        }
    }
    /// A rule of a table block before the block's end (an `add` to the
    /// chain just declared): taken (`None`) if it means now what it would
    /// at the block's end, else handed back to wait.
    fn early_rule(
        &mut self,
        family: &str,
        table: &str,
        chain: &str,
        rule: RuleAst,
    ) -> Option<RuleAst> {
        let _ = (family, table, chain);
        Some(rule)
    }
    /// A table block's declarations are all sent; its waiting rules follow.
    fn block_end(&mut self) {}
}

impl Sink for Vec<Command> {
    fn command(&mut self, cmd: Command) {
        self.push(cmd);
    }
}

/// Parses one rule's statements (no `add rule` prefix).
pub fn parse_rule(src: &str) -> Result<RuleAst, Diagnostic> {
    let mut sources = Sources::new(None, src);
    let toks = expand(lex(src)?, &mut sources, &Includes::Refuse)?;
    let mut p = Parser {
        toks,
        pos: 0,
        item_attributes: true,
    };
    while p.peek().is_some_and(|t| t.tok == Tok::Newline) {
        p.pos += 1;
    }
    let rule = p.rule()?;
    p.skip_separators();
    if let Some(t) = p.peek() {
        return Err(Diagnostic::new(
            t.span,
            format!("unexpected {}", t.describe()),
        ));
    }
    Ok(rule)
}

/// The tokens and the position reached. Its methods are spread over the
/// submodules by job; the ones here read tokens.
struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Whether any `flags` or `comment` starts a line or item.
    item_attributes: bool,
}

impl Parser {
    pub(super) fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }
    pub(super) fn peek_at(&self, n: usize) -> Option<&Token> {
        self.toks.get(self.pos + n)
    }
    pub(super) fn peek_word(&self) -> Option<&str> {
        self.peek().and_then(|t| t.word())
    }
    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }
    pub(super) fn here(&self) -> Span {
        self.peek()
            .map(|t| t.span)
            .or_else(|| {
                self.toks.last().map(|t| Span {
                    column: t.span.column + t.span.len,
                    len: 1,
                    ..t.span
                })
            })
            .unwrap_or(Span {
                line: 1,
                column: 1,
                len: 1,
                file: 0,
            })
    }
    pub(super) fn unexpected<T>(&self, expected: &[&str]) -> R<T> {
        let what = self
            .peek()
            .map(|t| t.describe())
            .unwrap_or_else(|| "end of input".into());
        Err(Diagnostic::new(self.here(), format!("unexpected {what}")).expected(expected))
    }
    pub(super) fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    pub(super) fn eat_punct(&mut self, p: &str) -> bool {
        if self.peek().is_some_and(|t| t.is_punct(p)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    pub(super) fn eat_word(&mut self, w: &str) -> bool {
        if self.peek().is_some_and(|t| t.is_word(w)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    pub(super) fn expect_punct(&mut self, p: &str) -> R<Span> {
        let s = self.here();
        if self.eat_punct(p) {
            Ok(s)
        } else {
            self.unexpected(&[p])
        }
    }
    pub(super) fn word(&mut self, what: &str) -> R<(String, Span)> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w),
                span,
            }) => {
                let r = (w.clone(), *span);
                self.pos += 1;
                Ok(r)
            }
            _ => self.unexpected(&[what]),
        }
    }
    /// [`Self::word`], moving the word out of its token instead of copying
    /// it: only where the parser never reads that token again.
    pub(super) fn take_word(&mut self, what: &str) -> R<(String, Span)> {
        match self.toks.get_mut(self.pos) {
            Some(Token {
                tok: Tok::Word(w),
                span,
            }) => {
                let r = (std::mem::take(w), *span);
                self.pos += 1;
                Ok(r)
            }
            _ => self.unexpected(&[what]),
        }
    }
    /// [`Self::string`], moving it out of its token (see [`Self::take_word`]).
    pub(super) fn take_string(&mut self, what: &str) -> R<String> {
        match self.toks.get_mut(self.pos) {
            Some(Token {
                tok: Tok::Str(w), ..
            }) => {
                let w = std::mem::take(w);
                self.pos += 1;
                Ok(w)
            }
            _ => self.take_word(what).map(|(s, _)| s),
        }
    }
    /// A name of a table, chain, set or object: a bare word (nft 1.0.6
    /// refuses quoted names there).
    pub(super) fn name(&mut self, what: &str) -> R<(String, Span)> {
        if let Some(Token {
            tok: Tok::Str(w),
            span,
        }) = self.peek()
        {
            return Err(Diagnostic::new(
                *span,
                format!("unexpected quoted string, expecting {what}"),
            )
            .help(format!("nft takes names bare: write {w} without quotes")));
        }
        self.word(what)
    }
    /// A string: quoted, or a bare word.
    pub(super) fn string(&mut self, what: &str) -> R<String> {
        match self.peek() {
            Some(Token {
                tok: Tok::Str(w), ..
            }) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => self.word(what).map(|(s, _)| s),
        }
    }
    pub(super) fn number(&mut self, what: &str) -> R<u64> {
        let (w, span) = self.word(what)?;
        parse_u64(&w).ok_or_else(|| Diagnostic::new(span, format!("expected {what}, got '{w}'")))
    }
    pub(super) fn at_separator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(t) => t.tok == Tok::Newline || t.is_punct(";") || t.is_punct("}"),
        }
    }
    pub(super) fn skip_separators(&mut self) {
        while self
            .peek()
            .is_some_and(|t| t.tok == Tok::Newline || t.is_punct(";"))
        {
            self.pos += 1;
        }
    }
    pub(super) fn skip_newlines(&mut self) {
        while self.peek().is_some_and(|t| t.tok == Tok::Newline) {
            self.pos += 1;
        }
    }
    /// Skips to the next item of a `{ ... }` block; false once it closed.
    pub(super) fn next_block_item(&mut self) -> R<bool> {
        self.skip_separators();
        if self.eat_punct("}") {
            return Ok(false);
        }
        if self.at_end() {
            return self.unexpected(&["}"]);
        }
        Ok(true)
    }
    pub(super) fn end_of_command(&mut self) -> R<()> {
        if self.at_separator() {
            Ok(())
        } else {
            self.unexpected(&["end of command"])
        }
    }
}

/// `123`, `0x1f`, `0o17`.
pub fn parse_u64(w: &str) -> Option<u64> {
    if let Some(h) = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if w.len() > 1 && w.starts_with('0') && w.bytes().all(|b| b.is_ascii_digit()) {
        // nft reads a leading zero as octal only in some contexts; decimal here.
        w.parse().ok()
    } else if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) {
        w.parse().ok()
    } else {
        None
    }
}

/// `-12`, `12`, `0x1f`.
pub fn parse_i64(w: &str) -> Option<i64> {
    if let Some(n) = w.strip_prefix('-') {
        parse_u64(n).and_then(|v| i64::try_from(v).ok()).map(|v| -v)
    } else {
        parse_u64(w).and_then(|v| i64::try_from(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn table_block_and_flat_commands_give_the_same_commands() {
        let a = parse_script(
            "table inet t {\n chain c { type filter hook input priority filter + 10; policy drop; }\n}\n",
        )
        .unwrap();
        let b = parse_script("add table inet t\nadd chain inet t c { type filter hook input priority filter + 10; policy drop; }").unwrap();
        assert_eq!(a.commands.len(), 2);
        let strip = |o: &Object| match o {
            Object::Chain(c) => (
                c.name.clone(),
                c.hook.clone(),
                c.priority.as_ref().map(|p| (p.0.clone(), p.1)),
            ),
            _ => Default::default(),
        };
        assert_eq!(strip(&a.commands[1].object), strip(&b.commands[1].object));
        match &a.commands[1].object {
            Object::Chain(c) => {
                assert_eq!(
                    c.priority.as_ref().map(|p| (p.0.clone(), p.1)),
                    Some((Some("filter".into()), 10))
                );
                assert_eq!(c.policy.as_deref(), Some("drop"));
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    pub(super) fn rules_split_into_statements() {
        let r = parse_rule(
            "ip saddr . tcp dport { 10.0.0.1 . 22 } ct state new,established counter accept",
        )
        .unwrap();
        assert_eq!(r.stmts.len(), 4);
        assert!(matches!(&r.stmts[1], Stmt::Match { right: Expr::List(v, _), .. } if v.len() == 2));
        assert!(matches!(&r.stmts[3], Stmt::Verdict(Verdict::Accept, _)));
    }

    #[test]
    pub(super) fn value_under_mask_and_tcp_options_by_number() {
        let r = parse_rule("tcp flags != syn / fin,syn").unwrap();
        assert!(matches!(
            &r.stmts[0],
            Stmt::Match { left: Expr::Binop(BinOp::And, _, m, _), op: RelOp::Ne, right: Expr::Word(w, _), .. }
                if w == "syn" && matches!(&**m, Expr::List(v, _) if v.len() == 2)
        ));
        // A `/` before a number is still a prefix.
        let r = parse_rule("meta mark 0xffffff00 / 24").unwrap();
        assert!(matches!(
            &r.stmts[0],
            Stmt::Match {
                right: Expr::Prefix(_, 24, _),
                ..
            }
        ));
        let r = parse_rule("tcp option @255,8,8 255 reset tcp option 123").unwrap();
        assert!(
            matches!(&r.stmts[0], Stmt::Match { left: Expr::Sel(p, _), .. }
            if p == &["tcp", "option", "@", "255", "8", "8"])
        );
        assert!(matches!(&r.stmts[1], Stmt::Keyword { name, args, .. }
            if name == "reset" && matches!(&args[..], [Arg::Expr(Expr::Sel(p, _))] if p == &["tcp", "option", "123"])));
    }

    #[test]
    pub(super) fn defines_expand_and_include_is_refused() {
        let s = parse_script("define p = { 22, 80 }\nadd rule ip t c tcp dport $p accept").unwrap();
        assert_eq!(s.commands.len(), 1);
        let e = parse_script("include \"x.nft\"").unwrap_err();
        assert!(e.message.contains("include"));
        assert!(parse_script("add rule ip t c tcp dport $nope")
            .unwrap_err()
            .message
            .contains("unknown identifier 'nope'"));
    }
}
