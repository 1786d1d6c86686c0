//! `flow_offload`: adds the flow to a flowtable (modelled; this kernel
//! lacks flowtables).

use crate::sys::*;

crate::attr_struct! {
    pub struct FlowOffload {
        table_name: String = NFTA_FLOW_TABLE_NAME,
    }
}
