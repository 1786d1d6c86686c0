//! Lookups in sets and maps: anonymous sets and maps built from a rule's
//! `{ ... }`, named ones checked against the key, verdict and data maps,
//! object maps, and the keys of meters and set statements.

use super::cx::{is_const, is_jhash, RuleCx, REG1};
use super::emit;
use super::plain::objref;
use super::sets::{KeyLayout, MapData};
use super::types::*;
use crate::model::{Set, Userdata};
use crate::syntax::ast::{self, RelOp};
use crate::syntax::diag::err;
use crate::syntax::diag::{Diagnostic, Span};
use crate::syntax::Result as R;
use crate::sys::*;

impl RuleCx<'_> {
    /// `left { ... }` / `left @set`: a lookup, anonymous set made as needed.
    pub(super) fn lookup_match(
        &mut self,
        right: &ast::Expr,
        dts: &[Dtype],
        lens: &[usize],
        op: RelOp,
        span: Span,
    ) -> R<()> {
        let flags = match op {
            RelOp::Implicit | RelOp::Eq => 0,
            RelOp::Ne => NFT_LOOKUP_F_INV,
            _ => return err(span, "sets support only == and !="),
        };
        let name = match right {
            ast::Expr::SetRef(name, s) => {
                let set = self
                    .table
                    .set(name)
                    .ok_or_else(|| super::sets::unknown_set(self.table, name, *s))?;
                let want: u32 = lens
                    .iter()
                    .map(|l| {
                        if lens.len() > 1 {
                            l.div_ceil(4) * 4
                        } else {
                            *l
                        }
                    })
                    .sum::<usize>() as u32;
                if set.key_len != want {
                    let expr_ty = dts.iter().map(|d| d.name).collect::<Vec<_>>().join(" . ");
                    let set_ty =
                        crate::proto::datatype::type_names(set.key_type, set.field_count());
                    return err(
                        *s,
                        format!("datatype mismatch: the expression is {expr_ty}, set @{name} holds {set_ty}"),
                    );
                }
                // A map's keys can be looked up as a set's.
                name.clone()
            }
            ast::Expr::Set(elems, _) => self.anon_set(elems, dts, lens, None)?,
            _ => {
                return err(
                    right.span(),
                    "expected a set: use concatenations with sets and maps, not singleton values",
                )
            }
        };
        self.swap_for_interval(&name, dts, lens, REG1);
        self.exprs.push(emit::lookup(&name, REG1, None, flags));
        Ok(())
    }

    /// `key vmap {...}` (dreg = verdict) or `key map {...}` into `dreg`.
    pub(super) fn map_lookup(
        &mut self,
        key: &ast::Expr,
        map: &ast::Expr,
        value: Option<(Dtype, usize, u32)>,
        span: Span,
    ) -> R<()> {
        let (md, dreg) = match value {
            None => (MapData::Verdict, NFT_REG_VERDICT),
            Some((dt, len, reg)) => (MapData::Value(dt, len), reg),
        };
        self.map_lookup_data(key, map, md, dreg, span)
    }

    /// [`Self::map_lookup`] with any kind of value (`md`) into `dreg`.
    pub(super) fn map_lookup_data(
        &mut self,
        key: &ast::Expr,
        map: &ast::Expr,
        md: MapData,
        dreg: u32,
        span: Span,
    ) -> R<()> {
        self.anon_key = match key {
            ast::Expr::Concat(parts, _) => parts.clone(),
            e => vec![e.clone()],
        };
        if let ast::Expr::Sel(path, span) = key {
            if path.len() == 3 && path[0] == "ct" && matches!(path[2].as_str(), "saddr" | "daddr") {
                return err(*span, "specify either ip or ip6 for address matching");
            }
        }
        // A single key is computed in the value's register, as nft does
        // (register 1 may already hold a NAT or tproxy address).
        let kreg = match key {
            ast::Expr::Concat(..) => REG1,
            _ if (NFT_REG_1..=NFT_REG_4).contains(&dreg) => dreg,
            _ => REG1,
        };
        let (dts, lens) = match key {
            ast::Expr::Concat(parts, _) => self.load_concat(parts)?,
            k => {
                let ld = self.load(k, kreg)?;
                let len = self.key_mask(&ld, matches!(map, ast::Expr::SetRef(..)), kreg);
                (vec![ld.dt], vec![len])
            }
        };
        let name = match map {
            ast::Expr::Set(elems, _) => self.anon_set(elems, &dts, &lens, Some(&md))?,
            ast::Expr::SetRef(name, s) => {
                let set = self
                    .table
                    .set(name)
                    .ok_or_else(|| Diagnostic::new(*s, format!("unknown map @{name}")))?;
                if !set.is_map() {
                    return err(*s, format!("@{name} is not a map"));
                }
                name.clone()
            }
            other => return err(other.span(), "expected a map"),
        };
        self.swap_for_interval(&name, &dts, &lens, kreg);
        let _ = span;
        self.exprs.push(emit::lookup(&name, kreg, Some(dreg), 0));
        Ok(())
    }

    /// Computes a value expression into `reg` (for `set` statements and NAT).
    pub(super) fn eval_into(&mut self, v: &ast::Expr, dt: &Dtype, len: usize, reg: u32) -> R<()> {
        match v {
            _ if is_jhash(v) => {
                self.load(v, reg)?;
                Ok(())
            }
            ast::Expr::Sel(..) | ast::Expr::Binop(..) if !is_const(v) => {
                self.load(v, reg)?;
                Ok(())
            }
            ast::Expr::Map(key, m, s) => self.map_lookup(key, m, Some((*dt, len, reg)), *s),
            _ => {
                let bytes = self.const_value(v, dt, len)?;
                self.exprs.push(emit::immediate(reg, &bytes));
                Ok(())
            }
        }
    }

    /// Loads a map key (a selector or concatenation) into register 1.
    pub(super) fn load_key(&mut self, key: &ast::Expr) -> R<(Vec<Dtype>, Vec<usize>)> {
        self.anon_key = match key {
            ast::Expr::Concat(parts, _) => parts.clone(),
            e => vec![e.clone()],
        };
        match key {
            ast::Expr::Concat(parts, _) => self.load_concat(parts),
            k => {
                let ld = self.load(k, REG1)?;
                if let Some((m, shift)) = &ld.mask {
                    self.exprs
                        .push(emit::bitwise(REG1, REG1, m, &vec![0; ld.len]));
                    self.anon_shift = *shift;
                }
                Ok((vec![ld.dt], vec![ld.len]))
            }
        }
    }

    /// Loads a meter's key into register 1 and adds the meter's own set
    /// to the rule (see [`super::dynset::meter`]).
    pub(super) fn meter_set(
        &mut self,
        name: &str,
        key: &ast::Expr,
        size: u32,
        timeout: bool,
    ) -> R<()> {
        let (dts, lens) = self.load_key(key)?;
        self.anon_key.clear();
        self.anon_shift = 0;
        let layout = KeyLayout {
            dts: &dts,
            lens: &lens,
            shift: 0,
        };
        let mut flags = NFT_SET_ANONYMOUS | NFT_SET_EVAL;
        if timeout {
            flags |= NFT_SET_TIMEOUT;
        }
        let mut s = Set::new(name, layout.type_id(), layout.len() as u32);
        s.flags = flags;
        // nft records a byte order (none: mixed) for concatenated keys only.
        if dts.len() > 1 {
            s.userdata = Some(Userdata(crate::expr::Bytes::from(vec![0u8, 4, 0, 0, 0, 0])));
        }
        s.desc = Some(crate::model::SetDesc {
            size: Some(size),
            ..Default::default()
        });
        self.sets.push(s);
        Ok(())
    }

    /// Loads the selector keying a set statement into register 1, masked
    /// (and shifted down) as for lookups in named sets.
    pub(super) fn load_set_key(&mut self, key: &ast::Expr) -> R<()> {
        let ld = self.load(key, REG1)?;
        self.key_mask(&ld, true, REG1);
        Ok(())
    }
}

/// `name "x"` / `name KEY map { K : "x", ... }` after a stateful statement:
/// a reference to a named object, or an object map chosen by `KEY`.
pub(super) fn object_ref(cx: &mut RuleCx<'_>, ty: u32, value: &ast::Expr) -> R<()> {
    match value {
        ast::Expr::Word(n, _) | ast::Expr::Str(n, _) => {
            cx.push(objref(ty, n));
            Ok(())
        }
        ast::Expr::Map(key, map, _) => {
            let (dts, lens) = cx.load_key(key)?;
            let name = match &**map {
                ast::Expr::Set(elems, _) => {
                    cx.anon_set(elems, &dts, &lens, Some(&super::sets::MapData::Object))?;
                    cx.make_objmap(ty).unwrap_or_default()
                }
                ast::Expr::SetRef(n, s) => {
                    let ok = cx.table().set(n).is_some_and(|m| m.obj_type == Some(ty));
                    if !ok {
                        return err(*s, format!("@{n} is not a map of such objects"));
                    }
                    n.clone()
                }
                other => return err(other.span(), "expected an object map"),
            };
            cx.push(emit::raw("objref", |w| {
                w.put_u32_be(NFTA_OBJREF_SET_SREG, NFT_REG_1);
                w.put_str(NFTA_OBJREF_SET_NAME, &name);
            }));
            Ok(())
        }
        other => err(other.span(), "expected an object name or map"),
    }
}
