//! The token stream a script's parser sees: `include`d files spliced in
//! where they are named, and `define`d variables replaced by their value.
//!
//! As in nft, a definition is visible from where it is made to the end of
//! the block it is made in (blocks it contains included), and a
//! definition in an included file is visible after the `include`.
//! Defining a name twice in one block is an error (`redefinition of
//! symbol`); `redefine` replaces or adds, `undefine` removes (neither
//! complains about a name that is not defined, as nft). A value's own
//! `$names` are resolved when it is defined.

use std::collections::HashMap;

use super::diag::{Diagnostic, Span};
use super::include::{Includes, MAX_DEPTH};
use super::lexer::{lex_file, Tok, Token};

/// The files a script was read from; `Span::file` indexes them.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
}

#[derive(Clone, Debug)]
pub struct SourceFile {
    /// `None` for a text given directly (not read from a file).
    pub name: Option<String>,
    pub text: String,
}

impl Sources {
    /// Sources starting with the main text.
    pub fn new(name: Option<String>, text: &str) -> Self {
        Sources {
            files: vec![SourceFile {
                name,
                text: text.to_owned(),
            }],
        }
    }

    /// Fills each diagnostic's file name and quoted line.
    pub fn locate(&self, mut d: Diagnostic) -> Diagnostic {
        if let Some(f) = self.files.get(d.source_id as usize) {
            if d.file.is_none() {
                d.file = f.name.as_deref().map(Box::from);
            }
            d = d.with_source(&f.text);
        }
        d
    }
}

/// Variables visible at one point: one map per open block.
struct Scopes(Vec<HashMap<String, Vec<Token>>>);

impl Scopes {
    fn get(&self, name: &str) -> Option<&Vec<Token>> {
        self.0.iter().rev().find_map(|s| s.get(name))
    }
    fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|s| s.keys().map(String::as_str))
    }
    fn lookup(&self, name: &str, span: Span) -> Result<&Vec<Token>, Diagnostic> {
        self.get(name).ok_or_else(|| {
            Diagnostic::new(span, format!("unknown identifier '{name}'"))
                .suggest(name, self.names())
        })
    }
}

/// One file being read: its tokens and how far along.
struct Frame {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

/// Splices includes and replaces variables in the main file's tokens.
/// Files read are appended to `sources`.
pub fn expand(
    main: Vec<Token>,
    sources: &mut Sources,
    includes: &Includes,
) -> Result<Vec<Token>, Diagnostic> {
    // A script with no variables, definitions or includes is its tokens.
    let plain = |t: &Token| match &t.tok {
        Tok::Var(_) => false,
        Tok::Word(w) => !matches!(w.as_str(), "define" | "redefine" | "undefine" | "include"),
        _ => true,
    };
    if main.iter().all(plain) {
        return Ok(main);
    }
    let mut out: Vec<Token> = Vec::with_capacity(main.len());
    let mut scopes = Scopes(vec![HashMap::new()]);
    let mut frames = vec![Frame {
        toks: main,
        pos: 0,
        depth: 0,
    }];
    let at_stmt_start = |out: &Vec<Token>| {
        out.last()
            .is_none_or(|t: &Token| t.tok == Tok::Newline || t.is_punct(";") || t.is_punct("{"))
    };
    while let Some(frame) = frames.last_mut() {
        // Each token is read once: moved out, not copied.
        let Some(t) = frame.toks.get_mut(frame.pos).map(std::mem::take) else {
            frames.pop();
            // The end of an included file ends its last statement.
            if !frames.is_empty() {
                out.push(Token {
                    tok: Tok::Newline,
                    span: out.last().map(|t| t.span).unwrap_or_default(),
                });
            }
            continue;
        };
        frame.pos += 1;
        let depth = frame.depth;
        let kw = t.word().unwrap_or("");
        if !at_stmt_start(&out) || !matches!(kw, "define" | "redefine" | "undefine" | "include") {
            match &t.tok {
                Tok::Var(v) => out.extend(scopes.lookup(v, t.span)?.iter().cloned()),
                Tok::Punct("{") => {
                    scopes.0.push(HashMap::new());
                    out.push(t);
                }
                Tok::Punct("}") => {
                    if scopes.0.len() > 1 {
                        scopes.0.pop();
                    }
                    out.push(t);
                }
                _ => out.push(t),
            }
            continue;
        }
        if kw == "include" {
            let Some(Token {
                tok: Tok::Str(name),
                span: nspan,
            }) = frame.toks.get_mut(frame.pos).map(std::mem::take)
            else {
                return Err(
                    Diagnostic::new(t.span, "expected a quoted file name after include")
                        .expected(&["\"FILE\""]),
                );
            };
            frame.pos += 1;
            let span = t.span.to(nspan);
            if depth + 1 > MAX_DEPTH {
                return Err(Diagnostic::new(
                    span,
                    format!("Include nested too deeply, max {MAX_DEPTH} levels"),
                ));
            }
            let files = includes
                .resolve(&name)
                .map_err(|m| Diagnostic::new(span, m))?;
            // Pushed last to first, so the first file is read first.
            for path in files.iter().rev() {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Diagnostic::new(span, format!("cannot read {}: {e}", path.display()))
                })?;
                let id = sources.files.len() as u32;
                sources.files.push(SourceFile {
                    name: Some(path.display().to_string()),
                    text,
                });
                let toks = lex_file(&sources.files[id as usize].text, id)?;
                frames.push(Frame {
                    toks,
                    pos: 0,
                    depth: depth + 1,
                });
            }
            continue;
        }
        let frame = frames.last_mut().expect("the frame just read");
        let (name, nspan) = match frame.toks.get(frame.pos) {
            Some(Token {
                tok: Tok::Word(n),
                span,
            }) => (n.clone(), *span),
            _ => {
                return Err(Diagnostic::new(
                    t.span,
                    format!("expected a variable name after {kw}"),
                ))
            }
        };
        frame.pos += 1;
        if kw == "undefine" {
            for s in scopes.0.iter_mut().rev() {
                if s.remove(&name).is_some() {
                    break;
                }
            }
            continue;
        }
        if !frame.toks.get(frame.pos).is_some_and(|t| t.is_punct("=")) {
            return Err(
                Diagnostic::new(nspan, format!("expected '=' after {kw} {name}")).expected(&["="]),
            );
        }
        frame.pos += 1;
        let mut value = Vec::new();
        let mut depth = 0i32;
        while let Some(v) = frame.toks.get(frame.pos) {
            if depth == 0 && (v.tok == Tok::Newline || v.is_punct(";")) {
                break;
            }
            if v.is_punct("{") {
                depth += 1;
            } else if v.is_punct("}") {
                depth -= 1;
                if depth < 0 {
                    break;
                }
            }
            match &v.tok {
                Tok::Var(r) => value.extend(scopes.lookup(r, v.span)?.iter().cloned()),
                Tok::Newline => {}
                _ => value.push(v.clone()),
            }
            frame.pos += 1;
        }
        if value.is_empty() {
            return Err(Diagnostic::new(
                nspan,
                format!("expected a value after {kw} {name} ="),
            ));
        }
        let scope = scopes.0.last_mut().expect("the global scope");
        if kw == "define" && scope.contains_key(&name) {
            return Err(
                Diagnostic::new(nspan, format!("redefinition of symbol '{name}'"))
                    .help(format!("use `redefine {name} = ...` to change its value")),
            );
        }
        scope.insert(name, value);
    }
    Ok(out)
}
