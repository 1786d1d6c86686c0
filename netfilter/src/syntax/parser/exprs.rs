//! Expressions: selectors, values, binary operations, concatenations,
//! maps, ranges, prefixes and set literals.

use super::{parse_u64, Parser};
use crate::syntax::ast::*;
use crate::syntax::diag::Diagnostic;
use crate::syntax::lexer::Tok;
use crate::syntax::vocab::*;
use crate::syntax::Result as R;

impl Parser {
    /// A full expression: binary operators over concatenations, with an
    /// optional `map` suffix.
    pub(super) fn expr(&mut self) -> R<Expr> {
        let e = self.binop_expr()?;
        if self.eat_word("map") {
            let m = self.map_rhs()?;
            let span = e.span().to(m.span());
            return Ok(Expr::Map(Box::new(e), Box::new(m), span));
        }
        Ok(e)
    }

    pub(super) fn map_rhs(&mut self) -> R<Expr> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::At(_)) => self.primary(),
            Some(Tok::Punct("{")) => self.set_literal(),
            _ => self.unexpected(&["{", "@map"]),
        }
    }

    pub(super) fn binop_expr(&mut self) -> R<Expr> {
        let mut left = self.concat()?;
        loop {
            let op = match self.peek().map(|t| &t.tok) {
                Some(Tok::Punct("&")) => BinOp::And,
                Some(Tok::Punct("|")) => BinOp::Or,
                Some(Tok::Punct("^")) => BinOp::Xor,
                Some(Tok::Punct("<<")) => BinOp::Shl,
                Some(Tok::Punct(">>")) => BinOp::Shr,
                Some(Tok::Word(w)) => match w.as_str() {
                    "and" => BinOp::And,
                    "or" => BinOp::Or,
                    "xor" => BinOp::Xor,
                    "lshift" => BinOp::Shl,
                    "rshift" => BinOp::Shr,
                    _ => break,
                },
                _ => break,
            };
            self.pos += 1;
            let right = self.concat()?;
            let span = left.span().to(right.span());
            left = Expr::Binop(op, Box::new(left), Box::new(right), span);
        }
        Ok(left)
    }

    pub(super) fn concat(&mut self) -> R<Expr> {
        let first = self.primary()?;
        if !self.peek().is_some_and(|t| t.is_punct(".")) {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat_punct(".") {
            parts.push(self.primary()?);
        }
        let span = parts[0].span().to(parts[parts.len() - 1].span());
        Ok(Expr::Concat(parts, span))
    }

    /// A selector, for `typeof`.
    pub(super) fn primary_sel(&mut self) -> R<Expr> {
        let e = self.primary()?;
        match e {
            Expr::Sel(..) => Ok(e),
            _ => Err(Diagnostic::new(
                e.span(),
                "expected an expression such as 'ip saddr'",
            )),
        }
    }

    pub(super) fn primary(&mut self) -> R<Expr> {
        // Borrowed, not cloned: only the word an arm keeps is copied.
        let Some(t) = self.peek() else {
            return self.unexpected(&["expression"]);
        };
        let span = t.span;
        match &t.tok {
            Tok::Punct("(") => {
                self.pos += 1;
                let e = self.expr()?;
                self.expect_punct(")")?;
                Ok(e)
            }
            Tok::Punct("{") => self.set_literal(),
            Tok::Punct("*") => {
                self.pos += 1;
                Ok(Expr::Wildcard(span))
            }
            Tok::At(name) => {
                let name = name.clone();
                self.pos += 1;
                // Raw payload: `@nh,16,8`
                if matches!(name.as_str(), "ll" | "nh" | "th" | "ih")
                    && self.peek().is_some_and(|t| t.is_punct(","))
                {
                    let mut path = vec!["@".to_owned(), name];
                    let mut span = span;
                    while self.eat_punct(",") {
                        let (w, s) = self.word("number")?;
                        span = span.to(s);
                        path.push(w);
                    }
                    return Ok(Expr::Sel(path, span));
                }
                Ok(Expr::SetRef(name, span))
            }
            Tok::Str(s) => {
                let e = Expr::Str(s.clone(), span);
                self.pos += 1;
                Ok(e)
            }
            Tok::Word(w) => {
                if let Some(vocab) = selector_vocab(w) {
                    let next_in_vocab = self.peek_at(1).and_then(|t| t.word()).is_some_and(|n| {
                        vocab.contains(&n) || (w == "srh" && n.starts_with("sid["))
                    });
                    let is_hash = matches!(w.as_str(), "jhash");
                    if next_in_vocab
                        || (vocab.is_empty() && META_SHORT.contains(&w.as_str()))
                        || is_hash
                    {
                        return self.selector();
                    }
                }
                if w == "jhash" {
                    return self.selector();
                }
                let (w, span) = self.take_word("expression")?;
                Ok(Expr::Word(w, span))
            }
            _ => self.unexpected(&["expression"]),
        }
    }

    /// A keyword path, e.g. `ct original saddr`, `tcp option maxseg size`,
    /// `numgen inc mod 2 offset 100`, `jhash ip saddr mod 2 seed 0x1`.
    pub(super) fn selector(&mut self) -> R<Expr> {
        let (head, mut span) = self.take_word("expression")?;
        if head == "jhash" {
            let mut path = vec![head];
            let e = self.concat()?;
            while let Some(k) = self
                .peek_word()
                .filter(|w| matches!(*w, "mod" | "seed" | "offset"))
            {
                path.push(k.to_owned());
                self.pos += 1;
                let (n, s) = self.word("number")?;
                span = span.to(s);
                path.push(n);
            }
            return Ok(Expr::Map(
                Box::new(Expr::Sel(path, span)),
                Box::new(e),
                span,
            ));
        }
        let vocab = selector_vocab(&head).unwrap_or(&[]);
        // The head's rules, read before it moves into the path.
        let (ct, arp, tcp, icmp, fib, osf, srh) = (
            head == "ct",
            head == "arp",
            head == "tcp",
            matches!(head.as_str(), "icmp" | "icmpv6"),
            head == "fib",
            head == "osf",
            head == "srh",
        );
        let mut path = Vec::with_capacity(2);
        path.push(head);
        while let Some(w) = self.peek_word() {
            // The vocabulary's own word (`srh sid[N]` aside), to decide
            // without holding the token.
            let w: &'static str = match vocab.iter().copied().find(|v| *v == w) {
                Some(v) => v,
                None if srh && w.starts_with("sid[") && w.ends_with(']') => "sid[]",
                None => break,
            };
            // `ct direction original`: a direction only right after `ct`.
            if ct && path.len() > 1 && matches!(w, "original" | "reply") {
                break;
            }
            // `arp saddr ip`, but `arp ptype ip` compares with `ip`.
            if arp
                && matches!(w, "ip" | "ether")
                && !matches!(path.last().map(String::as_str), Some("saddr" | "daddr"))
            {
                break;
            }
            let takes_num =
                matches!(w, "mod" | "offset" | "level" | "spnum") || (osf && w == "ttl");
            let (option, ip, direction) = (
                w == "option",
                matches!(w, "ip" | "ip6"),
                matches!(w, "original" | "reply"),
            );
            let (word, wspan) = self.take_word("expression")?;
            span = span.to(wspan);
            path.push(word);
            if takes_num {
                let (n, s) = self.word("number")?;
                span = span.to(s);
                path.push(n);
            }
            // `tcp option 6`, `tcp option @255,8,8`: options by number.
            if tcp && option {
                if let Some(raw) = self.tcp_option_number()? {
                    span = span.to(self.prev_span());
                    path.extend(raw);
                    break;
                }
            }
            // ICMP field names double as type names (`parameter-problem`).
            if icmp {
                break;
            }
            // `ct original ip saddr`: `ip` takes one field.
            if ct && ip {
                let (n, s) = self.word("saddr or daddr")?;
                span = span.to(s);
                path.push(n);
                break;
            }
            // One key after the direction: `ct original proto-dst timeout 1m`
            // leaves `timeout` to the element.
            if ct && !direction {
                break;
            }
        }
        // `ip option ra type`/`tcp option sack0 left` are already covered; `fib saddr . iif oif`.
        if fib {
            while self.eat_punct(".") {
                let (n, s) = self.word("fib flag")?;
                span = span.to(s);
                path.push(".".into());
                path.push(n);
            }
            if let Some(w) = self.peek_word().filter(|w| vocab.contains(w)) {
                path.push(w.to_owned());
                self.pos += 1;
            }
        }
        Ok(Expr::Sel(path, span))
    }

    /// After `tcp option`: a kind number (`6`), or raw bits of a kind
    /// (`@255,8,8` = kind 255, bit offset 8, 8 bits) as `@ KIND OFF LEN`.
    pub(super) fn tcp_option_number(&mut self) -> R<Option<Vec<String>>> {
        if let Some(n) = self.peek_word().filter(|w| parse_u64(w).is_some()) {
            let n = n.to_owned();
            self.pos += 1;
            return Ok(Some(vec![n]));
        }
        let Some(Tok::At(kind)) = self.peek().map(|t| t.tok.clone()) else {
            return Ok(None);
        };
        if !self.peek_at(1).is_some_and(|t| t.is_punct(",")) {
            return Ok(None);
        }
        self.pos += 1;
        let mut raw = vec!["@".to_owned(), kind];
        for _ in 0..2 {
            self.expect_punct(",")?;
            raw.push(self.word("a number")?.0);
        }
        Ok(Some(raw))
    }

    /// Right-hand side of a match: a value, list, set, range, prefix,
    /// concatenation or flag combination.
    pub(super) fn rhs(&mut self) -> R<Expr> {
        let first = self.rhs_item()?;
        if !self.peek().is_some_and(|t| t.is_punct(",")) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_punct(",") {
            items.push(self.rhs_item()?);
        }
        let span = items[0].span().to(items[items.len() - 1].span());
        Ok(Expr::List(items, span))
    }

    /// One value with `.`, `|`, `-` and `/` operators.
    pub(super) fn rhs_item(&mut self) -> R<Expr> {
        let mut e = self.rhs_range()?;
        loop {
            if self
                .peek()
                .is_some_and(|t| t.is_punct("|") || t.is_punct("&") || t.is_punct("^"))
            {
                let op = match self.next().map(|t| t.tok) {
                    Some(Tok::Punct("|")) => BinOp::Or,
                    Some(Tok::Punct("&")) => BinOp::And,
                    _ => BinOp::Xor,
                };
                let r = self.rhs_range()?;
                let span = e.span().to(r.span());
                e = Expr::Binop(op, Box::new(e), Box::new(r), span);
            } else if self.peek().is_some_and(|t| t.is_punct(".")) {
                let mut parts = vec![e];
                while self.eat_punct(".") {
                    parts.push(self.rhs_range()?);
                }
                let span = parts[0].span().to(parts[parts.len() - 1].span());
                e = Expr::Concat(parts, span);
            } else {
                return Ok(e);
            }
        }
    }

    pub(super) fn rhs_range(&mut self) -> R<Expr> {
        let a = self.primary()?;
        if self.eat_punct("-") {
            let b = self.primary()?;
            let span = a.span().to(b.span());
            return Ok(Expr::Range(Box::new(a), Box::new(b), span));
        }
        // A `/` not followed by a number is a mask (see `stmt`).
        let prefix = self.peek().is_some_and(|t| t.is_punct("/"))
            && self
                .peek_at(1)
                .and_then(|t| t.word())
                .is_some_and(|w| parse_u64(w).is_some());
        if prefix {
            self.pos += 1;
            let n = self.number("prefix length")?;
            let span = a.span().to(self.prev_span());
            return Ok(Expr::Prefix(
                Box::new(a),
                n.min(u32::MAX as u64) as u32,
                span,
            ));
        }
        Ok(a)
    }

    /// `{ elem [: value] [options], ... }`
    pub(super) fn set_literal(&mut self) -> R<Expr> {
        let start = self.expect_punct("{")?;
        let mut elems = Vec::new();
        loop {
            self.skip_newlines();
            if self.eat_punct("}") {
                break;
            }
            if self.at_end() {
                return self.unexpected(&["}"]);
            }
            let espan = self.here();
            let key = self.rhs_item()?;
            let mut elem = Elem::new(key, espan);
            self.elem_options(&mut elem)?;
            // `25:accept` and `::1: drop` lex as one word with the colon.
            if let Expr::Word(w, ws) = &elem.key {
                let verdict = |v: &str| -> Option<Verdict> {
                    Some(match v {
                        "accept" => Verdict::Accept,
                        "drop" => Verdict::Drop,
                        "continue" => Verdict::Continue,
                        "return" => Verdict::Return,
                        _ => return None,
                    })
                };
                let ws = *ws;
                if let Some((k, v)) = w
                    .rsplit_once(':')
                    .filter(|(k, v)| !k.is_empty() && verdict(v).is_some())
                {
                    let v = verdict(v);
                    elem.key = Expr::Word(k.to_owned(), ws);
                    elem.data = v.map(|v| Expr::Verdict(v, ws));
                } else if let Some(k) = w.strip_suffix(':').filter(|k| !k.is_empty()) {
                    let k = k.to_owned();
                    if let Some(v) = self.verdict()? {
                        elem.key = Expr::Word(k, ws);
                        elem.data = Some(Expr::Verdict(v, self.prev_span()));
                    }
                }
            }
            if elem.data.is_none() && self.eat_punct(":") {
                let data = match self.verdict()? {
                    Some(v) => Expr::Verdict(v, self.prev_span()),
                    None => self.rhs_item()?,
                };
                elem.data = Some(data);
                self.elem_options(&mut elem)?;
            }
            elem.span = espan.to(self.prev_span());
            match elem.key {
                // A set inside a set contributes its elements.
                Expr::Set(inner, _) if elem.data.is_none() => elems.extend(inner),
                _ => elems.push(elem),
            }
            self.skip_newlines();
            if !self.eat_punct(",") {
                self.skip_newlines();
                self.expect_punct("}")?;
                break;
            }
        }
        Ok(Expr::Set(elems, start.to(self.prev_span())))
    }
}
