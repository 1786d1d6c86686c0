//! The nft language: lexer, parser, and compiler to kernel expressions.
//!
//! The one entry point for a whole file is [`compile_source`] (and
//! [`compile`], the same for a text that may not `include`): it reads the
//! script as nft 1.0.6 does — `include`s spliced in ([`include`]), `define`d
//! variables expanded ([`expand`]) — parses its commands ([`parser`]) and
//! evaluates them in order into the ruleset the script leaves in an empty
//! namespace ([`script`]). The agent's CLI, the agent's resources and the
//! operator's validation all call it, so they agree on what is valid.
//!
//! ```
//! let rs = linx_netfilter::syntax::compile(
//!     "flush ruleset\ntable inet fw {\n chain input {\n  type filter hook input priority 0; policy drop;\n  tcp dport 22 accept\n }\n}\n",
//! )?;
//! assert_eq!(rs.tables[0].chains[0].rules.len(), 1);
//! # Ok::<(), linx_netfilter::syntax::Diagnostics>(())
//! ```

pub mod ast;
pub mod compile;
pub mod diag;
pub mod expand;
pub mod include;
pub mod lexer;
pub mod parser;
pub mod script;
pub mod suggest;
pub mod vocab;

pub use compile::compile_rule;
pub use diag::{Diagnostic, Diagnostics, Result, Span};
pub use include::Includes;

use crate::model::Ruleset;
use expand::Sources;

/// Parses an nft script into commands (no `include`).
pub fn parse(src: &str) -> Result<ast::Script, Diagnostics> {
    parser::parse_script(src).map_err(|d| Diagnostics::one(d).with_source(src))
}

/// Compiles a script that stands alone (an `include` is an error): the
/// ruleset it leaves in an empty namespace.
pub fn compile(src: &str) -> Result<Ruleset, Diagnostics> {
    compile_source(None, src, &Includes::Refuse)
}

/// Compiles the script `text` (read from the file `name`, if any), with
/// `include`s read as `includes` allows: the ruleset it leaves in an empty
/// namespace. Every diagnostic names its file (when it has one), line and
/// column.
pub fn compile_source(
    name: Option<&str>,
    text: &str,
    includes: &Includes,
) -> Result<Ruleset, Diagnostics> {
    let mut eval = script::Evaluator::default();
    let sources = evaluate(name, text, includes, &mut eval)?;
    eval.finish()
        .map_err(|ds| Diagnostics(ds.into_iter().map(|d| sources.locate(d)).collect()))
}

/// A rule a script adds, and where it is written.
#[derive(Clone, Debug)]
pub struct WrittenRule {
    pub family: crate::model::Family,
    pub table: String,
    pub chain: String,
    pub rule: crate::model::Rule,
    /// Its place: file, line, column, the source line (no message).
    pub at: Diagnostic,
}

/// Every rule the script adds, in the order it adds them, with its place:
/// to point at a rule the kernel refused (the compiled value keeps no
/// positions). Compiles the script again keeping a copy of each rule, so
/// it is for an error's path, not a hot one; nothing when the script does
/// not parse.
pub fn written_rules(name: Option<&str>, text: &str, includes: &Includes) -> Vec<WrittenRule> {
    let mut eval = script::Evaluator::recording();
    let Ok(sources) = evaluate(name, text, includes, &mut eval) else {
        return Vec::new();
    };
    eval.written()
        .into_iter()
        .map(|w| WrittenRule {
            family: w.family,
            table: w.table,
            chain: w.chain,
            rule: w.rule,
            at: sources.locate(Diagnostic::new(w.span, String::new())),
        })
        .collect()
}

/// Reads, expands and parses `text`, handing each command to `eval` as
/// soon as it is complete; the script's files, to locate diagnostics.
fn evaluate(
    name: Option<&str>,
    text: &str,
    includes: &Includes,
    eval: &mut script::Evaluator,
) -> Result<Sources, Diagnostics> {
    let mut sources = Sources::new(name.map(str::to_owned), text);
    // Each command is evaluated as soon as it is parsed; a parse error
    // anywhere is the only error reported, as when parsing came first.
    lexer::lex_noting(text, 0)
        .and_then(|(toks, noted)| {
            if !noted.expands {
                return parser::parse_into(toks, Some(noted), eval);
            }
            // Included files and variables' values bring words of their own.
            let toks = expand::expand(toks, &mut sources, includes)?;
            parser::parse_into(toks, None, eval)
        })
        .map_err(|d| Diagnostics::one(sources.locate(d)))?;
    Ok(sources)
}
