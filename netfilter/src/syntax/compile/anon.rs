//! Anonymous sets and maps of a rule (`{ ... }` after a selector, the
//! ICMP types a field needs): built, named and flagged as nft builds
//! them, and their keys byte-swapped where interval sets need it.

use super::cx::RuleCx;
use super::emit;
use super::fields::Load;
use super::sets::{build_elements, KeyLayout, MapData};
use super::types::*;
use crate::model::Set;
use crate::syntax::ast::{self, Elem};
use crate::syntax::Result as R;
use crate::sys::*;

impl RuleCx<'_> {
    /// Builds an anonymous set (or map when `data` gives the value type).
    pub(super) fn anon_set(
        &mut self,
        elems: &[Elem],
        dts: &[Dtype],
        lens: &[usize],
        data: Option<&MapData>,
    ) -> R<String> {
        let shift = std::mem::take(&mut self.anon_shift);
        let key = KeyLayout { dts, lens, shift };
        let (elements, interval) = build_elements(self.table, elems, &key, data, None, false)?;
        let anon_key = std::mem::take(&mut self.anon_key);
        // A masked field (`vlan id`) keys the set through a bitwise
        // expression, which nft does not record.
        let masked = match anon_key.as_slice() {
            [e] => {
                matches!(self.sel_load(e), Some(Load::Payload { off, len, .. }) if off % 8 != 0 || len % 8 != 0)
            }
            _ => false,
        };
        let key_typeof = super::sets::typeof_of(self.family, &anon_key).filter(|_| !masked);
        let mut userdata = super::sets::anon_udata(&key, key_typeof.as_deref(), data, interval);
        // nft takes the key's byte order from the expression: `meta
        // l4proto` is in host order, though its type is not.
        if matches!(anon_key.as_slice(), [ast::Expr::Sel(p, _)] if p == &["meta", "l4proto"]) {
            super::sets::set_key_byteorder(&mut userdata, 1);
        }
        let concat = dts.len() > 1;
        let desc = crate::model::SetDesc {
            size: Some(super::sets::anon_size(&elements, data.is_some(), interval)),
            concat: if concat && interval {
                lens.iter().map(|l| *l as u32).collect()
            } else {
                vec![]
            },
            unknown: vec![],
        };
        let concat = dts.len() > 1;
        let is_map = data.is_some();
        // Numbered as the kernel would (push sends `__set%d` and lets it
        // pick): a rule with two anonymous sets must name each apart.
        let name = format!(
            "{}{}",
            if is_map { "__map" } else { "__set" },
            *self.set_counter
        );
        let mut flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT;
        if interval {
            flags |= NFT_SET_INTERVAL;
        }
        if is_map {
            flags |= NFT_SET_MAP;
        }
        if concat && interval {
            flags |= NFT_SET_CONCAT;
        }
        let (data_type, data_len) = data.map_or((None, None), MapData::type_len);
        *self.set_counter += 1;
        self.sets.push(Set {
            name: name.clone(),
            flags,
            key_type: key.type_id(),
            key_len: key.len() as u32,
            data_type,
            data_len,
            obj_type: None,
            policy: None,
            desc: Some(desc),
            timeout: None,
            gc_interval: None,
            userdata: Some(userdata),
            exprs: vec![],
            elements: elements.into(),
            handle: None,
            unknown: vec![],
        });
        Ok(name)
    }

    /// Makes the anonymous set just built an object map of `obj_type`.
    pub(super) fn make_objmap(&mut self, obj_type: u32) -> Option<String> {
        let s = self.sets.last_mut()?;
        s.flags = (s.flags & !NFT_SET_MAP) | NFT_SET_OBJECT;
        s.obj_type = Some(obj_type);
        s.data_type = None;
        s.data_len = None;
        let number = s.name.trim_start_matches(|c: char| !c.is_ascii_digit());
        s.name = format!("__objmap{number}");
        Some(s.name.clone())
    }

    /// Host-order keys of interval sets are looked up byte-swapped
    /// (see [`KeyLayout::swapped`]).
    pub(super) fn swap_for_interval(&mut self, set: &str, dts: &[Dtype], lens: &[usize], reg: u32) {
        let interval = match self.sets.last() {
            Some(s) if s.name == set => s.is_interval(),
            _ => self.table.set(set).is_some_and(|s| s.is_interval()),
        };
        let loads = std::mem::take(&mut self.concat_loads);
        if interval && dts.len() > 1 {
            // Each host-order part right after its load, last first so
            // the earlier positions stay valid.
            for (at, reg, dt, len, l4proto) in loads.into_iter().rev() {
                if super::sets::host_order_part(&dt, len) {
                    self.exprs
                        .insert(at, emit::byteorder(reg, len as u32, len as u32));
                } else if l4proto {
                    // Host order by its expression, though one byte: nft
                    // converts it as a 16-bit value.
                    self.exprs.insert(at, emit::byteorder(reg, 1, 2));
                }
            }
            return;
        }
        if interval
            && (KeyLayout {
                dts,
                lens,
                shift: 0,
            })
            .swapped()
        {
            self.exprs
                .push(emit::byteorder(reg, lens[0] as u32, lens[0] as u32));
        }
    }
}
