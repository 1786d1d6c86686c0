//! Kernel constants, named as in the UAPI headers.
//!
//! `generated.rs` comes from `tools/gen-sys.py` (nf_tables.h, nfnetlink.h,
//! nfnetlink_log.h, nf_tables_compat.h); the few constants newer than
//! Debian bookworm's headers, or living in `linux/netlink.h`, are below.

mod generated;
pub use generated::*;

/// `NLMSG_MIN_TYPE`: nfnetlink's batch delimiters use the first free type.
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
/// Table flag added in Linux 6.9: an owned table survives its owner's exit.
pub const NFT_TABLE_F_PERSIST: u32 = 0x4;

pub const NLMSG_NOOP: u16 = 0x1;
pub const NLMSG_ERROR: u16 = 0x2;
pub const NLMSG_DONE: u16 = 0x3;
pub const NLMSG_OVERRUN: u16 = 0x4;

pub const NLM_F_REQUEST: u16 = 0x01;
pub const NLM_F_MULTI: u16 = 0x02;
pub const NLM_F_ACK: u16 = 0x04;
pub const NLM_F_ECHO: u16 = 0x08;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_ROOT: u16 = 0x100;
pub const NLM_F_MATCH: u16 = 0x200;
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
/// Set on NLMSG_ERROR when the request was not echoed back (NETLINK_CAP_ACK).
pub const NLM_F_CAPPED: u16 = 0x100;
/// Set on NLMSG_ERROR when extended-ack TLVs follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;

pub const NLMSGERR_ATTR_MSG: u16 = 1;
pub const NLMSGERR_ATTR_OFFS: u16 = 2;
pub const NLMSGERR_ATTR_COOKIE: u16 = 3;
pub const NLMSGERR_ATTR_POLICY: u16 = 4;
pub const NLMSGERR_ATTR_MISS_TYPE: u16 = 5;
pub const NLMSGERR_ATTR_MISS_NEST: u16 = 6;

pub const SOL_NETLINK: i32 = 270;
pub const NETLINK_ADD_MEMBERSHIP: i32 = 1;
pub const NETLINK_CAP_ACK: i32 = 10;
pub const NETLINK_EXT_ACK: i32 = 11;
pub const NETLINK_GET_STRICT_CHK: i32 = 12;

pub const NETLINK_NETFILTER: isize = 12;

/// Message type of an nf_tables message: subsystem in the high byte.
pub const fn nft_msg_type(msg: u32) -> u16 {
    ((NFNL_SUBSYS_NFTABLES << 8) | msg) as u16
}

// Messages added after Debian bookworm's 6.1 headers (Linux 6.3+).
pub const NFT_MSG_DESTROYTABLE: u32 = 26;
pub const NFT_MSG_DESTROYCHAIN: u32 = 27;
pub const NFT_MSG_DESTROYRULE: u32 = 28;
pub const NFT_MSG_DESTROYSET: u32 = 29;
pub const NFT_MSG_DESTROYSETELEM: u32 = 30;
pub const NFT_MSG_DESTROYOBJ: u32 = 31;
pub const NFT_MSG_DESTROYFLOWTABLE: u32 = 32;
pub const NFT_MSG_GETSETELEM_RESET: u32 = 33;

// `inner` expression attributes (Linux 6.2+, after bookworm's headers).
pub const NFTA_INNER_UNSPEC: u16 = 0;
pub const NFTA_INNER_NUM: u16 = 1;
pub const NFTA_INNER_TYPE: u16 = 2;
pub const NFTA_INNER_FLAGS: u16 = 3;
pub const NFTA_INNER_HDRSIZE: u16 = 4;
pub const NFTA_INNER_EXPR: u16 = 5;
/// `enum nft_inner_type` and the `inner` flags (Linux 6.2+).
pub const NFT_INNER_UNSPEC: u32 = 0;
pub const NFT_INNER_VXLAN: u32 = 1;
pub const NFT_INNER_GENEVE: u32 = 2;
pub const NFT_INNER_HDRSIZE: u32 = 1 << 0;
pub const NFT_INNER_LL: u32 = 1 << 1;
pub const NFT_INNER_NH: u32 = 1 << 2;
pub const NFT_INNER_TH: u32 = 1 << 3;

// Register-to-register boolean ops of `bitwise` (Linux 6.13+).
pub const NFT_BITWISE_AND: u32 = 3;
pub const NFT_BITWISE_OR: u32 = 4;
pub const NFT_BITWISE_XOR: u32 = 5;
pub const NFTA_BITWISE_SREG2: u16 = 8;

/// `meta broute` (Linux 6.5+).
pub const NFT_META_BRI_BROUTE: u32 = 37;
/// Payload base of the tunnel header, for `inner` (Linux 6.2+).
pub const NFT_PAYLOAD_TUN_HEADER: u32 = 4;

// Set attributes added after Debian bookworm's headers (Linux 6.16+),
// dumped by the kernel and refused on input.
/// The set's backend (kernel's; never sent).
pub const NFTA_SET_TYPE: u16 = 19;
/// The number of elements in the set (kernel's; never sent).
pub const NFTA_SET_COUNT: u16 = 20;

/// nft's name for an `NFPROTO_*` family: the one table of family names,
/// read by [`model::Family`](crate::model::Family) and by error texts
/// (which name families the kernel reports, known or not).
pub fn family_name(family: u8) -> &'static str {
    match family as u32 {
        NFPROTO_UNSPEC => "unspec",
        NFPROTO_INET => "inet",
        NFPROTO_IPV4 => "ip",
        NFPROTO_ARP => "arp",
        NFPROTO_NETDEV => "netdev",
        NFPROTO_BRIDGE => "bridge",
        NFPROTO_IPV6 => "ip6",
        _ => "family?",
    }
}
