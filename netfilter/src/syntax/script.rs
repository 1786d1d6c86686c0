//! A script's desired state: what it leaves in an empty namespace.
//!
//! Commands are evaluated in order, each as nft and the kernel would
//! apply it there, so the usual idioms mean what they mean to `nft -f`:
//! `flush ruleset` at the top; `table inet x` / `delete table inet x` /
//! `table inet x { … }`; `flush table`, `flush chain`, `flush set`;
//! `add element` after a set's declaration; `insert rule`, `add rule …
//! index N`; `delete` and `destroy` of tables, chains, sets, maps,
//! elements and objects. What nft would refuse in an empty namespace is
//! refused with the same meaning: deleting what does not exist, creating
//! what exists, deleting a chain, set or object still referenced, changing
//! a base chain's hook or a set's type.
//!
//! Refused because they have no declarative meaning ([`refusal`]):
//! commands that only read or watch (`list`, `monitor`, `describe`,
//! `export`, `import`), `reset` (zeroes counters and quotas: a reconcile
//! keeps kernel state unless it must not), `rename` (nft renames only
//! chains that already exist in the kernel, so a script cannot rename
//! what it declares), and rule handles (`handle N`, `position N`, `delete
//! rule … handle N`, `replace rule`): handles are chosen by the kernel, so
//! a file that names one means something different in every namespace.
//! `index N` positions are kept: they count the script's own rules.
//!
//! Linx accepts two forms nft 1.0.6 refuses, on purpose: a `}` directly
//! after a rule or block on the same line (nft wants a newline or `;`
//! before it), and `destroy` (nft 1.0.7 syntax: delete if present).

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use super::ast::{self, Command, Object as AObj, Op};
use super::compile::sets::{self, unknown_set};
use super::compile::{self, objects, rule};
use super::diag::{Diagnostic, Span};
use super::parser::{handle_refusal, Sink};
use super::Result as R;
use crate::expr::{Data, Expr};
use crate::model::{Family, Ruleset, Set, Table, Userdata, UDATA_COMMENT};
use crate::sys::*;

/// The ruleset being built, and what is needed to add to it later.
#[derive(Default)]
pub(super) struct State {
    pub(super) rs: Ruleset,
    /// Element layouts of named sets, by (family, table, set).
    layouts: HashMap<(Family, String, String), sets::SetLayout>,
    chains: ChainIndex,
    /// Anonymous sets made so far.
    n: u32,
    /// Bound (anonymous) chains made so far.
    bound: u32,
    /// Every rule added, with where it is written, when asked for
    /// ([`Evaluator::recording`]).
    written: Option<Vec<Written>>,
}

/// A rule as a script adds it, and the place it is written.
pub(super) struct Written {
    pub family: Family,
    pub table: String,
    pub chain: String,
    pub rule: crate::model::Rule,
    pub span: Span,
}

/// Chain positions by name, per table: a script of thousands of chains
/// (kube-proxy's) finds each in constant time. Chains are only appended
/// between deletions, which drop a table's index.
#[derive(Default)]
struct ChainIndex(Vec<(Family, String, FxHashMap<String, usize>)>);

impl ChainIndex {
    fn of(&mut self, t: &Table) -> &FxHashMap<String, usize> {
        // A few tables: found by comparison, without a key to allocate.
        let at = match self
            .0
            .iter()
            .position(|(f, n, _)| *f == t.family && *n == t.name)
        {
            Some(at) => at,
            None => {
                self.0
                    .push((t.family, t.name.clone(), FxHashMap::default()));
                self.0.len() - 1
            }
        };
        let m = &mut self.0[at].2;
        for (i, c) in t.chains.iter().enumerate().skip(m.len()) {
            m.insert(c.name.clone(), i);
        }
        m
    }
    fn position(&mut self, t: &Table, chain: &str) -> Option<usize> {
        self.of(t).get(chain).copied()
    }
    fn forget(&mut self, fam: Family, table: &str) {
        self.0.retain(|(f, n, _)| !(*f == fam && n == table));
    }
}

/// Evaluates `commands` in order; every command's error is collected.
pub fn evaluate(commands: &[Command]) -> Result<Ruleset, Vec<Diagnostic>> {
    let mut e = Evaluator::default();
    for cmd in commands {
        e.apply(cmd);
    }
    e.finish()
}

/// Evaluates commands as the parser completes them ([`Sink`]), so each
/// rule's syntax tree is dropped right after it is compiled.
#[derive(Default)]
pub(super) struct Evaluator {
    st: State,
    errors: Vec<Diagnostic>,
    /// Jumps of rules taken early from a table block, checked at its end
    /// (a chain declared further down in the block counts).
    jumps: Vec<JumpCheck>,
}

/// A rule's jumps to check once its table block's chains are all declared.
struct JumpCheck {
    family: Family,
    table: String,
    targets: Vec<String>,
    span: Span,
    /// Where the rule went (chain, index): a rule in error is taken out,
    /// as if it had been refused when it came.
    at: (usize, usize),
}

impl Evaluator {
    /// An evaluator that also keeps a copy of every rule added, with its
    /// place ([`Evaluator::written`]).
    pub(super) fn recording() -> Self {
        let mut e = Evaluator::default();
        e.st.written = Some(Vec::new());
        e
    }

    /// The rules added, in the order they were (see [`Evaluator::recording`]).
    pub(super) fn written(self) -> Vec<Written> {
        self.st.written.unwrap_or_default()
    }

    fn apply(&mut self, cmd: &Command) {
        if let Err(d) = apply(&mut self.st, cmd, None) {
            self.errors.push(d);
        }
    }

    /// The ruleset the script leaves, or every command's error in order.
    pub(super) fn finish(self) -> Result<Ruleset, Vec<Diagnostic>> {
        if self.errors.is_empty() {
            Ok(self.st.rs)
        } else {
            Err(self.errors)
        }
    }
}

impl Sink for Evaluator {
    fn command(&mut self, cmd: Command) {
        self.apply(&cmd);
    }

    /// A rule compiles the same before the rest of its block is declared
    /// when it compiles at all: what it may refer to (sets, maps) keeps the
    /// type it is first declared with, and a jump to a chain declared
    /// further down is checked at the block's end. A rule that fails (it
    /// refers to a set declared below, or is in error) or binds chains
    /// (named as they are made) waits, and leaves the anonymous set count
    /// as it found it.
    fn early_rule(
        &mut self,
        family: &str,
        table: &str,
        chain: &str,
        rule: ast::RuleAst,
    ) -> Option<ast::RuleAst> {
        let bound = |s: &ast::Stmt| matches!(s, ast::Stmt::Bound { .. });
        let Some(fam) = Family::from_name(family).filter(|_| !rule.stmts.iter().any(bound)) else {
            return Some(rule);
        };
        let n = self.st.n;
        let late = Some(&mut self.jumps);
        match add_rule(
            &mut self.st,
            fam,
            table,
            chain,
            Op::Add,
            None,
            &rule,
            rule.span,
            late,
        ) {
            Ok(()) => None,
            Err(_) => {
                self.st.n = n;
                Some(rule)
            }
        }
    }

    fn block_end(&mut self) {
        let mut refused = Vec::new();
        for j in std::mem::take(&mut self.jumps) {
            let Some(t) = self
                .st
                .rs
                .tables
                .iter()
                .find(|t| t.family == j.family && t.name == j.table)
            else {
                continue;
            };
            let known = self.st.chains.of(t);
            if let Some(c) = j.targets.iter().find(|c| !known.contains_key(*c)) {
                self.errors.push(unknown_chain(t, c, j.span));
                refused.push((j.family, j.table, j.at));
            }
        }
        for (fam, table, (c, i)) in refused.into_iter().rev() {
            if let Some(t) = self
                .st
                .rs
                .tables
                .iter_mut()
                .find(|t| t.family == fam && t.name == table)
            {
                t.chains[c].rules.remove(i);
            }
        }
    }
}

fn family(name: &str, span: Span) -> R<Family> {
    Family::from_name(name).ok_or_else(|| {
        Diagnostic::new(span, format!("unknown family '{name}'"))
            .suggest(name, Family::ALL.iter().map(|f| f.name()))
    })
}

fn table_mut<'a>(rs: &'a mut Ruleset, fam: Family, name: &str, span: Span) -> R<&'a mut Table> {
    if !rs.tables.iter().any(|t| t.family == fam && t.name == name) {
        let names = rs
            .tables
            .iter()
            .filter(|t| t.family == fam)
            .map(|t| t.name.as_str());
        return Err(Diagnostic::new(
            span,
            format!("no table {} {name} (declare it first)", fam.name()),
        )
        .suggest(name, names));
    }
    Ok(rs
        .tables
        .iter_mut()
        .find(|t| t.family == fam && t.name == name)
        .expect("checked above"))
}

/// Applies one command; `late_jumps`, for a rule taken early from a table
/// block, receives its jumps to chains not declared yet instead of failing.
fn apply(st: &mut State, cmd: &Command, late_jumps: Option<&mut Vec<JumpCheck>>) -> R<()> {
    let span = cmd.span;
    if let AObj::Ruleset = cmd.object {
        if cmd.op == Op::Flush {
            match Family::from_name(&cmd.family) {
                Some(f) => st.rs.tables.retain(|t| t.family != f),
                None => st.rs.tables.clear(),
            }
            st.layouts
                .retain(|(f, t, _), _| st.rs.tables.iter().any(|x| x.family == *f && x.name == *t));
            st.chains = ChainIndex::default();
        }
        return Ok(());
    }
    let fam = family(&cmd.family, span)?;
    match cmd.op {
        Op::Delete | Op::Destroy | Op::Flush => return remove(st, fam, cmd),
        Op::Add | Op::Create | Op::Insert | Op::Replace => {}
    }
    if let AObj::Rule {
        chain,
        position,
        rule,
    } = &cmd.object
    {
        let position = position.as_ref().map(|p| p.1);
        return add_rule(
            st, fam, &cmd.table, chain, cmd.op, position, rule, span, late_jumps,
        );
    }
    let State {
        rs,
        layouts,
        chains,
        ..
    } = st;
    match &cmd.object {
        AObj::Table { flags, comment } => {
            let exists = rs
                .tables
                .iter()
                .any(|t| t.family == fam && t.name == cmd.table);
            if exists && cmd.op == Op::Create {
                return Err(exists_error(
                    span,
                    &format!("table {} {}", fam.name(), cmd.table),
                ));
            }
            let mut bits = 0;
            for f in flags {
                bits |= match f.as_str() {
                    "dormant" => NFT_TABLE_F_DORMANT,
                    "owner" => NFT_TABLE_F_OWNER,
                    "persist" => 4,
                    _ => {
                        return Err(Diagnostic::new(span, format!("unknown table flag '{f}'"))
                            .suggest(f, ["dormant", "owner", "persist"]))
                    }
                };
            }
            if !exists {
                let mut t = Table::new(fam, cmd.table.clone());
                if let Some(c) = comment {
                    t.userdata = Some(Userdata::with_comment(UDATA_COMMENT, c));
                }
                rs.tables.push(t);
            }
            // The kernel takes a re-added table's flags as given (none
            // clears `dormant`) and keeps its comment.
            table_mut(rs, fam, &cmd.table, span)?.flags = bits;
            Ok(())
        }
        AObj::Chain(decl) => {
            let chain = compile::chain(fam, decl)?;
            let t = table_mut(rs, fam, &cmd.table, span)?;
            let at = chains.position(t, &chain.name);
            match at.map(|i| &mut t.chains[i]) {
                Some(_) if cmd.op == Op::Create => {
                    Err(exists_error(decl.span, &format!("chain {}", chain.name)))
                }
                Some(c) => {
                    match (&c.hook, &chain.hook) {
                        (_, None) => {}
                        (None, Some(_)) => {
                            return Err(Diagnostic::new(
                                decl.span,
                                format!(
                                "chain {} exists as a regular chain: it cannot become a base chain",
                                chain.name
                            ),
                            )
                            .help("declare it as a base chain where it is first declared"))
                        }
                        (Some(old), Some(new)) => {
                            if old.num != new.num
                                || old.priority != new.priority
                                || c.chain_type != chain.chain_type
                                || (!new.devices.is_empty() && old.devices != new.devices)
                            {
                                return Err(Diagnostic::new(
                                    decl.span,
                                    format!("base chain {}: its type, hook and priority cannot change once declared", chain.name),
                                ));
                            }
                            c.policy = chain.policy;
                        }
                    }
                    Ok(())
                }
                None => {
                    t.chains.push(chain);
                    Ok(())
                }
            }
        }
        AObj::Rule { .. } => unreachable!("rules are added above"),
        AObj::Set(decl) => {
            let t = table_mut(rs, fam, &cmd.table, span)?;
            let (set, layout) = sets::named_set(fam, t, decl)?;
            match t.sets.iter_mut().find(|s| s.name == set.name) {
                Some(_) if cmd.op == Op::Create => Err(exists_error(
                    decl.span,
                    &format!("{} {}", if decl.is_map { "map" } else { "set" }, set.name),
                )),
                Some(old) => {
                    if !same_definition(old, &set) {
                        return Err(exists_error(decl.span, &format!("set {}", set.name))
                            .help("a set's type, flags and data cannot change once declared: delete it first"));
                    }
                    // Only the size of an existing set can change.
                    if let Some(size) = set.desc.as_ref().and_then(|d| d.size) {
                        old.desc.get_or_insert_with(Default::default).size = Some(size);
                    }
                    add_elements(
                        t,
                        layouts,
                        fam,
                        &cmd.table,
                        &set.name,
                        &decl.elements,
                        cmd.op,
                        span,
                    )
                }
                None => {
                    layouts.insert((fam, cmd.table.clone(), set.name.clone()), layout);
                    t.sets.push(set);
                    Ok(())
                }
            }
        }
        AObj::Elements { set, elements } => {
            let t = table_mut(rs, fam, &cmd.table, span)?;
            add_elements(t, layouts, fam, &cmd.table, set, elements, cmd.op, span)?;
            // (A table block may map to chains it declares further down.)
            let s = t.set(set).expect("elements were just added");
            let known = chains.of(t);
            for d in s.elements.iter().filter_map(|e| e.data.as_ref()) {
                if let Some(c) = match d {
                    Data::Verdict(v) => v.chain(),
                    _ => None,
                } {
                    if !known.contains_key(c) {
                        return Err(unknown_chain(t, c, span));
                    }
                }
            }
            Ok(())
        }
        AObj::Obj(decl) => {
            let t = table_mut(rs, fam, &cmd.table, span)?;
            let o = objects::object(fam, decl)?;
            match t
                .objects
                .iter_mut()
                .find(|x| x.name == o.name && x.obj_type == o.obj_type)
            {
                Some(_) if cmd.op == Op::Create => Err(exists_error(
                    decl.span,
                    &format!("{} {}", decl.kind, o.name),
                )),
                Some(x) => {
                    *x = o;
                    Ok(())
                }
                None => {
                    t.objects.push(o);
                    Ok(())
                }
            }
        }
        AObj::Ruleset => Ok(()),
    }
}

/// Adds a rule to `chain` of `table` (see [`apply`] for `late_jumps`).
#[allow(clippy::too_many_arguments)]
fn add_rule(
    st: &mut State,
    fam: Family,
    table: &str,
    chain: &str,
    op: Op,
    position: Option<u64>,
    rule: &ast::RuleAst,
    span: Span,
    late_jumps: Option<&mut Vec<JumpCheck>>,
) -> R<()> {
    let State {
        rs,
        chains,
        n,
        bound,
        written,
        ..
    } = st;
    let t = table_mut(rs, fam, table, span)?;
    let Some(ci) = chains.position(t, chain) else {
        return Err(unknown_chain(t, chain, span));
    };
    let rule = compile::bind_chains(fam, t, rule, n, bound)?;
    let r = rule::compile_rule_ast(fam, t, &rule, n)?;
    let known = chains.of(t);
    match late_jumps {
        None => {
            if let Some(c) = jump_targets(&r).find(|c| !known.contains_key(*c)) {
                return Err(unknown_chain(t, c, span));
            }
        }
        Some(late) => {
            let targets: Vec<String> = jump_targets(&r)
                .filter(|c| !known.contains_key(*c))
                .map(str::to_owned)
                .collect();
            if !targets.is_empty() {
                late.push(JumpCheck {
                    family: fam,
                    table: table.to_owned(),
                    targets,
                    span,
                    at: (ci, t.chains[ci].rules.len()),
                });
            }
        }
    }
    compile::dynamic_sets(t, &r);
    let c = &mut t.chains[ci];
    let at = match (op, position) {
        (Op::Insert, None) => 0,
        (_, None) => c.rules.len(),
        (op, Some(i)) => {
            let i = i as usize;
            if i >= c.rules.len() {
                return Err(Diagnostic::new(
                    span,
                    format!(
                        "chain {chain} has no rule at index {i} (it has {})",
                        c.rules.len()
                    ),
                ));
            }
            if op == Op::Insert {
                i
            } else {
                i + 1
            }
        }
    };
    if let Some(w) = written {
        w.push(Written {
            family: fam,
            table: table.to_owned(),
            chain: chain.to_owned(),
            rule: r.clone(),
            span,
        });
    }
    c.rules.insert(at, r);
    Ok(())
}

/// The chains a rule jumps or goes to, directly or through its maps. Every
/// one must exist already (the kernel checks each message in order, so a
/// chain declared later does not count).
fn jump_targets(r: &crate::model::Rule) -> impl Iterator<Item = &str> {
    let direct = r.exprs.iter().filter_map(|e| match e {
        Expr::Immediate(i) => i.data.as_ref(),
        _ => None,
    });
    let mapped = r
        .sets
        .iter()
        .flat_map(|s| s.elements.iter())
        .filter_map(|e| e.data.as_ref());
    direct.chain(mapped).filter_map(|d| match d {
        Data::Verdict(v) => v.chain(),
        _ => None,
    })
}

fn exists_error(span: Span, what: &str) -> Diagnostic {
    Diagnostic::new(span, format!("{what} exists"))
}

fn unknown_chain(t: &Table, chain: &str, span: Span) -> Diagnostic {
    Diagnostic::new(
        span,
        format!("no chain {chain} in table {} {}", t.family.name(), t.name),
    )
    .suggest(chain, t.chains.iter().map(|c| c.name.as_str()))
}

/// What the kernel refuses to change on an existing set (EEXIST).
fn same_definition(a: &Set, b: &Set) -> bool {
    const FIXED: u32 =
        NFT_SET_INTERVAL | NFT_SET_MAP | NFT_SET_TIMEOUT | NFT_SET_OBJECT | NFT_SET_CONCAT;
    a.key_type == b.key_type
        && a.key_len == b.key_len
        && a.data_type == b.data_type
        && a.data_len == b.data_len
        && a.obj_type == b.obj_type
        && a.flags & FIXED == b.flags & FIXED
}

#[allow(clippy::too_many_arguments)]
fn add_elements(
    t: &mut Table,
    layouts: &mut HashMap<(Family, String, String), sets::SetLayout>,
    fam: Family,
    table: &str,
    set: &str,
    elements: &[ast::Elem],
    op: Op,
    span: Span,
) -> R<()> {
    let layout = layouts
        .get_mut(&(fam, table.to_owned(), set.to_owned()))
        .ok_or_else(|| unknown_set(t, set, span))?;
    let mut s = t.set(set).ok_or_else(|| unknown_set(t, set, span))?.clone();
    if op == Op::Create {
        let mut fresh = s.clone();
        fresh.elements = Default::default();
        let mut probe = layout.clone();
        probe.written.clear();
        sets::add_elements(t, &mut fresh, &mut probe, elements)?;
        if let Some(e) = fresh.elements.iter().find(|e| s.elements.contains(e)) {
            let _ = e;
            return Err(exists_error(span, &format!("an element of set {set}")));
        }
    }
    sets::add_elements(t, &mut s, layout, elements)?;
    if let Some(x) = t.sets.iter_mut().find(|x| x.name == set) {
        *x = s;
    }
    Ok(())
}

/// `delete`, `destroy` (no error when absent) and `flush`.
fn remove(st: &mut State, fam: Family, cmd: &Command) -> R<()> {
    let span = cmd.span;
    let must = cmd.op == Op::Delete;
    let exists = st
        .rs
        .tables
        .iter()
        .any(|t| t.family == fam && t.name == cmd.table);
    if !exists && cmd.op == Op::Destroy {
        return Ok(());
    }
    if let AObj::Table { .. } = &cmd.object {
        if cmd.op == Op::Flush {
            let t = table_mut(&mut st.rs, fam, &cmd.table, span)?;
            t.chains.iter_mut().for_each(|c| c.rules.clear());
            return Ok(());
        }
        if !exists {
            return Err(table_mut(&mut st.rs, fam, &cmd.table, span)
                .err()
                .unwrap_or_else(|| Diagnostic::new(span, "no such table")));
        }
        st.rs
            .tables
            .retain(|t| !(t.family == fam && t.name == cmd.table));
        st.chains.forget(fam, &cmd.table);
        st.layouts
            .retain(|(f, t, _), _| !(*f == fam && *t == cmd.table));
        return Ok(());
    }
    let t = table_mut(&mut st.rs, fam, &cmd.table, span)?;
    match &cmd.object {
        AObj::Chain(decl) => {
            let name = &decl.name;
            if t.chain(name).is_none() {
                return absent(must || cmd.op == Op::Flush, || {
                    unknown_chain(t, name, decl.span)
                });
            }
            if cmd.op == Op::Flush {
                t.chains
                    .iter_mut()
                    .filter(|c| c.name == *name)
                    .for_each(|c| c.rules.clear());
                return Ok(());
            }
            if let Some(user) = chain_user(t, name) {
                return Err(in_use(decl.span, &format!("chain {name}"), &user));
            }
            t.chains.retain(|c| c.name != *name);
            st.chains.forget(fam, &cmd.table);
            Ok(())
        }
        AObj::Set(decl) => {
            let name = &decl.name;
            if t.set(name).is_none() {
                return absent(must || cmd.op == Op::Flush, || {
                    unknown_set(t, name, decl.span)
                });
            }
            if cmd.op == Op::Flush {
                t.sets
                    .iter_mut()
                    .filter(|s| s.name == *name)
                    .for_each(|s| s.elements = Default::default());
                if let Some(l) = st.layouts.get_mut(&(fam, cmd.table.clone(), name.clone())) {
                    l.written.clear();
                }
                return Ok(());
            }
            if let Some(user) = set_user(t, name) {
                return Err(in_use(decl.span, &format!("set {name}"), &user));
            }
            t.sets.retain(|s| s.name != *name);
            st.layouts.remove(&(fam, cmd.table.clone(), name.clone()));
            Ok(())
        }
        AObj::Elements { set, elements } => {
            if cmd.op == Op::Flush {
                return Err(
                    Diagnostic::new(span, "flush applies to sets, not elements").help(format!(
                        "write `flush set {} {} {set}`",
                        fam.name(),
                        cmd.table
                    )),
                );
            }
            let layout = st
                .layouts
                .get_mut(&(fam, cmd.table.clone(), set.clone()))
                .ok_or_else(|| unknown_set(t, set, span))?;
            delete_elements(t, set, layout, elements, must, span)
        }
        AObj::Obj(decl) => {
            let pos = t
                .objects
                .iter()
                .position(|o| o.name == decl.name && object_kind(o.obj_type) == decl.kind);
            let Some(pos) = pos else {
                return absent(must, || {
                    let (kind, name) = (&decl.kind, &decl.name);
                    let what = format!("no {kind} {name} in table {} {}", fam.name(), cmd.table);
                    Diagnostic::new(decl.span, what)
                });
            };
            if let Some(user) = object_user(t, &decl.name) {
                return Err(in_use(
                    decl.span,
                    &format!("{} {}", decl.kind, decl.name),
                    &user,
                ));
            }
            t.objects.remove(pos);
            Ok(())
        }
        AObj::Rule { .. } => Err(handle_refusal("handle", span)),
        AObj::Table { .. } | AObj::Ruleset => Ok(()),
    }
}

/// What is absent is an error for `delete` and `flush`, not `destroy`.
fn absent(must: bool, error: impl FnOnce() -> Diagnostic) -> R<()> {
    if must {
        Err(error())
    } else {
        Ok(())
    }
}

fn in_use(span: Span, what: &str, user: &str) -> Diagnostic {
    Diagnostic::new(
        span,
        format!("{what} is in use ({user}): the kernel refuses to delete it"),
    )
    .help("delete or change what refers to it first, in the same file")
}

fn object_kind(ty: u32) -> &'static str {
    match ty {
        NFT_OBJECT_COUNTER => "counter",
        NFT_OBJECT_QUOTA => "quota",
        NFT_OBJECT_LIMIT => "limit",
        NFT_OBJECT_CT_HELPER => "ct helper",
        NFT_OBJECT_CT_TIMEOUT => "ct timeout",
        NFT_OBJECT_CT_EXPECT => "ct expectation",
        NFT_OBJECT_SECMARK => "secmark",
        NFT_OBJECT_SYNPROXY => "synproxy",
        _ => "object",
    }
}

/// A rule or map element that jumps to `chain`, described.
fn chain_user(t: &Table, chain: &str) -> Option<String> {
    let jumps = |d: &Data| matches!(d, Data::Verdict(v) if v.chain() == Some(chain));
    for c in &t.chains {
        for r in c.rules.iter() {
            let direct = r
                .exprs
                .iter()
                .any(|e| matches!(e, Expr::Immediate(i) if i.data.as_ref().is_some_and(jumps)));
            let mapped = r
                .sets
                .iter()
                .flat_map(|s| s.elements.iter())
                .any(|e| e.data.as_ref().is_some_and(jumps));
            if direct || mapped {
                return Some(format!("a rule of chain {} jumps to it", c.name));
            }
        }
    }
    t.sets
        .iter()
        .find(|s| {
            s.elements
                .iter()
                .any(|e| e.data.as_ref().is_some_and(jumps))
        })
        .map(|s| format!("an element of map {} jumps to it", s.name))
}

/// A rule that looks up, updates or maps through set `set`, described.
fn set_user(t: &Table, set: &str) -> Option<String> {
    t.chains.iter().find_map(|c| {
        c.rules
            .iter()
            .any(|r| r.exprs.iter().any(|e| e.set_name() == Some(set)))
            .then(|| format!("a rule of chain {} refers to @{set}", c.name))
    })
}

/// A rule or map that refers to the named object `name`.
fn object_user(t: &Table, name: &str) -> Option<String> {
    let named = |e: &crate::model::Element| e.objref.as_deref() == Some(name);
    for c in &t.chains {
        let used = c.rules.iter().any(|r| {
            r.exprs
                .iter()
                .any(|e| matches!(e, Expr::Objref(o) if o.imm_name.as_deref() == Some(name)))
                || r.sets.iter().flat_map(|s| s.elements.iter()).any(named)
        });
        if used {
            return Some(format!("a rule of chain {} refers to it", c.name));
        }
    }
    t.sets
        .iter()
        .find(|s| s.elements.iter().any(named))
        .map(|s| format!("map {} refers to it", s.name))
}

/// `delete element`: each element must be in the set (`destroy`: if it is).
fn delete_elements(
    t: &mut Table,
    set: &str,
    layout: &mut sets::SetLayout,
    elements: &[ast::Elem],
    must: bool,
    span: Span,
) -> R<()> {
    let Some(s) = t.set(set) else {
        return Err(unknown_set(t, set, span));
    };
    let mut s = s.clone();
    let whole_interval = s.is_interval() && layout.dts.len() == 1;
    if whole_interval {
        // Interval sets are encoded from the elements written: drop the
        // written elements that encode as the deleted ones, and re-encode.
        for e in elements {
            let one = encode(t, &s, layout, std::slice::from_ref(e))?;
            let at = layout.written.iter().position(|w| {
                encode(t, &s, layout, std::slice::from_ref(w)).is_ok_and(|x| x == one)
            });
            match at {
                Some(i) => {
                    layout.written.remove(i);
                }
                None if must => return Err(not_in_set(e, set)),
                None => {}
            }
        }
        let written = std::mem::take(&mut layout.written);
        s.elements = Default::default();
        sets::add_elements(t, &mut s, layout, &written)?;
    } else {
        for e in elements {
            let one = encode(t, &s, layout, std::slice::from_ref(e))?;
            let before = s.elements.len();
            s.elements
                .retain(|x| !one.iter().any(|o| o.key == x.key && o.key_end == x.key_end));
            if s.elements.len() == before && must {
                return Err(not_in_set(e, set));
            }
        }
    }
    if let Some(x) = t.sets.iter_mut().find(|x| x.name == set) {
        *x = s;
    }
    Ok(())
}

fn not_in_set(e: &ast::Elem, set: &str) -> Diagnostic {
    Diagnostic::new(e.span, format!("this element is not in set {set}"))
}

/// The kernel elements `elems` encode to in set `s`.
fn encode(
    t: &Table,
    s: &Set,
    layout: &sets::SetLayout,
    elems: &[ast::Elem],
) -> R<Vec<crate::model::Element>> {
    let mut probe = s.clone();
    probe.elements = Default::default();
    let mut l = layout.clone();
    l.written.clear();
    sets::add_elements(t, &mut probe, &mut l, elems)?;
    Ok(probe.elements.into_vec())
}
