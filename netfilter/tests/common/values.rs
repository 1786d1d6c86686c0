//! Comparing values the way the engine does: two values hold the same
//! configuration exactly when the diff between them is empty (see
//! `linx_netfilter::diff::eq` for what never counts as a change). No
//! normalisation of its own: a test that needed one would hide a bug.

use linx_netfilter::diff::diff;
use linx_netfilter::Ruleset;

/// `None` when `current` (what a namespace holds) equals `desired`, else
/// the patch that would make it so, one operation per line.
pub fn difference(current: &Ruleset, desired: &Ruleset) -> Option<String> {
    let patch = diff(current, desired);
    (!patch.is_empty()).then(|| {
        format!(
            "differ by {} operation(s):\n{}",
            patch.len(),
            patch.render(desired)
        )
    })
}
