//! The parsed form of an nft script: commands, and inside rules,
//! statements and expressions. Values stay as written (words); their
//! meaning is decided by the compiler from the type of the other side.

use super::diag::Span;

/// A whole script: commands in order. Table blocks are flattened into
/// the equivalent `add` commands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Script {
    pub commands: Vec<Command>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Create,
    Insert,
    Replace,
    Delete,
    Destroy,
    Flush,
}

/// One command on one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub op: Op,
    pub family: String,
    pub table: String,
    pub object: Object,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// The table itself (flags and comment, for `add table`).
    Table {
        flags: Vec<String>,
        comment: Option<String>,
    },
    // Declarations are boxed: a script is mostly rules, and every
    // command is as large as its largest object.
    Chain(Box<ChainDecl>),
    Rule {
        chain: String,
        /// `handle N` / `position N` / `index N`, as written.
        position: Option<(String, u64)>,
        rule: RuleAst,
    },
    Set(Box<SetDecl>),
    /// `add element`, `delete element`: elements of a named set.
    Elements {
        set: String,
        elements: Vec<Elem>,
    },
    Obj(Box<ObjDecl>),
    /// `flush ruleset` / `flush table` and similar whole-scope commands.
    Ruleset,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChainDecl {
    pub name: String,
    pub chain_type: Option<String>,
    pub hook: Option<String>,
    pub devices: Vec<String>,
    /// Priority: a number, or a name with an offset (`filter + 10`).
    pub priority: Option<(Option<String>, i64, Span)>,
    pub policy: Option<String>,
    pub comment: Option<String>,
    pub span: Span,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SetDecl {
    pub name: String,
    pub is_map: bool,
    /// `type a . b` names, or `typeof` expressions, for the key.
    pub key: KeySpec,
    /// Value side of a map (`: verdict`, `: ipv4_addr`, `typeof ... : meta mark`).
    pub data: Option<KeySpec>,
    /// `: interval TYPE`: the values are ranges (NAT maps).
    pub data_interval: bool,
    pub flags: Vec<String>,
    pub timeout: Option<String>,
    pub gc_interval: Option<String>,
    pub size: Option<u64>,
    pub policy: Option<String>,
    pub comment: Option<String>,
    pub counter: bool,
    /// Statements each element gets (`limit ...`, `ct count ...`); a
    /// `counter` among others is one of them.
    pub stmts: Vec<Stmt>,
    pub elements: Vec<Elem>,
    pub auto_merge: bool,
    pub span: Span,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum KeySpec {
    #[default]
    None,
    /// `type ipv4_addr . inet_service`
    Types(Vec<String>),
    /// `typeof ip saddr . tcp dport`
    Typeof(Vec<Expr>),
    /// Object map values: `: counter`, `: quota`.
    Object(String),
}

/// A named stateful object and its arguments, as words.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjDecl {
    pub kind: String,
    pub name: String,
    /// Everything after the name (inside braces for block objects).
    pub args: Vec<super::lexer::Token>,
    pub comment: Option<String>,
    pub span: Span,
}

/// A set element: a key (or `*`), optional mapped value and options.
#[derive(Clone, Debug, PartialEq)]
pub struct Elem {
    pub key: Expr,
    pub data: Option<Expr>,
    pub timeout: Option<String>,
    pub expires: Option<String>,
    pub comment: Option<String>,
    pub counter: Option<(u64, u64)>,
    /// Other stateful statements (`limit`, `quota`, `ct count`, `last`),
    /// with the counter among them, in order, once there is one.
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

impl Elem {
    /// An element that is only its key.
    pub fn new(key: Expr, span: Span) -> Self {
        Elem {
            key,
            data: None,
            timeout: None,
            expires: None,
            comment: None,
            counter: None,
            stmts: Vec::new(),
            span,
        }
    }
}

/// A rule: statements in order and an optional comment.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleAst {
    pub stmts: Vec<Stmt>,
    pub comment: Option<String>,
    pub span: Span,
}

/// Relational operators; `Implicit` is a bare `left right`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelOp {
    Implicit,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    /// `!` before a flag value: none of these bits set.
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    And,
    Or,
    Xor,
    Shl,
    Shr,
}

/// An expression as written.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A bare value word (`22`, `10.0.0.0/8`, `new`, `1-5`, `eth0`).
    Word(String, Span),
    /// A quoted string.
    Str(String, Span),
    /// A `$variable`, resolved by the parser from `define`.
    Var(String, Span),
    /// `@set`
    SetRef(String, Span),
    /// A selector: a keyword path such as `tcp dport`, `meta mark`,
    /// `ct original saddr`, `@nh,16,8`, with numeric arguments kept as words.
    Sel(Vec<String>, Span),
    Concat(Vec<Expr>, Span),
    /// `{ ... }`
    Set(Vec<Elem>, Span),
    /// `a, b, c` (flag lists and bare element lists).
    List(Vec<Expr>, Span),
    Range(Box<Expr>, Box<Expr>, Span),
    Prefix(Box<Expr>, u32, Span),
    Binop(BinOp, Box<Expr>, Box<Expr>, Span),
    /// `key map { ... }` / `key map @m`
    Map(Box<Expr>, Box<Expr>, Span),
    /// A verdict used as a value (in verdict maps).
    Verdict(Verdict, Span),
    /// `*` (catch-all element).
    Wildcard(Span),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Word(_, s)
            | Expr::Str(_, s)
            | Expr::Var(_, s)
            | Expr::SetRef(_, s)
            | Expr::Sel(_, s)
            | Expr::Concat(_, s)
            | Expr::Set(_, s)
            | Expr::List(_, s)
            | Expr::Range(_, _, s)
            | Expr::Prefix(_, _, s)
            | Expr::Binop(_, _, _, s)
            | Expr::Map(_, _, s)
            | Expr::Verdict(_, s)
            | Expr::Wildcard(s) => *s,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Continue,
    Return,
    Jump(String),
    Goto(String),
}

/// A statement of a rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `left [op] right`
    Match {
        left: Expr,
        op: RelOp,
        right: Expr,
        span: Span,
    },
    /// `left vmap { ... }` / `left vmap @m`
    Vmap {
        left: Expr,
        map: Expr,
        span: Span,
    },
    Verdict(Verdict, Span),
    /// `left set value` (meta, ct, payload, exthdr)
    Assign {
        left: Expr,
        value: Expr,
        span: Span,
    },
    /// Keyword statements (counter, log, limit, quota, reject, nat, ...):
    /// the keyword, its options as words/expressions in order.
    Keyword {
        name: String,
        args: Vec<Arg>,
        span: Span,
    },
    /// `jump { rules }` / `goto { rules }`: a verdict to an anonymous
    /// chain holding these rules, bound to this rule.
    Bound {
        goto: bool,
        rules: Vec<RuleAst>,
        span: Span,
    },
    /// `add @s { key [stmts] }` / `update` / `delete` (boxed: rare and
    /// the largest statement).
    SetOp(Box<SetOp>),
}

/// `add @s { key [stmts] }` / `update` / `delete`
#[derive(Clone, Debug, PartialEq)]
pub struct SetOp {
    pub op: String,
    pub set: String,
    pub key: Expr,
    /// The value stored, for maps (`{ key : value }`).
    pub data: Option<Expr>,
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

impl Stmt {
    /// Where the statement is written.
    pub fn span(&self) -> Span {
        match self {
            Stmt::Verdict(_, span)
            | Stmt::Match { span, .. }
            | Stmt::Vmap { span, .. }
            | Stmt::Assign { span, .. }
            | Stmt::Keyword { span, .. }
            | Stmt::Bound { span, .. } => *span,
            Stmt::SetOp(s) => s.span,
        }
    }
}

/// One argument of a keyword statement: a plain word, or an expression
/// (after `to`, `map`, ...).
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Word(String, Span),
    Str(String, Span),
    Expr(Expr),
    Punct(&'static str, Span),
}

impl Arg {
    pub fn span(&self) -> Span {
        match self {
            Arg::Word(_, s) | Arg::Str(_, s) | Arg::Punct(_, s) => *s,
            Arg::Expr(e) => e.span(),
        }
    }
}
