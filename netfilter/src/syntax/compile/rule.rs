//! One rule's statements → kernel expressions: each statement to the
//! module that compiles it, then nft's merges of adjacent payload matches.

use std::cell::Cell;

use super::cx::RuleCx;
use super::emit;
use crate::expr::Expr;
use crate::model::{Family, Rule, Table, Userdata, UDATA_COMMENT};
use crate::syntax::ast::{self, RelOp, Stmt};
use crate::syntax::diag::err;
use crate::syntax::Result as R;

thread_local! {
    /// The expressions of the rule being compiled: one buffer, reused, so
    /// a rule's list is allocated once at its size. (A buffer growing per
    /// rule past 1 KiB made glibc consolidate its free lists every time.)
    static EXPRS: Cell<Vec<Expr>> = const { Cell::new(Vec::new()) };
}

pub fn compile_rule_ast(
    family: Family,
    table: &Table,
    rule: &ast::RuleAst,
    set_counter: &mut u32,
) -> R<Rule> {
    let mut cx = RuleCx::new(family, table, set_counter);
    cx.exprs = EXPRS.take();
    let mut terminal = false;
    for (i, s) in rule.stmts.iter().enumerate() {
        if terminal {
            return err(s.span(), "Statement after terminal statement has no effect");
        }
        if i + 1 < rule.stmts.len() && own_protocol_match(family, s) {
            continue;
        }
        stmt(&mut cx, s)?;
        terminal = is_terminal(s);
    }
    super::merge::merge_first_pair(&mut cx.exprs);
    super::merge::merge_payloads(&mut cx.exprs);
    let mut r = Rule::new(cx.exprs.drain(..).collect());
    EXPRS.set(cx.exprs);
    r.sets = cx.sets;
    if let Some(c) = &rule.comment {
        r.userdata = Some(Userdata::with_comment(UDATA_COMMENT, c));
    }
    Ok(r)
}

/// One statement into `cx`.
fn stmt(cx: &mut RuleCx<'_>, s: &Stmt) -> R<()> {
    match s {
        Stmt::Verdict(v, _) => {
            cx.exprs.push(emit::verdict(&emit::verdict_of(v)));
            Ok(())
        }
        Stmt::Match {
            left,
            op,
            right,
            span,
        } => cx.relational(left, *op, right, *span),
        Stmt::Vmap { left, map, span } => cx.map_lookup(left, map, None, *span),
        Stmt::Assign { left, value, span } => cx.assign(left, value, *span),
        Stmt::Keyword { name, args, span } => super::stmts::keyword(cx, name, args, *span),
        Stmt::SetOp(o) => {
            super::dynset::dynset(cx, &o.op, &o.set, &o.key, o.data.as_ref(), &o.stmts, o.span)
        }
        // Files move these into chains first (see `bind_chains`).
        Stmt::Bound { span, .. } => err(*span, "anonymous chains need a whole file"),
    }
}

/// `meta protocol ip` in an ip table (`ip6` in ip6): always true, so nft
/// drops it unless it is the rule's last statement.
fn own_protocol_match(family: Family, s: &Stmt) -> bool {
    let Stmt::Match {
        left: ast::Expr::Sel(path, _),
        op: RelOp::Implicit | RelOp::Eq,
        right: ast::Expr::Word(w, _),
        ..
    } = s
    else {
        return false;
    };
    path == &["meta", "protocol"]
        && matches!(
            (family, w.as_str()),
            (Family::Ip, "ip") | (Family::Ip6, "ip6")
        )
}

/// Statements after which nothing runs: verdicts and NAT.
fn is_terminal(s: &Stmt) -> bool {
    match s {
        Stmt::Verdict(..) | Stmt::Bound { .. } => true,
        Stmt::Keyword { name, .. } => {
            matches!(name.as_str(), "masquerade" | "redirect" | "snat" | "dnat")
        }
        _ => false,
    }
}
