//! The element delta of a set: which elements of the current list the
//! desired one lacks, and which it adds.
//!
//! Lists of sets fed from outside (addresses of pods) are long and change a
//! few elements at a time, and one desired list goes to many namespaces
//! whose known states all hold the list pushed before it (shared, see
//! [`Elements`]). The delta between two such lists is computed once and
//! kept for the next diffs asking for the same pair: a few recent pairs,
//! recognised by allocation, each entry holding both lists (so neither
//! allocation is freed and reused while its key is kept) and each side's
//! set expressions (an element is compared as normalized by them).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashSet;

use super::ends::common_ends;
use super::eq::{normalized_element, stateless};
use crate::expr::Expr;
use crate::model::{Element, Elements, Set};

/// Elements to delete from the current list and to add to it, each in its
/// list's order.
#[derive(Debug, Default)]
pub(super) struct Delta {
    pub removed: Vec<Element>,
    pub added: Vec<Element>,
}

/// Lists shorter than this are compared directly: the comparison costs
/// less than keeping it.
const KEPT_MIN: usize = 256;
/// Pairs kept. A round of changes asks for one pair per changed list; a
/// few more cover namespaces one version behind.
const KEPT: usize = 8;

struct Kept {
    cur: Elements,
    want: Elements,
    cur_exprs: Vec<Expr>,
    want_exprs: Vec<Expr>,
    delta: Arc<Delta>,
}

static RECENT: Mutex<VecDeque<Kept>> = Mutex::new(VecDeque::new());

/// The delta from `cur`'s elements to `want`'s (sets of the same kind):
/// computed once per pair of lists when the current one is shared (other
/// namespaces' known states hold it too, so their diffs will ask for the
/// same pair), else directly.
pub(super) fn of_sets(cur: &Set, want: &Set) -> Arc<Delta> {
    let small = cur.elements.len().max(want.elements.len()) < KEPT_MIN;
    if small || !cur.elements.is_shared() {
        return Arc::new(between(
            &cur.exprs,
            &cur.elements,
            &want.exprs,
            &want.elements,
        ));
    }
    let exprs_eq = |x: &[Expr], y: &[Expr]| {
        x.len() == y.len() && x.iter().zip(y).all(|(a, b)| stateless(a) == stateless(b))
    };
    // Held while computing: the other namespaces asking for the same pair
    // wait for it rather than compute it again.
    let mut recent = RECENT.lock().unwrap_or_else(|p| p.into_inner());
    let hit = recent.iter().position(|k| {
        k.cur.same(&cur.elements)
            && k.want.same(&want.elements)
            && exprs_eq(&k.cur_exprs, &cur.exprs)
            && exprs_eq(&k.want_exprs, &want.exprs)
    });
    if let Some(i) = hit {
        let k = recent.remove(i).expect("found");
        let delta = k.delta.clone();
        recent.push_front(k);
        return delta;
    }
    let delta = Arc::new(between(
        &cur.exprs,
        &cur.elements,
        &want.exprs,
        &want.elements,
    ));
    recent.truncate(KEPT - 1);
    recent.push_front(Kept {
        cur: cur.elements.clone(),
        want: want.elements.clone(),
        cur_exprs: cur
            .exprs
            .iter()
            .map(|e| stateless(e).into_owned())
            .collect(),
        want_exprs: want
            .exprs
            .iter()
            .map(|e| stateless(e).into_owned())
            .collect(),
        delta: delta.clone(),
    });
    delta
}

/// The delta from list `a` (of a set whose elements carry `a_exprs`) to
/// list `b`, elements compared as [`normalized_element`] makes them.
pub(super) fn between(a_exprs: &[Expr], a: &[Element], b_exprs: &[Expr], b: &[Element]) -> Delta {
    // Element lists usually agree but for a few elements: walk the common
    // prefix and suffix in order, and hash only what is between.
    let norm_a = |e| normalized_element(a_exprs, e);
    let norm_b = |e| normalized_element(b_exprs, e);
    let (pre, suf) = common_ends(a.len(), b.len(), |i, j| {
        a[i] == b[j] || norm_a(&a[i]) == norm_b(&b[j])
    });
    let (a, b) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let norm_a: Vec<Cow<'_, Element>> = a.iter().map(norm_a).collect();
    let norm_b: Vec<Cow<'_, Element>> = b.iter().map(norm_b).collect();
    let have: FxHashSet<&Element> = norm_a.iter().map(|e| e.as_ref()).collect();
    let wanted: FxHashSet<&Element> = norm_b.iter().map(|e| e.as_ref()).collect();
    // Each side's elements the other lacks, in order.
    let missing = |xs: &[Element], norms: &[Cow<'_, Element>], other: &FxHashSet<&Element>| {
        xs.iter()
            .zip(norms)
            .filter(|(_, n)| !other.contains(n.as_ref()))
            .map(|(e, _)| e.clone())
            .collect()
    };
    let removed = missing(a, &norm_a, &wanted);
    let added = missing(b, &norm_b, &have);
    Delta { removed, added }
}
