//! What the language refuses, said once for every stage that finds it:
//! the parser, the compiler and the script's evaluation give the same
//! diagnostic for the same mistake.

use super::diag::{Diagnostic, Span};
use crate::model::Table;

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

/// `unknown set`, naming the sets there are.
pub fn unknown_set(t: &Table, set: &str, span: Span) -> Diagnostic {
    let named: Vec<&str> = t
        .sets
        .iter()
        .filter(|s| !s.is_anonymous())
        .map(|s| s.name.as_str())
        .collect();
    let d = Diagnostic::new(
        span,
        format!("no set @{set} in table {} {}", t.family.name(), t.name),
    );
    match super::suggest::closest(set, named.iter().copied()) {
        Some(s) => d.help(format!("did you mean @{s}?")),
        None if named.is_empty() => d.help("the table has no sets: declare it first"),
        None => d.help(format!(
            "the table's sets are {}",
            named
                .iter()
                .map(|n| format!("@{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}
