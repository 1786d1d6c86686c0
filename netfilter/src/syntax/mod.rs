//! The nft language: lexer, parser, and compiler to kernel expressions.

pub mod ast;
pub mod compile;
pub mod diag;
pub mod lexer;
pub mod parser;

pub use compile::{compile, compile_rule};
pub use diag::{Diagnostic, Diagnostics, Span};

/// Parses an nft script into commands.
pub fn parse(src: &str) -> Result<ast::Script, Diagnostics> {
    parser::parse_script(src).map_err(|d| Diagnostics::one(d).with_source(src))
}
