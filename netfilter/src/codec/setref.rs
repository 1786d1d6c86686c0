//! Where expressions name sets (lookup, dynset, objref maps) and chains
//! (jump/goto verdicts): pull attaches anonymous sets to the rules naming
//! them, push re-points those names at sets created in the same batch.
//!
//! Expressions not yet typed in `expr/` are read from their raw attributes.
// TODO(expr): switch to `Expr::set_refs_mut()` once the typed dynset and
// objref expressions land.

use crate::expr::{Bytes, Data, Expr, RawAttr, Verdict};
use crate::netlink::{Attrs, Writer};
use crate::sys::*;

/// Calls `f(name, set_id)` for each set reference of `e`; changes made by
/// `f` are written back into the expression.
pub(crate) fn for_each_set_ref(e: &mut Expr, mut f: impl FnMut(&mut String, &mut Option<u32>)) {
    match e {
        Expr::Lookup(l) => {
            if let Some(name) = &mut l.set {
                f(name, &mut l.set_id);
            }
        }
        Expr::Unknown {
            name,
            data: Some(data),
        } => {
            let (name_attr, id_attr) = match name.as_str() {
                "lookup" => (NFTA_LOOKUP_SET, NFTA_LOOKUP_SET_ID),
                "dynset" => (NFTA_DYNSET_SET_NAME, NFTA_DYNSET_SET_ID),
                "objref" => (NFTA_OBJREF_SET_NAME, NFTA_OBJREF_SET_ID),
                _ => return,
            };
            rewrite_raw(data, name_attr, id_attr, &mut f);
        }
        _ => {}
    }
}

/// Finds the set name (and id) among raw attributes; when `f` changes
/// them, re-encodes the attributes with the new values.
fn rewrite_raw(
    data: &mut Bytes,
    name_attr: u16,
    id_attr: u16,
    f: &mut impl FnMut(&mut String, &mut Option<u32>),
) {
    let mut attrs: Vec<RawAttr> = Vec::new();
    let (mut name, mut id) = (None, None);
    for a in Attrs::new(data.as_slice()) {
        let Ok(a) = a else { return };
        match a.kind() {
            k if k == name_attr => name = a.str().ok().map(str::to_owned),
            k if k == id_attr => id = a.u32_be().ok(),
            _ => {}
        }
        attrs.push(RawAttr::from_attr(&a));
    }
    let Some(mut new_name) = name.clone() else {
        return;
    };
    let mut new_id = id;
    f(&mut new_name, &mut new_id);
    if Some(&new_name) == name.as_ref() && new_id == id {
        return;
    }
    let mut w = Writer::with_capacity(data.0.len() + 8);
    for a in &attrs {
        match a.ty & crate::netlink::attr::NLA_TYPE_MASK {
            k if k == name_attr => w.put_str(a.ty, &new_name),
            k if k == id_attr => {}
            _ => a.encode(&mut w),
        }
    }
    if let Some(id) = new_id {
        w.put_u32_be(id_attr, id);
    }
    *data = Bytes(w.into_bytes());
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
pub(crate) fn anonymous_template(name: &str) -> String {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if stem.len() == name.len() || name.contains('%') {
        return name.to_owned();
    }
    format!("{stem}%d")
}
