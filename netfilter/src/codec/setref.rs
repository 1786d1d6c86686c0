//! Where expressions name sets (lookup, dynset, objref maps) and chains
//! (jump/goto verdicts): pull attaches anonymous sets to the rules naming
//! them, push re-points those names at sets created in the same batch.

use crate::expr::{Data, Expr, Verdict};

/// Calls `f(name, set_id)` for the set reference of `e`, if it has one
/// by name; changes made by `f` stay in the expression.
#[cfg_attr(not(feature = "kernel"), allow(dead_code))] // used by the kernel's side only
pub(crate) fn for_each_set_ref(e: &mut Expr, mut f: impl FnMut(&mut String, &mut Option<u32>)) {
    if let Some((Some(name), id)) = e.set_refs_mut() {
        f(name, id);
    }
}

/// The chain a jump or goto of `e` targets.
pub(crate) fn jump_target(e: &Expr) -> Option<&str> {
    match e {
        Expr::Immediate(i) => match &i.data {
            Some(Data::Verdict(v @ (Verdict::Jump(_) | Verdict::Goto(_)))) => v.chain(),
            _ => None,
        },
        _ => None,
    }
}

/// The name nft gives an anonymous set it creates, for the kernel to
/// number: `__set12` becomes `__set%d`, `__map3` becomes `__map%d`.
#[cfg_attr(not(feature = "kernel"), allow(dead_code))] // used by the kernel's side only
pub(crate) fn anonymous_template(name: &str) -> String {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if stem.len() == name.len() || name.contains('%') {
        return name.to_owned();
    }
    format!("{stem}%d")
}
