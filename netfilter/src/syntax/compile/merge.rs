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

fn unit(load: &Expr, cmp: &Expr) -> Option<Unit> {
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
        .then(|| Unit {
            base,
            off,
            value: v.0.clone(),
            op: c.op.unwrap_or(CmpOp::Eq),
        })
}

/// Merges runs of adjacent-field equality tests in `exprs`, in place.
pub fn merge_payloads(exprs: &mut Vec<Expr>) {
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
        run.sort_by_key(|u| u.off);
        let mut merged: Vec<Unit> = Vec::with_capacity(run.len());
        for u in run {
            match merged.last_mut() {
                Some(m)
                    if m.off + m.value.len() as u32 == u.off
                        && m.value.len() + u.value.len() <= 16 =>
                {
                    m.value.extend(u.value)
                }
                _ => merged.push(u),
            }
        }
        for m in merged {
            out.push(Expr::Payload(Payload {
                dreg: Some(1),
                base: Some(m.base),
                offset: Some(m.off),
                len: Some(m.value.len() as u32),
                ..Default::default()
            }));
            out.push(Expr::Cmp(Cmp {
                sreg: Some(1),
                op: Some(m.op),
                data: Some(Data::Value(Bytes(m.value))),
                ..Default::default()
            }));
        }
        i = j;
    }
    *exprs = out;
}
