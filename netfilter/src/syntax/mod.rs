//! The nft language: lexer, parser, and compiler to kernel expressions.
