//! Commands: `add`/`create`/`insert`/`replace`/`delete`/`destroy`/`flush`
//! of tables, chains, rules, sets, maps, elements and objects, table
//! blocks, and the declarations inside them.

use super::stmts::{counter_stmt, is_set_stmt};
use super::{parse_i64, parse_u64, Parser, Sink};
use crate::syntax::ast::*;
use crate::syntax::diag::{Diagnostic, Span};
use crate::syntax::lexer::Tok;
use crate::syntax::vocab::*;
use crate::syntax::Result as R;

impl Parser {
    pub(super) fn command(&mut self, out: &mut dyn Sink) -> R<()> {
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
                if let Some(d) = refusal(&w, span) {
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
            "ruleset" => self.ruleset_command(op, span, out),
            "table" => self.table_command(op, span, out),
            "chain" => self.chain_command(op, span, out),
            "rule" => self.rule_command(op, span, out),
            "set" | "map" => self.set_command(op, obj == "map", span, out),
            "element" => self.element_command(op, span, out),
            "counter" | "quota" | "limit" | "secmark" | "synproxy" | "ct" => {
                self.object_command(op, &obj, span, out)
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

    /// `OP ruleset [FAMILY]`.
    fn ruleset_command(&mut self, op: Op, span: Span, out: &mut dyn Sink) -> R<()> {
        if let Some(f) = self.peek_word().filter(|w| is_family(w)).map(str::to_owned) {
            self.pos += 1;
            out.command(Command {
                op,
                family: f,
                table: String::new(),
                object: Object::Ruleset,
                span,
            });
        } else {
            out.command(Command {
                op,
                family: String::new(),
                table: String::new(),
                object: Object::Ruleset,
                span,
            });
        }
        self.end_of_command()
    }

    /// `OP table FAMILY NAME [{ ... }]`.
    fn table_command(&mut self, op: Op, span: Span, out: &mut dyn Sink) -> R<()> {
        if self.peek_at(1).is_some_and(|t| t.is_punct("{"))
            || self.peek_at(2).is_some_and(|t| t.is_punct("{"))
        {
            self.pos -= 1;
            return self.table_block(op, out);
        }
        let (family, table) = self.family_and_name()?;
        out.command(plain_table(op, family, table, span));
        self.end_of_command()
    }

    /// `OP chain FAMILY TABLE NAME [{ ... }]`, the rules of its block after it.
    fn chain_command(&mut self, op: Op, span: Span, out: &mut dyn Sink) -> R<()> {
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
        let chain = decl.name.clone();
        out.command(Command {
            op,
            family: family.clone(),
            table: table.clone(),
            object: Object::Chain(Box::new(decl)),
            span,
        });
        for rule in rules {
            out.command(Command {
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
        self.end_of_command()
    }

    /// `OP rule FAMILY TABLE CHAIN [index N] STATEMENTS`.
    fn rule_command(&mut self, op: Op, span: Span, out: &mut dyn Sink) -> R<()> {
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
                return Err(handle_refusal(&k, kspan));
            }
            position = Some((k, n));
        }
        if matches!(op, Op::Delete | Op::Destroy | Op::Replace) {
            return Err(handle_refusal("handle", self.here()));
        }
        let rule = self.rule()?;
        out.command(Command {
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

    /// `OP set|map FAMILY TABLE NAME [{ ... }]`.
    fn set_command(&mut self, op: Op, is_map: bool, span: Span, out: &mut dyn Sink) -> R<()> {
        let (family, table) = self.family_and_name()?;
        self.refuse_handle()?;
        let (name, nspan) = self.name("set name")?;
        let mut decl = SetDecl {
            name,
            is_map,
            span: nspan,
            ..Default::default()
        };
        if self.eat_punct("{") {
            self.set_body(&mut decl)?;
        }
        out.command(Command {
            op,
            family,
            table,
            object: Object::Set(Box::new(decl)),
            span,
        });
        self.end_of_command()
    }

    /// `OP element FAMILY TABLE SET { ... }`.
    fn element_command(&mut self, op: Op, span: Span, out: &mut dyn Sink) -> R<()> {
        let (family, table) = self.family_and_name()?;
        let (set, _) = self.name("set name")?;
        let elements = match self.set_literal()? {
            Expr::Set(e, _) => e,
            _ => vec![],
        };
        out.command(Command {
            op,
            family,
            table,
            object: Object::Elements { set, elements },
            span,
        });
        self.end_of_command()
    }

    /// `OP counter|quota|limit|secmark|synproxy|ct KIND FAMILY TABLE NAME ...`.
    fn object_command(&mut self, op: Op, obj: &str, span: Span, out: &mut dyn Sink) -> R<()> {
        let kind = self.object_kind(obj)?;
        let (family, table) = self.family_and_name()?;
        self.refuse_handle()?;
        let mut decl = self.object_decl(kind)?;
        if self.eat_punct("{") {
            self.object_body(&mut decl)?;
        } else {
            while !self.at_separator() {
                decl.args.extend(self.next());
            }
        }
        out.command(Command {
            op,
            family,
            table,
            object: Object::Obj(Box::new(decl)),
            span,
        });
        self.end_of_command()
    }

    /// `delete chain inet t handle 5`: handles are the kernel's.
    pub(super) fn refuse_handle(&self) -> R<()> {
        let number_next = self
            .peek_at(1)
            .and_then(|t| t.word())
            .is_some_and(|w| parse_u64(w).is_some());
        if self.peek_word() == Some("handle") && number_next {
            return Err(handle_refusal("handle", self.here()));
        }
        Ok(())
    }

    /// `[family] name`
    pub(super) fn family_and_name(&mut self) -> R<(String, String)> {
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

    pub(super) fn table_block(&mut self, op: Op, out: &mut dyn Sink) -> R<()> {
        let span = self.here();
        self.word("table")?;
        let (family, table) = self.family_and_name()?;
        // `table inet x` alone: the table, more commands follow.
        if op == Op::Add && self.at_separator() && !self.peek().is_some_and(|t| t.is_punct("}")) {
            out.command(plain_table(op, family, table, span));
            return Ok(());
        }
        self.expect_punct("{")?;
        let stream = !self.late_table_attributes();
        let mut block = Block {
            out,
            head: Some(Command {
                op,
                family: family.clone(),
                table: table.clone(),
                object: Object::Table {
                    flags: vec![],
                    comment: None,
                },
                span,
            }),
            held: Vec::new(),
            stream,
            early: stream,
            rules: Vec::new(),
        };
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
                    if let Some(Object::Table { flags: f, .. }) = block.head_object() {
                        f.extend(flags);
                    }
                }
                "comment" => {
                    let c = self.string("comment")?;
                    if let Some(Object::Table { comment, .. }) = block.head_object() {
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
                    block.declare(mk(Object::Chain(Box::new(decl))));
                    for rule in rules {
                        block.rule(&family, &table, &chain, rule);
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
                    block.declare(mk(Object::Set(Box::new(decl))));
                }
                "counter" | "quota" | "limit" | "secmark" | "synproxy" | "ct" => {
                    let kind = self.object_kind(&w)?;
                    let mut decl = self.object_decl(kind)?;
                    self.expect_punct("{")?;
                    self.object_body(&mut decl)?;
                    block.declare(mk(Object::Obj(Box::new(decl))));
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
        block.end();
        Ok(())
    }

    /// Whether the table block that starts here (after its `{`) sets the
    /// table's flags or comment after declaring something: then its
    /// commands wait for its end, the table's coming first. (Any item
    /// starting with those words counts: a wrong guess only waits.)
    fn late_table_attributes(&self) -> bool {
        if !self.item_attributes {
            return false;
        }
        let (mut depth, mut item_start, mut declared) = (0usize, true, false);
        for t in &self.toks[self.pos..] {
            match &t.tok {
                Tok::Punct("{") => depth += 1,
                Tok::Punct("}") if depth == 0 => return false,
                Tok::Punct("}") => {
                    depth -= 1;
                    item_start = depth == 0;
                    continue;
                }
                Tok::Newline | Tok::Punct(";") if depth == 0 => {
                    item_start = true;
                    continue;
                }
                Tok::Word(w) if depth == 0 && item_start => {
                    if w != "flags" && w != "comment" {
                        declared = true;
                    } else if declared {
                        return true;
                    }
                }
                _ => {}
            }
            item_start = false;
        }
        false
    }

    /// `a, b, c` words.
    pub(super) fn word_list(&mut self) -> R<Vec<String>> {
        let mut v = vec![self.word("a value")?.0];
        while self.eat_punct(",") {
            v.push(self.word("a value")?.0);
        }
        Ok(v)
    }

    pub(super) fn chain_body(&mut self, decl: &mut ChainDecl, rules: &mut Vec<RuleAst>) -> R<()> {
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

    pub(super) fn device_list(&mut self) -> R<Vec<String>> {
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
    pub(super) fn priority(&mut self) -> R<(Option<String>, i64, Span)> {
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

    pub(super) fn set_body(&mut self, decl: &mut SetDecl) -> R<()> {
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

    pub(super) fn map_data_spec(&mut self, typeof_: bool) -> R<KeySpec> {
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

    /// A stateful object's kind: its word, or `ct helper|timeout|expectation`.
    fn object_kind(&mut self, word: &str) -> R<String> {
        Ok(if word == "ct" {
            let (k, _) = self.word("helper, timeout or expectation")?;
            format!("ct {k}")
        } else {
            word.to_owned()
        })
    }

    /// A stateful object's declaration from its name on, body still to come.
    fn object_decl(&mut self, kind: String) -> R<ObjDecl> {
        let (name, span) = self.name("object name")?;
        Ok(ObjDecl {
            kind,
            name,
            args: vec![],
            comment: None,
            span,
        })
    }

    pub(super) fn object_body(&mut self, decl: &mut ObjDecl) -> R<()> {
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
}

/// A table block's commands on their way to the sink, in nft's order: the
/// table, its chains, sets and objects as written, then the rules (which
/// may refer to what is declared further down). A rule goes at once when
/// the sink can take it ([`Sink::early_rule`]); once one must wait, all
/// that follow wait too, so the order the sink sees them in is kept.
struct Block<'s> {
    out: &'s mut dyn Sink,
    /// The table's command, until it is sent.
    head: Option<Command>,
    /// Declarations, when they wait for the block's end.
    held: Vec<Command>,
    /// Declarations go as they come (none waits for the table's flags).
    stream: bool,
    /// Rules go as they come (none has had to wait yet).
    early: bool,
    rules: Vec<Command>,
}

impl Block<'_> {
    fn head_object(&mut self) -> Option<&mut Object> {
        self.head.as_mut().map(|c| &mut c.object)
    }

    fn declare(&mut self, cmd: Command) {
        if !self.stream {
            self.held.push(cmd);
            return;
        }
        if let Some(h) = self.head.take() {
            self.out.command(h);
        }
        self.out.command(cmd);
    }

    /// A rule of `chain`, as `add rule FAMILY TABLE CHAIN …` would add it.
    fn rule(&mut self, family: &str, table: &str, chain: &str, rule: RuleAst) {
        let waiting = if self.early {
            self.out.early_rule(family, table, chain, rule)
        } else {
            Some(rule)
        };
        if let Some(rule) = waiting {
            self.early = false;
            self.rules.push(Command {
                op: Op::Add,
                family: family.to_owned(),
                table: table.to_owned(),
                span: rule.span,
                object: Object::Rule {
                    chain: chain.to_owned(),
                    position: None,
                    rule,
                },
            });
        }
    }

    fn end(self) {
        let Block {
            out,
            head,
            held,
            rules,
            ..
        } = self;
        out.commands(&mut head.into_iter().chain(held));
        out.block_end();
        out.commands(&mut rules.into_iter());
    }
}

/// `OP table FAMILY NAME` with no flags or comment.
fn plain_table(op: Op, family: String, table: String, span: Span) -> Command {
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

/// Why a command word that nft knows has no place in a desired state,
/// and what to write instead; `None` for other words.
pub fn refusal(word: &str, span: Span) -> Option<Diagnostic> {
    let (why, help) = match word {
        "list" | "monitor" | "describe" | "export" | "import" => (
            format!("`{word}` reads or watches the ruleset; it declares nothing"),
            "a file given to Linx declares the desired ruleset: remove this command \
             (`linx-agent pull` lists what a namespace holds)"
                .to_owned(),
        ),
        "reset" => (
            "`reset` zeroes counters and quotas in the kernel; it declares nothing".to_owned(),
            "remove it: an apply keeps counters and quotas of unchanged rules, and a \
             changed rule or object starts from the values the file gives"
                .to_owned(),
        ),
        "rename" => (
            "`rename` applies only to a chain the kernel already holds".to_owned(),
            "declare the chain under its new name".to_owned(),
        ),
        _ => return None,
    };
    Some(Diagnostic::new(span, why).help(help))
}

/// `handle N` / `position N` (and `delete rule`, `replace rule`, which
/// need a handle): handles are the kernel's.
pub fn handle_refusal(kind: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        span,
        format!("rule and object handles are chosen by the kernel: a file cannot name one (`{kind}`)"),
    )
    .help(
        "write the rules in the order wanted (`insert rule`/`add rule … index N` count the file's own rules); \
         to remove rules, leave them out or `flush chain` and declare the rest",
    )
}
