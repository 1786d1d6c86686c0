//! nft's merge of adjacent header matches: consecutive `field == value`
//! (or `!=`) tests of neighbouring bytes of one header become one load and one
//! compare (`tcp sport 1 tcp dport 2` loads 4 bytes). Learnt from the
//! kernel's rules after nft loads them: fields that are whole, aligned
//! 32-bit words (addresses, sequence numbers) are left alone.

use crate::expr::cmp::{Cmp, CmpOp};
use crate::expr::payload::{Payload, PayloadBase};
use crate::expr::{Bytes, Data, Expr};

/// A `payload load` into register 1 followed by `cmp eq` on it.
struct Unit {
    base: PayloadBase,
    off: u32,
    value: Vec<u8>,
    /// `eq`, or `neq`: nft merges runs of either (not mixed).
    op: CmpOp,
}

/// A unit as it stands in the rule: borrowed, for the tests that decide
/// whether anything merges (most rules: nothing).
#[derive(Clone, Copy)]
struct UnitRef<'a> {
    base: PayloadBase,
    off: u32,
    value: &'a [u8],
    op: CmpOp,
}

impl UnitRef<'_> {
    fn owned(self) -> Unit {
        Unit {
            base: self.base,
            off: self.off,
            value: self.value.to_vec(),
            op: self.op,
        }
    }
}

/// The base and operator of a unit, without building it.
fn unit_head(load: &Expr, cmp: &Expr) -> Option<(PayloadBase, CmpOp)> {
    unit_ref(load, cmp).map(|u| (u.base, u.op))
}

fn unit(load: &Expr, cmp: &Expr) -> Option<Unit> {
    unit_ref(load, cmp).map(UnitRef::owned)
}

fn unit_ref<'a>(load: &Expr, cmp: &'a Expr) -> Option<UnitRef<'a>> {
    let (Expr::Payload(p), Expr::Cmp(c)) = (load, cmp) else {
        return None;
    };
    let plain = p.sreg.is_none() && p.csum_type.is_none() && p.unknown.is_empty();
    let (dreg, base, off, len) = (p.dreg?, p.base?, p.offset?, p.len?);
    let Some(Data::Value(v)) = &c.data else {
        return None;
    };
    let aligned = off % 4 == 0 && len % 4 == 0;
    (plain
        && !aligned
        && matches!(c.op, Some(CmpOp::Eq | CmpOp::Neq))
        && c.sreg == Some(dreg)
        && dreg == 1
        && v.0.len() == len as usize)
        .then(|| UnitRef {
            base,
            off,
            value: &v.0[..],
            op: c.op.unwrap_or(CmpOp::Eq),
        })
}

/// Merges runs of adjacent-field equality tests in `exprs`, in place.
pub fn merge_payloads(exprs: &mut Vec<Expr>) {
    // Most rules have no two such tests in a row: left as they are.
    let mergeable = |j: usize| {
        exprs.get(j..j + 4).is_some_and(|w| {
            matches!((unit_head(&w[0], &w[1]), unit_head(&w[2], &w[3])), (Some(a), Some(b)) if a == b)
        })
    };
    if !(0..exprs.len()).any(mergeable) {
        return;
    }
    let mut out: Vec<Expr> = Vec::with_capacity(exprs.len());
    let mut i = 0;
    while i < exprs.len() {
        // Collect a run of units of one base.
        let mut run: Vec<Unit> = Vec::new();
        let mut j = i;
        while j + 1 < exprs.len() {
            match unit(&exprs[j], &exprs[j + 1]) {
                Some(u) if run.first().is_none_or(|f| f.base == u.base && f.op == u.op) => {
                    run.push(u);
                    j += 2;
                }
                _ => break,
            }
        }
        if run.len() < 2 {
            out.push(exprs[i].clone());
            i += 1;
            continue;
        }
        // Merged in offset order; a merge that fills one aligned 32-bit
        // word is complete (`arp htype . ptype` then `hlen . plen`), and
        // each merged test stays where its first part was.
        let mut run: Vec<(usize, Unit)> = run.into_iter().enumerate().collect();
        run.sort_by_key(|(_, u)| u.off);
        let mut merged: Vec<(usize, Unit)> = Vec::with_capacity(run.len());
        for (pos, u) in run {
            match merged.last_mut() {
                Some((mpos, m))
                    if m.off + m.value.len() as u32 == u.off
                        && m.value.len() + u.value.len() <= 16
                        && !(m.off % 4 == 0 && m.value.len() == 4) =>
                {
                    m.value.extend(u.value);
                    *mpos = (*mpos).min(pos);
                }
                _ => merged.push((pos, u)),
            }
        }
        merged.sort_by_key(|(pos, _)| *pos);
        for (_, m) in merged {
            let (load, cmp) = unit_exprs(m);
            out.push(load);
            out.push(cmp);
        }
        i = j;
    }
    *exprs = out;
}

/// nft also merges the first two header matches of a rule when other
/// statements stand between them (`ether saddr X counter ether type
/// 8021q`), if they test neighbouring bytes. The merged test takes the
/// place of the one on a protocol field (ether type, ip protocol), else
/// of the lower one; later matches are not merged with it.
pub fn merge_first_pair(exprs: &mut Vec<Expr>) {
    for base in [
        PayloadBase::LinkLayer,
        PayloadBase::Network,
        PayloadBase::Transport,
    ] {
        merge_first_pair_of(exprs, base);
    }
}

/// [`merge_first_pair`] for the matches on one header.
fn merge_first_pair_of(exprs: &mut Vec<Expr>, base: PayloadBase) {
    let mut units: [Option<(usize, UnitRef)>; 2] = [None, None];
    let mut found = 0;
    let mut i = 0;
    while i + 1 < exprs.len() && found < 2 {
        match unit_ref(&exprs[i], &exprs[i + 1]).filter(|u| u.base == base) {
            Some(u) => {
                units[found] = Some((i, u));
                found += 1;
                i += 2;
            }
            None => i += 1,
        }
    }
    let [Some((ia, a)), Some((ib, b))] = units else {
        return;
    };
    // Consecutive matches are `merge_payloads`' job; only equalities
    // are merged across statements.
    if ib == ia + 2 || a.op != CmpOp::Eq || b.op != CmpOp::Eq {
        return;
    }
    let slot = if is_protocol_key(&a) || (!is_protocol_key(&b) && a.off < b.off) {
        ia
    } else {
        ib
    };
    let (lo, hi) = if a.off < b.off { (a, b) } else { (b, a) };
    if lo.off + lo.value.len() as u32 != hi.off || lo.value.len() + hi.value.len() > 16 {
        return;
    }
    let mut merged = lo.owned();
    merged.value.extend_from_slice(hi.value);
    let (load, cmp) = unit_exprs(merged);
    let other = if slot == ia { ib } else { ia };
    exprs[slot] = load;
    exprs[slot + 1] = cmp;
    exprs.drain(other..other + 2);
}

/// The load and compare of a unit.
fn unit_exprs(m: Unit) -> (Expr, Expr) {
    let load = Expr::Payload(Payload {
        dreg: Some(1),
        base: Some(m.base),
        offset: Some(m.off),
        len: Some(m.value.len() as u32),
        ..Default::default()
    });
    let cmp = Expr::Cmp(Cmp {
        sreg: Some(1),
        op: Some(m.op),
        data: Some(Data::Value(Bytes::from(m.value))),
        ..Default::default()
    });
    (load, cmp)
}

/// Fields naming the next header's protocol.
fn is_protocol_key(u: &UnitRef) -> bool {
    matches!(
        (u.base, u.off, u.value.len()),
        (PayloadBase::LinkLayer, 12 | 16 | 20, 2) | (PayloadBase::Network, 9 | 6, 1)
    )
}
