//! The hook nest shared by base chains (`NFTA_HOOK_*`) and flowtables
//! (`NFTA_FLOWTABLE_HOOK_*`): number, priority, devices.

use crate::error::DecodeError;
use crate::model::Hook;
use crate::netlink::{Attr, Writer};
use crate::sys::*;

/// Attribute numbers of one hook flavour. Number and priority are 1 and 2
/// in both; flowtables have no single-device attribute.
pub(super) struct Layout {
    pub dev: Option<u16>,
    pub devs: u16,
}

pub(super) const CHAIN: Layout = Layout {
    dev: Some(NFTA_HOOK_DEV),
    devs: NFTA_HOOK_DEVS,
};
pub(super) const FLOWTABLE: Layout = Layout {
    dev: None,
    devs: NFTA_FLOWTABLE_HOOK_DEVS,
};

pub(super) fn decode(a: &Attr<'_>, layout: &Layout) -> Result<Hook, DecodeError> {
    let mut h = Hook {
        num: 0,
        priority: 0,
        devices: Vec::new(),
        device_list: false,
    };
    // The kernel dumps a single device both as DEV and inside DEVS: the
    // list, when present, is the whole truth.
    let mut single = None;
    for a in a.nested() {
        let a = a?;
        match a.kind() {
            NFTA_HOOK_HOOKNUM => h.num = a.u32_be()?,
            NFTA_HOOK_PRIORITY => h.priority = a.u32_be()? as i32,
            k if Some(k) == layout.dev => single = Some(a.str()?.to_owned()),
            k if k == layout.devs => {
                h.device_list = true;
                for d in a.nested() {
                    h.devices.push(d?.str()?.to_owned());
                }
            }
            k => {
                return Err(DecodeError::Invalid {
                    object: "hook",
                    field: "attribute type",
                    value: k as u64,
                })
            }
        }
    }
    if !h.device_list {
        h.devices.extend(single);
    }
    Ok(h)
}

pub(super) fn encode(w: &mut Writer, ty: u16, h: &Hook, layout: &Layout) {
    w.nest(ty, |w| {
        w.put_u32_be(NFTA_HOOK_HOOKNUM, h.num);
        w.put_u32_be(NFTA_HOOK_PRIORITY, h.priority as u32);
        match (layout.dev, h.devices.as_slice()) {
            (_, []) => {}
            (Some(dev), [one]) if !h.device_list => w.put_str(dev, one),
            _ => w.nest(layout.devs, |w| {
                for d in &h.devices {
                    w.put_str(NFTA_DEVICE_NAME, d);
                }
            }),
        }
    });
}
