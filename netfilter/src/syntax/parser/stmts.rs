//! Rules and statements: matches, verdicts, keyword statements, set
//! statements and set element options.

use super::Parser;
use crate::syntax::ast::*;
use crate::syntax::diag::{Diagnostic, Span};
use crate::syntax::lexer::{Tok, Token};
use crate::syntax::vocab::*;
use crate::syntax::Result as R;

impl Parser {
    pub(super) fn rule(&mut self) -> R<RuleAst> {
        let span = self.here();
        // Room for most rules at once, under 1 KiB: glibc consolidates its
        // free lists before every larger allocation.
        let mut stmts = Vec::with_capacity(1000 / std::mem::size_of::<Stmt>());
        let mut comment = None;
        while !self.at_separator() {
            if self.peek_word() == Some("comment") {
                self.pos += 1;
                comment = Some(self.take_string("comment")?);
                continue;
            }
            stmts.push(self.stmt()?);
        }
        if stmts.is_empty() && comment.is_none() {
            return self.unexpected(&["statement"]);
        }
        Ok(RuleAst {
            stmts,
            comment,
            span,
        })
    }

    pub(super) fn stmt(&mut self) -> R<Stmt> {
        let span = self.here();
        // What the first word starts, decided before it is read (no copy).
        let start = self.peek_word().map(|w| {
            (
                matches!(w, "jump" | "goto").then_some(w == "goto"),
                STMT_KEYWORDS.contains(&w),
                matches!(w, "add" | "update" | "delete"),
            )
        });
        if let Some((bound, keyword, set_op)) = start {
            if let Some(goto) = bound.filter(|_| self.peek_at(1).is_some_and(|t| t.is_punct("{"))) {
                return self.bound_chain(goto, span);
            }
            if let Some(v) = self.verdict()? {
                return Ok(Stmt::Verdict(v, span));
            }
            if keyword {
                return self.keyword_stmt();
            }
            if set_op && self.peek_at(1).is_some_and(|t| matches!(t.tok, Tok::At(_))) {
                let (op, _) = self.word("add, update or delete")?;
                let set = match self.next().map(|t| t.tok) {
                    Some(Tok::At(s)) => s,
                    _ => return self.unexpected(&["@set"]),
                };
                self.expect_punct("{")?;
                self.skip_newlines();
                let key = self.expr()?;
                let mut stmts = Vec::new();
                let mut data = None;
                loop {
                    self.skip_newlines();
                    if self.eat_punct("}") {
                        break;
                    }
                    if data.is_none() && self.eat_punct(":") {
                        data = Some(self.expr()?);
                        continue;
                    }
                    if self.at_end() {
                        return self.unexpected(&["}"]);
                    }
                    if self.peek_word() == Some("timeout") {
                        let s = self.here();
                        self.pos += 1;
                        let (t, ts) = self.word("timeout")?;
                        stmts.push(Stmt::Keyword {
                            name: "timeout".into(),
                            args: vec![Arg::Word(t, ts)],
                            span: s,
                        });
                        continue;
                    }
                    stmts.push(self.stmt()?);
                }
                return Ok(Stmt::SetOp(Box::new(SetOp {
                    op,
                    set,
                    key,
                    data,
                    stmts,
                    span: span.to(self.prev_span()),
                })));
            }
        }
        // `reset tcp option NAME|N`: removes an option.
        if self.peek_word() == Some("reset") && self.peek_at(1).is_some_and(|t| t.is_word("tcp")) {
            self.pos += 1;
            let opt = self.primary()?;
            return Ok(Stmt::Keyword {
                name: "reset".into(),
                args: vec![Arg::Expr(opt)],
                span: span.to(self.prev_span()),
            });
        }
        self.known_statement_start()?;
        let left = self.expr()?;
        if let Expr::Sel(path, _) = &left {
            if path == &["ct", "count"] {
                let mut args = Vec::new();
                if self.peek_word() == Some("over") {
                    let (w, s) = self.word("over")?;
                    args.push(Arg::Word(w, s));
                }
                let (w, s) = self.word("count")?;
                args.push(Arg::Word(w, s));
                return Ok(Stmt::Keyword {
                    name: "ct count".into(),
                    args,
                    span,
                });
            }
        }
        if self.eat_word("set") {
            let mut value = self.expr()?;
            // `ct event set new,destroy`: a flag list.
            if self.peek().is_some_and(|t| t.is_punct(",")) {
                let mut items = vec![value];
                while self.eat_punct(",") {
                    items.push(self.expr()?);
                }
                let span = items[0].span().to(items[items.len() - 1].span());
                value = Expr::List(items, span);
            }
            return Ok(Stmt::Assign {
                left,
                value,
                span: span.to(self.prev_span()),
            });
        }
        if self.eat_word("vmap") {
            let map = self.map_rhs()?;
            return Ok(Stmt::Vmap {
                left,
                map,
                span: span.to(self.prev_span()),
            });
        }
        let op = self.relop();
        // `icmp type redirect`: a type name that is also a statement.
        let type_name = matches!(&left, Expr::Sel(p, _) if p.len() == 2
            && matches!((p[0].as_str(), p[1].as_str()), ("icmp" | "icmpv6", "type") | ("ct", "status"))
            && matches!(self.peek_word(), Some("redirect" | "snat" | "dnat")));
        if op == RelOp::Implicit && self.at_stmt_boundary() && !type_name {
            return Err(Diagnostic::new(
                left.span(),
                "expected a value after this expression",
            ));
        }
        let right = self.rhs()?;
        // `tcp flags syn / fin,syn`: the value under a mask, i.e.
        // `tcp flags & (fin | syn) == syn`.
        if self.eat_punct("/") {
            let mask = self.rhs()?;
            let mspan = left.span().to(mask.span());
            return Ok(Stmt::Match {
                left: Expr::Binop(BinOp::And, Box::new(left), Box::new(mask), mspan),
                op: if op == RelOp::Implicit { RelOp::Eq } else { op },
                right,
                span: span.to(self.prev_span()),
            });
        }
        Ok(Stmt::Match {
            left,
            op,
            right,
            span: span.to(self.prev_span()),
        })
    }

    /// A statement that is not a keyword statement starts with a selector
    /// (`tcp dport`, `iifname`): anything else is a misspelling, named
    /// with the closest word valid here.
    pub(super) fn known_statement_start(&self) -> R<()> {
        let Some(Token {
            tok: Tok::Word(w),
            span,
        }) = self.peek()
        else {
            return Ok(());
        };
        let Some(vocab) = selector_vocab(w) else {
            if w == "jhash" {
                return Ok(());
            }
            return Err(Diagnostic::new(*span, format!("unknown statement '{w}'"))
                .suggest(w, statement_starts()));
        };
        match self.peek_at(1) {
            Some(Token {
                tok: Tok::Word(n),
                span: nspan,
            }) if !(vocab.is_empty()
                || vocab.contains(&n.as_str())
                || w == "srh" && n.starts_with("sid[")) =>
            {
                let d = Diagnostic::new(*nspan, format!("unknown {w} expression '{n}'"));
                Err(
                    match crate::syntax::suggest::closest(n, vocab.iter().copied()) {
                        Some(s) => d.help(format!("did you mean '{s}'?")),
                        None if vocab.len() <= 12 => {
                            d.help(format!("after '{w}': {}", vocab.join(", ")))
                        }
                        None => d,
                    },
                )
            }
            _ => Ok(()),
        }
    }

    /// `jump { rules }`: an anonymous chain bound to this rule.
    pub(super) fn bound_chain(&mut self, goto: bool, span: Span) -> R<Stmt> {
        self.pos += 1;
        self.expect_punct("{")?;
        let mut rules = Vec::new();
        while self.next_block_item()? {
            rules.push(self.rule()?);
        }
        Ok(Stmt::Bound {
            goto,
            rules,
            span: span.to(self.prev_span()),
        })
    }

    pub(super) fn prev_span(&self) -> Span {
        self.toks
            .get(self.pos.saturating_sub(1))
            .map(|t| t.span)
            .unwrap_or_default()
    }

    pub(super) fn at_stmt_boundary(&self) -> bool {
        self.at_separator() || self.peek_word().is_some_and(|w| STMT_KEYWORDS.contains(&w))
    }

    pub(super) fn relop(&mut self) -> RelOp {
        let Some(t) = self.peek() else {
            return RelOp::Implicit;
        };
        let op = match &t.tok {
            Tok::Punct("==") => RelOp::Eq,
            Tok::Punct("!=") => RelOp::Ne,
            Tok::Punct("<") => RelOp::Lt,
            Tok::Punct(">") => RelOp::Gt,
            Tok::Punct("<=") => RelOp::Le,
            Tok::Punct(">=") => RelOp::Ge,
            Tok::Punct("!") => RelOp::Not,
            Tok::Word(w) => match w.as_str() {
                "eq" => RelOp::Eq,
                "ne" => RelOp::Ne,
                "lt" => RelOp::Lt,
                "gt" => RelOp::Gt,
                "le" => RelOp::Le,
                "ge" => RelOp::Ge,
                _ => return RelOp::Implicit,
            },
            _ => return RelOp::Implicit,
        };
        self.pos += 1;
        op
    }

    pub(super) fn verdict(&mut self) -> R<Option<Verdict>> {
        let v = match self.peek_word() {
            Some("accept") => Verdict::Accept,
            Some("drop") => Verdict::Drop,
            Some("continue") => Verdict::Continue,
            Some("return") => Verdict::Return,
            Some(w @ ("jump" | "goto")) => {
                let jump = w == "jump";
                self.pos += 1;
                let (c, _) = self.name("chain name")?;
                return Ok(Some(if jump {
                    Verdict::Jump(c)
                } else {
                    Verdict::Goto(c)
                }));
            }
            _ => return Ok(None),
        };
        self.pos += 1;
        Ok(Some(v))
    }

    /// A word `ADDR:HEAD` where HEAD starts a selector (`127.0.0.1:symhash`):
    /// returns ADDR and leaves HEAD as the next token.
    pub(super) fn split_addr_selector(&mut self) -> Option<Expr> {
        let t = self.peek()?;
        let (a, h) = t.word()?.rsplit_once(':')?;
        if a.is_empty() || a.contains(':') || selector_vocab(h).is_none() {
            return None;
        }
        let (a, h, span) = (a.to_owned(), h.to_owned(), t.span);
        self.toks[self.pos].tok = Tok::Word(h);
        Some(Expr::Word(a, span))
    }

    /// Keyword statements keep their words; `to`/`map` take expressions.
    pub(super) fn keyword_stmt(&mut self) -> R<Stmt> {
        let (name, span) = self.take_word("statement")?;
        let own: &[&str] = match name.as_str() {
            "reject" => &["with", "icmp", "icmpv6", "icmpx", "tcp", "type", "reset"],
            "log" => &["ip", "tcp", "ether", "options", "sequence", "skuid", "all"],
            "snat" | "dnat" | "masquerade" | "redirect" | "tproxy" | "fwd" | "dup" => {
                &["ip", "ip6"]
            }
            "meter" => &[],
            _ => &[],
        };
        let mut args = Vec::new();
        loop {
            if self.at_separator() {
                break;
            }
            // `dnat ip addr . port to …`: the map's values are an address
            // and a port, as nft infers without the words (same bytecode).
            if matches!(name.as_str(), "snat" | "dnat")
                && self.peek_word() == Some("addr")
                && self.peek_at(1).is_some_and(|t| t.is_punct("."))
                && self.peek_at(2).is_some_and(|t| t.is_word("port"))
            {
                self.pos += 3;
                continue;
            }
            // Borrowed: only the word an argument keeps is copied.
            let Some(t) = self.peek() else {
                break;
            };
            let tspan = t.span;
            match &t.tok {
                Tok::Word(w) => {
                    if w == "comment" {
                        break;
                    }
                    // `counter update @s { ... }`: a set statement starts.
                    if matches!(w.as_str(), "add" | "update" | "delete")
                        && self.peek_at(1).is_some_and(|t| matches!(t.tok, Tok::At(_)))
                    {
                        break;
                    }
                    // `counter ipsec out ip daddr ...`: a selector follows.
                    let selector = selector_vocab(w).is_some_and(|v| {
                        self.peek_at(1)
                            .and_then(|t| t.word())
                            .is_some_and(|n| v.contains(&n))
                    });
                    if !own.contains(&w.as_str())
                        && (STMT_KEYWORDS.contains(&w.as_str())
                            || (selector && META_SHORT.contains(&w.as_str()))
                            || (selector_vocab(w).is_some()
                                && !META_SHORT.contains(&w.as_str())
                                && !args.last().is_some_and(
                                    |a| matches!(a, Arg::Word(k, _) if takes_value(k)),
                                )))
                    {
                        break;
                    }
                    let (w, _) = self.take_word("a word")?;
                    let is_to =
                        matches!(w.as_str(), "to" | "device") && !matches!(name.as_str(), "queue");
                    let (is_name, is_map) = (w == "name", w == "map");
                    args.push(Arg::Word(w, tspan));
                    // `counter name tcp dport map {...}`: an object map key.
                    if is_name
                        && self
                            .peek()
                            .and_then(|t| t.word())
                            .is_some_and(|n| selector_vocab(n).is_some())
                    {
                        args.push(Arg::Expr(self.expr()?));
                        continue;
                    }
                    if is_to {
                        // `to 1.2.3.4:symhash mod 2 map { ... }`: an address,
                        // then a port computed by an expression.
                        if let Some(addr) = self.split_addr_selector() {
                            let span = addr.span();
                            args.push(Arg::Expr(addr));
                            args.push(Arg::Punct(":", span));
                        }
                    }
                    if is_to || (is_map && name != "limit") {
                        args.push(Arg::Expr(self.expr()?));
                    }
                }
                Tok::Str(_) => {
                    let s = self.take_string("a string")?;
                    args.push(Arg::Str(s, tspan));
                }
                Tok::Punct(p) if matches!(*p, "," | "/" | ":" | "-" | "|") => {
                    let p = *p;
                    self.pos += 1;
                    args.push(Arg::Punct(p, tspan));
                }
                Tok::At(_) if name == "meter" => {
                    args.push(Arg::Expr(self.primary()?));
                }
                Tok::Punct("{") if name == "meter" => {
                    args.push(Arg::Expr(self.set_literal()?));
                }
                _ => break,
            }
        }
        Ok(Stmt::Keyword { name, args, span })
    }

    /// A stateful statement of a set or element: its words up to the next
    /// statement, option, `,` or the end of the line or block.
    pub(super) fn set_stmt(&mut self) -> R<Stmt> {
        let (mut name, span) = self.word("statement")?;
        if name == "ct" {
            self.word("count")?;
            name = "ct count".into();
        }
        let mut args = Vec::new();
        while let Some(t) = self.peek() {
            match &t.tok {
                Tok::Word(w)
                    if !is_set_stmt(w, self.peek_at(1))
                        && !matches!(w.as_str(), "counter" | "comment" | "timeout" | "expires") =>
                {
                    args.push(Arg::Word(w.clone(), t.span))
                }
                Tok::Punct("/") => args.push(Arg::Punct("/", t.span)),
                _ => break,
            }
            self.pos += 1;
        }
        Ok(Stmt::Keyword {
            name,
            args,
            span: span.to(self.prev_span()),
        })
    }

    pub(super) fn elem_options(&mut self, elem: &mut Elem) -> R<()> {
        loop {
            match self.peek_word() {
                Some("timeout") => {
                    self.pos += 1;
                    elem.timeout = Some(self.word("timeout")?.0);
                }
                Some("expires") => {
                    self.pos += 1;
                    elem.expires = Some(self.word("expiry")?.0);
                }
                Some("comment") => {
                    self.pos += 1;
                    elem.comment = Some(self.string("comment")?);
                }
                Some("counter") if !elem.stmts.is_empty() => elem.stmts.push(self.set_stmt()?),
                Some(w) if is_set_stmt(w, self.peek_at(1)) => {
                    if let Some((p, b)) = elem.counter.take() {
                        elem.stmts.push(counter_stmt(self.here(), p, b));
                    }
                    elem.stmts.push(self.set_stmt()?);
                }
                Some("counter") => {
                    self.pos += 1;
                    let (mut p, mut b) = (0, 0);
                    if self.eat_word("packets") {
                        p = self.number("packets")?;
                    }
                    if self.eat_word("bytes") {
                        b = self.number("bytes")?;
                    }
                    elem.counter = Some((p, b));
                }
                _ => return Ok(()),
            }
        }
    }
}

/// Stateful statements sets and elements carry besides `counter`.
pub(super) fn is_set_stmt(w: &str, next: Option<&Token>) -> bool {
    matches!(w, "limit" | "quota" | "last")
        || (w == "ct" && next.is_some_and(|t| t.is_word("count")))
}

/// `counter packets P bytes B` as a statement.
pub(super) fn counter_stmt(span: Span, p: u64, b: u64) -> Stmt {
    let w = |s: String| Arg::Word(s, span);
    Stmt::Keyword {
        name: "counter".into(),
        args: vec![
            w("packets".into()),
            w(p.to_string()),
            w("bytes".into()),
            w(b.to_string()),
        ],
        span,
    }
}

/// Option words of keyword statements that are followed by a value.
pub(super) fn takes_value(w: &str) -> bool {
    matches!(
        w,
        "prefix"
            | "group"
            | "snaplen"
            | "queue-threshold"
            | "level"
            | "packets"
            | "bytes"
            | "name"
            | "num"
            | "mss"
            | "wscale"
            | "burst"
            | "used"
            | "type"
            | "flags"
            | "code"
    )
}
