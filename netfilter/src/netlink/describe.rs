//! Names a request message the way a user thinks of it — `add rule`,
//! `inet fw input` — so an error can say which operation failed on what.
//! Derived from the message bytes only when an error needs it, so batches
//! carry no per-message descriptions.

use super::attr::Attrs;
use super::msg::Msg;
use crate::sys::{self, *};

/// The operation's name, in nft's words.
pub fn op_name(msg: &Msg<'_>) -> &'static str {
    if msg.ty == NFNL_MSG_BATCH_BEGIN {
        return "begin transaction";
    }
    if msg.ty == NFNL_MSG_BATCH_END {
        return "commit transaction";
    }
    let Some(m) = msg.nft_msg() else {
        return "request";
    };
    let insert = msg.flags & sys::NLM_F_APPEND == 0;
    let replace = msg.flags & sys::NLM_F_REPLACE != 0;
    match m {
        NFT_MSG_NEWTABLE => "add table",
        NFT_MSG_DELTABLE => "delete table",
        NFT_MSG_DESTROYTABLE => "destroy table",
        NFT_MSG_GETTABLE => "list table",
        NFT_MSG_NEWCHAIN => "add chain",
        NFT_MSG_DELCHAIN => "delete chain",
        NFT_MSG_DESTROYCHAIN => "destroy chain",
        NFT_MSG_GETCHAIN => "list chain",
        NFT_MSG_NEWRULE if replace => "replace rule",
        NFT_MSG_NEWRULE if insert => "insert rule",
        NFT_MSG_NEWRULE => "add rule",
        NFT_MSG_DELRULE => "delete rule",
        NFT_MSG_DESTROYRULE => "destroy rule",
        NFT_MSG_GETRULE => "list rules",
        NFT_MSG_NEWSET => "add set",
        NFT_MSG_DELSET => "delete set",
        NFT_MSG_DESTROYSET => "destroy set",
        NFT_MSG_GETSET => "list set",
        NFT_MSG_NEWSETELEM => "add element",
        NFT_MSG_DELSETELEM => "delete element",
        NFT_MSG_DESTROYSETELEM => "destroy element",
        NFT_MSG_GETSETELEM => "list elements",
        NFT_MSG_NEWOBJ => "add object",
        NFT_MSG_DELOBJ => "delete object",
        NFT_MSG_DESTROYOBJ => "destroy object",
        NFT_MSG_GETOBJ => "list objects",
        NFT_MSG_NEWFLOWTABLE => "add flowtable",
        NFT_MSG_DELFLOWTABLE => "delete flowtable",
        NFT_MSG_DESTROYFLOWTABLE => "destroy flowtable",
        NFT_MSG_GETGEN => "read generation",
        _ => "nf_tables request",
    }
}

/// `FAMILY TABLE [CHAIN|@SET|OBJECT] [handle N]` for an nf_tables request.
pub fn object_name(msg: &Msg<'_>) -> String {
    let Some(m) = msg.nft_msg() else {
        return String::new();
    };
    let Ok((family, attrs)) = msg.nfgen() else {
        return String::new();
    };
    // (table attr, second name attr, prefix for the second name, handle attr)
    let (t, n, prefix, h) = match m {
        NFT_MSG_NEWTABLE | NFT_MSG_DELTABLE | NFT_MSG_DESTROYTABLE | NFT_MSG_GETTABLE => {
            (NFTA_TABLE_NAME, 0, "", NFTA_TABLE_HANDLE)
        }
        NFT_MSG_NEWCHAIN | NFT_MSG_DELCHAIN | NFT_MSG_DESTROYCHAIN | NFT_MSG_GETCHAIN => {
            (NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, "", NFTA_CHAIN_HANDLE)
        }
        NFT_MSG_NEWRULE | NFT_MSG_DELRULE | NFT_MSG_DESTROYRULE | NFT_MSG_GETRULE => {
            (NFTA_RULE_TABLE, NFTA_RULE_CHAIN, "", NFTA_RULE_HANDLE)
        }
        NFT_MSG_NEWSET | NFT_MSG_DELSET | NFT_MSG_DESTROYSET | NFT_MSG_GETSET => {
            (NFTA_SET_TABLE, NFTA_SET_NAME, "@", NFTA_SET_HANDLE)
        }
        NFT_MSG_NEWSETELEM | NFT_MSG_DELSETELEM | NFT_MSG_DESTROYSETELEM | NFT_MSG_GETSETELEM => {
            (NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, "@", 0)
        }
        NFT_MSG_NEWOBJ | NFT_MSG_DELOBJ | NFT_MSG_DESTROYOBJ | NFT_MSG_GETOBJ => {
            (NFTA_OBJ_TABLE, NFTA_OBJ_NAME, "", NFTA_OBJ_HANDLE)
        }
        NFT_MSG_NEWFLOWTABLE | NFT_MSG_DELFLOWTABLE | NFT_MSG_DESTROYFLOWTABLE => (
            NFTA_FLOWTABLE_TABLE,
            NFTA_FLOWTABLE_NAME,
            "",
            NFTA_FLOWTABLE_HANDLE,
        ),
        _ => return family_name(family).to_owned(),
    };
    let (mut table, mut name, mut handle) = (None, None, None);
    for a in attrs.flatten() {
        match a.kind() {
            k if k == t => table = a.str().ok(),
            k if k == n && n != 0 => name = a.str().ok(),
            k if k == h && h != 0 => handle = a.u64_be().ok(),
            _ => {}
        }
    }
    let mut out = format!("{} {}", family_name(family), table.unwrap_or("?"));
    if let Some(n) = name {
        out.push(' ');
        out.push_str(prefix);
        out.push_str(n);
    }
    if let Some(h) = handle {
        out.push_str(&format!(" handle {h}"));
    }
    out
}

/// Attributes of a request that an error offset points into, for tests and
/// diagnostics: the top-level attribute type containing byte `offset`.
pub fn attr_at_offset(msg_bytes: &[u8], offset: u32) -> Option<u16> {
    let start = super::attr::NLMSG_HDRLEN + super::attr::NFGENMSG_LEN;
    let mut pos = start;
    for a in Attrs::new(msg_bytes.get(start..)?).flatten() {
        let len = super::attr::align4(4 + a.payload().len());
        if (pos..pos + len).contains(&(offset as usize)) {
            return Some(a.kind());
        }
        pos += len;
    }
    None
}
