//! Recursive-descent parser: tokens → [`Script`]. Table blocks and flat
//! commands produce the same commands; `define`d variables are expanded
//! as tokens before parsing.

use super::ast::*;
use super::diag::{Diagnostic, Span};
use super::expand::{expand, Sources};
use super::include::Includes;
use super::lexer::{lex, Tok, Token};
use super::vocab::*;

/// Parses a whole nft script (no `include`: see [`super::compile_source`]).
pub fn parse_script(src: &str) -> Result<Script, Diagnostic> {
    let mut sources = Sources::new(None, src);
    parse_tokens(expand(lex(src)?, &mut sources, &Includes::Refuse)?)
}

/// Parses a script's tokens, includes and variables already expanded.
pub fn parse_tokens(toks: Vec<Token>) -> Result<Script, Diagnostic> {
    let mut p = Parser { toks, pos: 0 };
    let mut script = Script::default();
    loop {
        p.skip_separators();
        if p.at_end() {
            break;
        }
        p.command(&mut script.commands)?;
    }
    Ok(script)
}

/// Parses one rule's statements (no `add rule` prefix).
pub fn parse_rule(src: &str) -> Result<RuleAst, Diagnostic> {
    let mut sources = Sources::new(None, src);
    let toks = expand(lex(src)?, &mut sources, &Includes::Refuse)?;
    let mut p = Parser { toks, pos: 0 };
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

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

type R<T> = Result<T, Diagnostic>;

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }
    fn peek_at(&self, n: usize) -> Option<&Token> {
        self.toks.get(self.pos + n)
    }
    fn peek_word(&self) -> Option<&str> {
        self.peek().and_then(|t| t.word())
    }
    fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }
    fn here(&self) -> Span {
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
    fn unexpected<T>(&self, expected: &[&str]) -> R<T> {
        let what = self
            .peek()
            .map(|t| t.describe())
            .unwrap_or_else(|| "end of input".into());
        Err(Diagnostic::new(self.here(), format!("unexpected {what}")).expected(expected))
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn eat_punct(&mut self, p: &str) -> bool {
        if self.peek().is_some_and(|t| t.is_punct(p)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_word(&mut self, w: &str) -> bool {
        if self.peek().is_some_and(|t| t.is_word(w)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_punct(&mut self, p: &str) -> R<Span> {
        let s = self.here();
        if self.eat_punct(p) {
            Ok(s)
        } else {
            self.unexpected(&[p])
        }
    }
    fn word(&mut self, what: &str) -> R<(String, Span)> {
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
    /// A name of a table, chain, set or object: a bare word (nft 1.0.6
    /// refuses quoted names there).
    fn name(&mut self, what: &str) -> R<(String, Span)> {
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
    fn string(&mut self, what: &str) -> R<String> {
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
    fn number(&mut self, what: &str) -> R<u64> {
        let (w, span) = self.word(what)?;
        parse_u64(&w).ok_or_else(|| Diagnostic::new(span, format!("expected {what}, got '{w}'")))
    }
    fn at_separator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(t) => t.tok == Tok::Newline || t.is_punct(";") || t.is_punct("}"),
        }
    }
    fn skip_separators(&mut self) {
        while self
            .peek()
            .is_some_and(|t| t.tok == Tok::Newline || t.is_punct(";"))
        {
            self.pos += 1;
        }
    }
    fn skip_newlines(&mut self) {
        while self.peek().is_some_and(|t| t.tok == Tok::Newline) {
            self.pos += 1;
        }
    }
    /// Skips to the next item of a `{ ... }` block; false once it closed.
    fn next_block_item(&mut self) -> R<bool> {
        self.skip_separators();
        if self.eat_punct("}") {
            return Ok(false);
        }
        if self.at_end() {
            return self.unexpected(&["}"]);
        }
        Ok(true)
    }
    fn end_of_command(&mut self) -> R<()> {
        if self.at_separator() {
            Ok(())
        } else {
            self.unexpected(&["end of command"])
        }
    }

    // ---- commands -------------------------------------------------------

    fn command(&mut self, out: &mut Vec<Command>) -> R<()> {
        let (w, span) = self.word("command")?;
        let op = match w.as_str() {
            "add" => Op::Add,
            "create" => Op::Create,
            "insert" => Op::Insert,
            "replace" => Op::Replace,
            "delete" => Op::Delete,
            "destroy" => Op::Destroy,
            "flush" => Op::Flush,
            "table" => {
                self.pos -= 1;
                return self.table_block(Op::Add, out);
            }
            // `chain inet t c`, `set ...`: `add` may be left out.
            "chain" | "rule" | "set" | "map" | "element" | "counter" | "quota" | "limit"
            | "secmark" | "synproxy" | "ct" | "flowtable" => {
                self.pos -= 1;
                Op::Add
            }
            _ => {
                if let Some(d) = super::refuse::refusal(&w, span) {
                    return Err(d);
                }
                return Err(Diagnostic::new(span, format!("unknown command '{w}'"))
                    .expected(&[
                        "table", "add", "create", "insert", "replace", "delete", "destroy",
                        "flush", "define", "include",
                    ])
                    .suggest(&w, COMMANDS.iter().copied()));
            }
        };
        let (obj, ospan) = self.word("object")?;
        match obj.as_str() {
            "ruleset" => {
                if let Some(f) = self.peek_word().filter(|w| is_family(w)).map(str::to_owned) {
                    self.pos += 1;
                    out.push(Command {
                        op,
                        family: f,
                        table: String::new(),
                        object: Object::Ruleset,
                        span,
                    });
                } else {
                    out.push(Command {
                        op,
                        family: String::new(),
                        table: String::new(),
                        object: Object::Ruleset,
                        span,
                    });
                }
                self.end_of_command()
            }
            "table" => {
                if self.peek_at(1).is_some_and(|t| t.is_punct("{"))
                    || self.peek_at(2).is_some_and(|t| t.is_punct("{"))
                {
                    self.pos -= 1;
                    return self.table_block(op, out);
                }
                let (family, table) = self.family_and_name()?;
                out.push(table_command(op, family, table, span));
                self.end_of_command()
            }
            "chain" => {
                let (family, table) = self.family_and_name()?;
                self.refuse_handle()?;
                let (name, nspan) = self.name("chain name")?;
                let mut decl = ChainDecl {
                    name,
                    span: nspan,
                    ..Default::default()
                };
                let mut rules = Vec::new();
                if self.eat_punct("{") {
                    self.chain_body(&mut decl, &mut rules)?;
                }
                out.push(Command {
                    op,
                    family: family.clone(),
                    table: table.clone(),
                    object: Object::Chain(decl.clone()),
                    span,
                });
                for rule in rules {
                    out.push(Command {
                        op: Op::Add,
                        family: family.clone(),
                        table: table.clone(),
                        object: Object::Rule {
                            chain: decl.name.clone(),
                            position: None,
                            rule: rule.clone(),
                        },
                        span: rule.span,
                    });
                }
                self.end_of_command()
            }
            "rule" => {
                let (family, table) = self.family_and_name()?;
                let (chain, _) = self.name("chain name")?;
                let mut position = None;
                if let Some(k) = self
                    .peek_word()
                    .filter(|w| matches!(*w, "handle" | "position" | "index"))
                {
                    let k = k.to_owned();
                    let kspan = self.here();
                    self.pos += 1;
                    let n = self.number("a number")?;
                    if k != "index" {
                        return Err(super::refuse::handle_refusal(&k, kspan));
                    }
                    position = Some((k, n));
                }
                if matches!(op, Op::Delete | Op::Destroy | Op::Replace) {
                    return Err(super::refuse::handle_refusal("handle", self.here()));
                }
                let rule = self.rule()?;
                out.push(Command {
                    op,
                    family,
                    table,
                    object: Object::Rule {
                        chain,
                        position,
                        rule,
                    },
                    span,
                });
                self.end_of_command()
            }
            "set" | "map" => {
                let (family, table) = self.family_and_name()?;
                self.refuse_handle()?;
                let (name, nspan) = self.name("set name")?;
                let mut decl = SetDecl {
                    name,
                    is_map: obj == "map",
                    span: nspan,
                    ..Default::default()
                };
                if self.eat_punct("{") {
                    self.set_body(&mut decl)?;
                }
                out.push(Command {
                    op,
                    family,
                    table,
                    object: Object::Set(decl),
                    span,
                });
                self.end_of_command()
            }
            "element" => {
                let (family, table) = self.family_and_name()?;
                let (set, _) = self.name("set name")?;
                let elements = match self.set_literal()? {
                    Expr::Set(e, _) => e,
                    _ => vec![],
                };
                out.push(Command {
                    op,
                    family,
                    table,
                    object: Object::Elements { set, elements },
                    span,
                });
                self.end_of_command()
            }
            "counter" | "quota" | "limit" | "secmark" | "synproxy" | "ct" => {
                let kind = if obj == "ct" {
                    let (k, _) = self.word("helper, timeout or expectation")?;
                    format!("ct {k}")
                } else {
                    obj.clone()
                };
                let (family, table) = self.family_and_name()?;
                self.refuse_handle()?;
                let (name, nspan) = self.name("object name")?;
                let mut decl = ObjDecl {
                    kind,
                    name,
                    args: vec![],
                    comment: None,
                    span: nspan,
                };
                if self.eat_punct("{") {
                    self.object_body(&mut decl)?;
                } else {
                    while !self.at_separator() {
                        decl.args.extend(self.next());
                    }
                }
                out.push(Command {
                    op,
                    family,
                    table,
                    object: Object::Obj(decl),
                    span,
                });
                self.end_of_command()
            }
            "flowtable" => Err(Diagnostic::new(ospan, "flowtables are not supported")),
            _ => Err(
                Diagnostic::new(ospan, format!("unknown object '{obj}'")).expected(&[
                    "table", "chain", "rule", "set", "map", "element", "counter", "quota", "limit",
                    "ct",
                ]),
            ),
        }
    }

    /// `delete chain inet t handle 5`: handles are the kernel's.
    fn refuse_handle(&self) -> R<()> {
        let number_next = self
            .peek_at(1)
            .and_then(|t| t.word())
            .is_some_and(|w| parse_u64(w).is_some());
        if self.peek_word() == Some("handle") && number_next {
            return Err(super::refuse::handle_refusal("handle", self.here()));
        }
        Ok(())
    }

    /// `[family] name`
    fn family_and_name(&mut self) -> R<(String, String)> {
        let first = self.name("table name")?;
        if is_family(&first.0)
            && self
                .peek()
                .is_some_and(|t| matches!(t.tok, Tok::Word(_) | Tok::Str(_)))
        {
            let (name, _) = self.name("table name")?;
            Ok((first.0, name))
        } else {
            Ok(("ip".into(), first.0))
        }
    }

    fn table_block(&mut self, op: Op, out: &mut Vec<Command>) -> R<()> {
        let span = self.here();
        self.word("table")?;
        let (family, table) = self.family_and_name()?;
        // `table inet x` alone: the table, more commands follow.
        if op == Op::Add && self.at_separator() && !self.peek().is_some_and(|t| t.is_punct("}")) {
            out.push(table_command(op, family, table, span));
            return Ok(());
        }
        self.expect_punct("{")?;
        let idx = out.len();
        out.push(Command {
            op,
            family: family.clone(),
            table: table.clone(),
            object: Object::Table {
                flags: vec![],
                comment: None,
            },
            span,
        });
        let mut pending_rules = Vec::new();
        while self.next_block_item()? {
            let (w, wspan) = self.word("table item")?;
            let mk = |object| Command {
                op: Op::Add,
                family: family.clone(),
                table: table.clone(),
                object,
                span: wspan,
            };
            match w.as_str() {
                "flags" => {
                    let flags = self.word_list()?;
                    if let Object::Table { flags: f, .. } = &mut out[idx].object {
                        f.extend(flags);
                    }
                }
                "comment" => {
                    let c = self.string("comment")?;
                    if let Object::Table { comment, .. } = &mut out[idx].object {
                        *comment = Some(c);
                    }
                }
                "chain" => {
                    let (name, nspan) = self.name("chain name")?;
                    let mut decl = ChainDecl {
                        name,
                        span: nspan,
                        ..Default::default()
                    };
                    self.expect_punct("{")?;
                    let mut rules = Vec::new();
                    self.chain_body(&mut decl, &mut rules)?;
                    let chain = decl.name.clone();
                    out.push(mk(Object::Chain(decl)));
                    for rule in rules {
                        pending_rules.push(Command {
                            op: Op::Add,
                            family: family.clone(),
                            table: table.clone(),
                            span: rule.span,
                            object: Object::Rule {
                                chain: chain.clone(),
                                position: None,
                                rule,
                            },
                        });
                    }
                }
                "set" | "map" => {
                    let (name, nspan) = self.name("set name")?;
                    let mut decl = SetDecl {
                        name,
                        is_map: w == "map",
                        span: nspan,
                        ..Default::default()
                    };
                    self.expect_punct("{")?;
                    self.set_body(&mut decl)?;
                    out.push(mk(Object::Set(decl)));
                }
                "counter" | "quota" | "limit" | "secmark" | "synproxy" | "ct" => {
                    let kind = if w == "ct" {
                        let (k, _) = self.word("helper, timeout or expectation")?;
                        format!("ct {k}")
                    } else {
                        w.clone()
                    };
                    let (name, nspan) = self.name("object name")?;
                    let mut decl = ObjDecl {
                        kind,
                        name,
                        args: vec![],
                        comment: None,
                        span: nspan,
                    };
                    self.expect_punct("{")?;
                    self.object_body(&mut decl)?;
                    out.push(mk(Object::Obj(decl)));
                }
                "flowtable" => return Err(Diagnostic::new(wspan, "flowtables are not supported")),
                _ => {
                    return Err(Diagnostic::new(wspan, format!("unexpected '{w}' in table"))
                        .expected(&[
                            "chain", "set", "map", "flags", "comment", "counter", "quota", "limit",
                            "ct",
                        ]))
                }
            }
        }
        // Rules come after every chain and set of the block, as they may refer to them.
        out.extend(pending_rules);
        Ok(())
    }

    /// `a, b, c` words.
    fn word_list(&mut self) -> R<Vec<String>> {
        let mut v = vec![self.word("a value")?.0];
        while self.eat_punct(",") {
            v.push(self.word("a value")?.0);
        }
        Ok(v)
    }

    fn chain_body(&mut self, decl: &mut ChainDecl, rules: &mut Vec<RuleAst>) -> R<()> {
        while self.next_block_item()? {
            match self.peek_word() {
                Some("type") if self.peek_at(2).is_some_and(|t| t.is_word("hook")) => {
                    self.pos += 1;
                    decl.chain_type = Some(self.word("chain type")?.0);
                    self.word("hook")?;
                    decl.hook = Some(self.word("hook name")?.0);
                    loop {
                        if self.eat_word("device") {
                            decl.devices.push(self.string("device name")?);
                        } else if self.eat_word("devices") {
                            self.expect_punct("=")?;
                            decl.devices.extend(self.device_list()?);
                        } else {
                            break;
                        }
                    }
                    self.word("priority")?;
                    decl.priority = Some(self.priority()?);
                }
                Some("policy") => {
                    self.pos += 1;
                    decl.policy = Some(self.word("accept or drop")?.0);
                }
                Some("comment")
                    if self
                        .peek_at(1)
                        .is_some_and(|t| matches!(t.tok, Tok::Str(_)))
                        && self.peek_at(2).is_none_or(|t| {
                            t.tok == Tok::Newline || t.is_punct(";") || t.is_punct("}")
                        }) =>
                {
                    self.pos += 1;
                    decl.comment = Some(self.string("comment")?);
                }
                Some("devices") => {
                    self.pos += 1;
                    self.expect_punct("=")?;
                    decl.devices.extend(self.device_list()?);
                }
                _ => rules.push(self.rule()?),
            }
        }
        Ok(())
    }

    fn device_list(&mut self) -> R<Vec<String>> {
        if self.eat_punct("{") {
            let mut v = Vec::new();
            loop {
                self.skip_newlines();
                if self.eat_punct("}") {
                    return Ok(v);
                }
                v.push(self.string("device name")?);
                self.skip_newlines();
                if !self.eat_punct(",") {
                    self.skip_newlines();
                    self.expect_punct("}")?;
                    return Ok(v);
                }
            }
        }
        Ok(vec![self.string("device name")?])
    }

    /// `0`, `-150`, `filter`, `filter + 10`, `dstnat - 5`
    fn priority(&mut self) -> R<(Option<String>, i64, Span)> {
        let span = self.here();
        let neg = self.eat_punct("-");
        let (w, wspan) = self.word("priority")?;
        if let Some(n) = parse_i64(&w) {
            return Ok((None, if neg { -n } else { n }, span));
        }
        // `filter-10` lexes as one word.
        if let Some((name, off)) = w
            .split_once(['+', '-'])
            .filter(|(_, o)| parse_i64(o).is_some())
        {
            let off = parse_i64(off).unwrap_or(0);
            let sign = if w.as_bytes()[name.len()] == b'-' {
                -1
            } else {
                1
            };
            return Ok((Some(name.to_owned()), sign * off, wspan));
        }
        let mut off = 0;
        if self
            .peek()
            .is_some_and(|t| t.is_punct("+") || t.is_punct("-"))
        {
            let minus = self.eat_punct("-");
            if !minus {
                self.pos += 1;
            }
            let n = self.number("priority offset")? as i64;
            off = if minus { -n } else { n };
        }
        Ok((Some(w), off, wspan))
    }

    fn set_body(&mut self, decl: &mut SetDecl) -> R<()> {
        loop {
            self.skip_separators();
            if self.eat_punct("}") {
                return Ok(());
            }
            let (w, wspan) = self.word("set property")?;
            match w.as_str() {
                "type" => {
                    let mut key = vec![self.word("type name")?.0];
                    while self.eat_punct(".") {
                        key.push(self.word("type name")?.0);
                    }
                    decl.key = KeySpec::Types(key);
                    if self.eat_punct(":") {
                        decl.data_interval = self.eat_word("interval");
                        decl.data = Some(self.map_data_spec(false)?);
                    }
                }
                "typeof" => {
                    let mut key = vec![self.primary_sel()?];
                    while self.eat_punct(".") {
                        key.push(self.primary_sel()?);
                    }
                    decl.key = KeySpec::Typeof(key);
                    if self.eat_punct(":") {
                        decl.data_interval = self.eat_word("interval");
                        decl.data = Some(self.map_data_spec(true)?);
                    }
                }
                "flags" => decl.flags = self.word_list()?,
                "timeout" => decl.timeout = Some(self.word("timeout")?.0),
                "gc-interval" => decl.gc_interval = Some(self.word("interval")?.0),
                "size" => decl.size = Some(self.number("size")?),
                "policy" => decl.policy = Some(self.word("performance or memory")?.0),
                "comment" => decl.comment = Some(self.string("comment")?),
                "counter" if decl.stmts.is_empty() => decl.counter = true,
                "counter" => {
                    self.pos -= 1;
                    decl.stmts.push(self.set_stmt()?);
                }
                w if is_set_stmt(w, self.peek()) => {
                    if std::mem::take(&mut decl.counter) {
                        decl.stmts.push(counter_stmt(wspan, 0, 0));
                    }
                    self.pos -= 1;
                    decl.stmts.push(self.set_stmt()?);
                }
                "auto-merge" => decl.auto_merge = true,
                "elements" => {
                    self.expect_punct("=")?;
                    match self.set_literal()? {
                        Expr::Set(e, _) => decl.elements = e,
                        _ => return Err(Diagnostic::new(wspan, "expected { elements }")),
                    }
                }
                _ => {
                    return Err(
                        Diagnostic::new(wspan, format!("unknown set property '{w}'")).expected(&[
                            "type", "typeof", "flags", "timeout", "size", "policy", "comment",
                            "elements", "counter",
                        ]),
                    )
                }
            }
        }
    }

    fn map_data_spec(&mut self, typeof_: bool) -> R<KeySpec> {
        if let Some(w) = self.peek_word() {
            if matches!(w, "counter" | "quota" | "limit" | "secmark" | "synproxy") {
                let w = w.to_owned();
                self.pos += 1;
                return Ok(KeySpec::Object(w));
            }
            if w == "ct"
                && self.peek_at(1).is_some_and(|t| {
                    t.is_word("helper") || t.is_word("timeout") || t.is_word("expectation")
                })
                && self
                    .peek_at(2)
                    .is_none_or(|t| !matches!(t.tok, Tok::Word(_)))
            {
                self.pos += 1;
                let k = self.word("ct object")?.0;
                return Ok(KeySpec::Object(format!("ct {k}")));
            }
        }
        if typeof_ && self.peek_word().is_none_or(|w| w != "verdict") {
            let mut v = vec![self.primary_sel()?];
            while self.eat_punct(".") {
                v.push(self.primary_sel()?);
            }
            Ok(KeySpec::Typeof(v))
        } else {
            let mut v = vec![self.word("type name")?.0];
            while self.eat_punct(".") {
                v.push(self.word("type name")?.0);
            }
            Ok(KeySpec::Types(v))
        }
    }

    fn object_body(&mut self, decl: &mut ObjDecl) -> R<()> {
        let mut depth = 0;
        loop {
            let Some(t) = self.next() else {
                return self.unexpected(&["}"]);
            };
            if t.is_punct("{") {
                depth += 1;
            } else if t.is_punct("}") {
                if depth == 0 {
                    return Ok(());
                }
                depth -= 1;
            } else if depth == 0
                && t.is_word("comment")
                && self.peek().is_some_and(|t| matches!(t.tok, Tok::Str(_)))
            {
                decl.comment = Some(self.string("comment")?);
                continue;
            }
            decl.args.push(t);
        }
    }

    // ---- rules ----------------------------------------------------------

    fn rule(&mut self) -> R<RuleAst> {
        let span = self.here();
        let mut stmts = Vec::new();
        let mut comment = None;
        while !self.at_separator() {
            if self.peek_word() == Some("comment") {
                self.pos += 1;
                comment = Some(self.string("comment")?);
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

    fn stmt(&mut self) -> R<Stmt> {
        let span = self.here();
        if let Some(w) = self.peek_word().map(str::to_owned) {
            let w = w.as_str();
            if matches!(w, "jump" | "goto") && self.peek_at(1).is_some_and(|t| t.is_punct("{")) {
                return self.bound_chain(w == "goto", span);
            }
            if let Some(v) = self.verdict()? {
                return Ok(Stmt::Verdict(v, span));
            }
            if STMT_KEYWORDS.contains(&w) {
                return self.keyword_stmt();
            }
            if matches!(w, "add" | "update" | "delete")
                && self.peek_at(1).is_some_and(|t| matches!(t.tok, Tok::At(_)))
            {
                let op = w.to_owned();
                self.pos += 1;
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
                return Ok(Stmt::SetOp {
                    op,
                    set,
                    key,
                    data,
                    stmts,
                    span: span.to(self.prev_span()),
                });
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
    fn known_statement_start(&self) -> R<()> {
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
                Err(match super::suggest::closest(n, vocab.iter().copied()) {
                    Some(s) => d.help(format!("did you mean '{s}'?")),
                    None if vocab.len() <= 12 => {
                        d.help(format!("after '{w}': {}", vocab.join(", ")))
                    }
                    None => d,
                })
            }
            _ => Ok(()),
        }
    }

    /// `jump { rules }`: an anonymous chain bound to this rule.
    fn bound_chain(&mut self, goto: bool, span: Span) -> R<Stmt> {
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

    fn prev_span(&self) -> Span {
        self.toks
            .get(self.pos.saturating_sub(1))
            .map(|t| t.span)
            .unwrap_or_default()
    }

    fn at_stmt_boundary(&self) -> bool {
        self.at_separator() || self.peek_word().is_some_and(|w| STMT_KEYWORDS.contains(&w))
    }

    fn relop(&mut self) -> RelOp {
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

    fn verdict(&mut self) -> R<Option<Verdict>> {
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
    fn split_addr_selector(&mut self) -> Option<Expr> {
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
    fn keyword_stmt(&mut self) -> R<Stmt> {
        let (name, span) = self.word("statement")?;
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
            let t = match self.peek() {
                Some(t) => t.clone(),
                None => break,
            };
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
                    self.pos += 1;
                    let is_to =
                        matches!(w.as_str(), "to" | "device") && !matches!(name.as_str(), "queue");
                    args.push(Arg::Word(w.clone(), t.span));
                    // `counter name tcp dport map {...}`: an object map key.
                    if w == "name"
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
                    if is_to || (w == "map" && name != "limit") {
                        args.push(Arg::Expr(self.expr()?));
                    }
                }
                Tok::Str(s) => {
                    self.pos += 1;
                    args.push(Arg::Str(s.clone(), t.span));
                }
                Tok::Punct(p) if matches!(*p, "," | "/" | ":" | "-" | "|") => {
                    self.pos += 1;
                    args.push(Arg::Punct(p, t.span));
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

    // ---- expressions ----------------------------------------------------

    /// A full expression: binary operators over concatenations, with an
    /// optional `map` suffix.
    fn expr(&mut self) -> R<Expr> {
        let e = self.binop_expr()?;
        if self.eat_word("map") {
            let m = self.map_rhs()?;
            let span = e.span().to(m.span());
            return Ok(Expr::Map(Box::new(e), Box::new(m), span));
        }
        Ok(e)
    }

    fn map_rhs(&mut self) -> R<Expr> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::At(_)) => self.primary(),
            Some(Tok::Punct("{")) => self.set_literal(),
            _ => self.unexpected(&["{", "@map"]),
        }
    }

    fn binop_expr(&mut self) -> R<Expr> {
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

    fn concat(&mut self) -> R<Expr> {
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
    fn primary_sel(&mut self) -> R<Expr> {
        let e = self.primary()?;
        match e {
            Expr::Sel(..) => Ok(e),
            _ => Err(Diagnostic::new(
                e.span(),
                "expected an expression such as 'ip saddr'",
            )),
        }
    }

    fn primary(&mut self) -> R<Expr> {
        let Some(t) = self.peek().cloned() else {
            return self.unexpected(&["expression"]);
        };
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
                Ok(Expr::Wildcard(t.span))
            }
            Tok::At(name) => {
                self.pos += 1;
                // Raw payload: `@nh,16,8`
                if matches!(name.as_str(), "ll" | "nh" | "th" | "ih")
                    && self.peek().is_some_and(|t| t.is_punct(","))
                {
                    let mut path = vec!["@".to_owned(), name.clone()];
                    let mut span = t.span;
                    while self.eat_punct(",") {
                        let (w, s) = self.word("number")?;
                        span = span.to(s);
                        path.push(w);
                    }
                    return Ok(Expr::Sel(path, span));
                }
                Ok(Expr::SetRef(name.clone(), t.span))
            }
            Tok::Str(s) => {
                self.pos += 1;
                Ok(Expr::Str(s.clone(), t.span))
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
                self.pos += 1;
                Ok(Expr::Word(w.clone(), t.span))
            }
            _ => self.unexpected(&["expression"]),
        }
    }

    /// A keyword path, e.g. `ct original saddr`, `tcp option maxseg size`,
    /// `numgen inc mod 2 offset 100`, `jhash ip saddr mod 2 seed 0x1`.
    fn selector(&mut self) -> R<Expr> {
        let (head, mut span) = self.word("expression")?;
        let mut path = vec![head.clone()];
        if head == "jhash" {
            let e = self.concat()?;
            let mut args = vec![];
            while let Some(k) = self
                .peek_word()
                .filter(|w| matches!(*w, "mod" | "seed" | "offset"))
            {
                args.push(k.to_owned());
                self.pos += 1;
                let (n, s) = self.word("number")?;
                span = span.to(s);
                args.push(n);
            }
            path.extend(args);
            return Ok(Expr::Map(
                Box::new(Expr::Sel(path, span)),
                Box::new(e),
                span,
            ));
        }
        let vocab = selector_vocab(&head).unwrap_or(&[]);
        while let Some(w) = self.peek_word().map(str::to_owned) {
            let w = w.as_str();
            let srh_sid = head == "srh" && w.starts_with("sid[") && w.ends_with(']');
            if !vocab.contains(&w) && !srh_sid {
                break;
            }
            // `ct direction original`: a direction only right after `ct`.
            if head == "ct" && path.len() > 1 && matches!(w, "original" | "reply") {
                break;
            }
            // `arp saddr ip`, but `arp ptype ip` compares with `ip`.
            if head == "arp"
                && matches!(w, "ip" | "ether")
                && !matches!(path.last().map(String::as_str), Some("saddr" | "daddr"))
            {
                break;
            }
            let takes_num = matches!(w, "mod" | "offset" | "level" | "spnum");
            path.push(w.to_owned());
            span = span.to(self.here());
            self.pos += 1;
            if takes_num || (head == "osf" && w == "ttl") {
                let (n, s) = self.word("number")?;
                span = span.to(s);
                path.push(n);
            }
            // `tcp option 6`, `tcp option @255,8,8`: options by number.
            if head == "tcp" && w == "option" {
                if let Some(raw) = self.tcp_option_number()? {
                    span = span.to(self.prev_span());
                    path.extend(raw);
                    break;
                }
            }
            // ICMP field names double as type names (`parameter-problem`).
            if matches!(head.as_str(), "icmp" | "icmpv6") {
                break;
            }
            // `ct original ip saddr`: `ip` takes one field.
            if head == "ct" && matches!(w, "ip" | "ip6") {
                let (n, s) = self.word("saddr or daddr")?;
                span = span.to(s);
                path.push(n);
                break;
            }
            // One key after the direction: `ct original proto-dst timeout 1m`
            // leaves `timeout` to the element.
            if head == "ct" && !matches!(w, "original" | "reply") {
                break;
            }
        }
        // `ip option ra type`/`tcp option sack0 left` are already covered; `fib saddr . iif oif`.
        if head == "fib" {
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
    fn tcp_option_number(&mut self) -> R<Option<Vec<String>>> {
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
    fn rhs(&mut self) -> R<Expr> {
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
    fn rhs_item(&mut self) -> R<Expr> {
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

    fn rhs_range(&mut self) -> R<Expr> {
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
    fn set_literal(&mut self) -> R<Expr> {
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

    /// A stateful statement of a set or element: its words up to the next
    /// statement, option, `,` or the end of the line or block.
    fn set_stmt(&mut self) -> R<Stmt> {
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

    fn elem_options(&mut self, elem: &mut Elem) -> R<()> {
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

/// `OP table FAMILY NAME` with no flags or comment.
fn table_command(op: Op, family: String, table: String, span: Span) -> Command {
    Command {
        op,
        family,
        table,
        object: Object::Table {
            flags: vec![],
            comment: None,
        },
        span,
    }
}

/// Stateful statements sets and elements carry besides `counter`.
fn is_set_stmt(w: &str, next: Option<&Token>) -> bool {
    matches!(w, "limit" | "quota" | "last")
        || (w == "ct" && next.is_some_and(|t| t.is_word("count")))
}

/// `counter packets P bytes B` as a statement.
fn counter_stmt(span: Span, p: u64, b: u64) -> Stmt {
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
fn takes_value(w: &str) -> bool {
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
    fn table_block_and_flat_commands_give_the_same_commands() {
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
    fn rules_split_into_statements() {
        let r = parse_rule(
            "ip saddr . tcp dport { 10.0.0.1 . 22 } ct state new,established counter accept",
        )
        .unwrap();
        assert_eq!(r.stmts.len(), 4);
        assert!(matches!(&r.stmts[1], Stmt::Match { right: Expr::List(v, _), .. } if v.len() == 2));
        assert!(matches!(&r.stmts[3], Stmt::Verdict(Verdict::Accept, _)));
    }

    #[test]
    fn value_under_mask_and_tcp_options_by_number() {
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
    fn defines_expand_and_include_is_refused() {
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
