//! `meta` and `ct` keys: nft's names, kernel key numbers, datatypes.

use super::datatype::{self as dt, Datatype};
use crate::sys::*;

/// A meta or ct key.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// nft's name (`mark`, `l4proto`, `proto-dst`, ...).
    pub name: &'static str,
    /// `NFT_META_*` / `NFT_CT_*`.
    pub key: u32,
    pub dtype: &'static Datatype,
    /// Size in bits of the register value (0: depends on the context,
    /// e.g. `ct saddr` is 4 or 16 bytes).
    pub bits: u32,
    /// Printed without the `meta ` prefix (`iifname`, `mark` is not).
    pub unqualified: bool,
}

const fn k(
    name: &'static str,
    key: u32,
    dtype: &'static Datatype,
    bits: u32,
    unqualified: bool,
) -> Key {
    Key {
        name,
        key,
        dtype,
        bits,
        unqualified,
    }
}

/// Meta keys, in nft's order.
pub static META: &[Key] = &[
    k("length", NFT_META_LEN, &dt::INTEGER, 32, false),
    k("protocol", NFT_META_PROTOCOL, &dt::ETHER_TYPE, 16, false),
    k("priority", NFT_META_PRIORITY, &dt::TC_HANDLE, 32, false),
    k("mark", NFT_META_MARK, &dt::MARK, 32, false),
    k("iif", NFT_META_IIF, &dt::IFACE_INDEX, 32, true),
    k("oif", NFT_META_OIF, &dt::IFACE_INDEX, 32, true),
    k("iifname", NFT_META_IIFNAME, &dt::IFNAME, 128, true),
    k("oifname", NFT_META_OIFNAME, &dt::IFNAME, 128, true),
    k("iiftype", NFT_META_IIFTYPE, &dt::ARPHRD, 16, false),
    k("oiftype", NFT_META_OIFTYPE, &dt::ARPHRD, 16, false),
    k("skuid", NFT_META_SKUID, &dt::UID, 32, false),
    k("skgid", NFT_META_SKGID, &dt::GID, 32, false),
    k("nftrace", NFT_META_NFTRACE, &dt::INTEGER, 8, false),
    k("rtclassid", NFT_META_RTCLASSID, &dt::REALM, 32, false),
    k("secmark", NFT_META_SECMARK, &dt::INTEGER, 32, false),
    k("nfproto", NFT_META_NFPROTO, &dt::NFPROTO, 8, false),
    k("l4proto", NFT_META_L4PROTO, &dt::INET_PROTO, 8, false),
    k("ibrname", NFT_META_BRI_IIFNAME, &dt::IFNAME, 128, false),
    k("obrname", NFT_META_BRI_OIFNAME, &dt::IFNAME, 128, false),
    k("pkttype", NFT_META_PKTTYPE, &dt::PKTTYPE, 8, false),
    k("cpu", NFT_META_CPU, &dt::INTEGER, 32, false),
    k("iifgroup", NFT_META_IIFGROUP, &dt::DEVGROUP, 32, true),
    k("oifgroup", NFT_META_OIFGROUP, &dt::DEVGROUP, 32, true),
    k("cgroup", NFT_META_CGROUP, &dt::INTEGER, 32, false),
    k("random", NFT_META_PRANDOM, &dt::INTEGER_BE, 32, false),
    k("ipsec", NFT_META_SECPATH, &dt::BOOLEAN, 8, false),
    k("iifkind", NFT_META_IIFKIND, &dt::IFNAME, 128, false),
    k("oifkind", NFT_META_OIFKIND, &dt::IFNAME, 128, false),
    k("ibrpvid", NFT_META_BRI_IIFPVID, &dt::INTEGER, 16, false),
    k(
        "ibrvproto",
        NFT_META_BRI_IIFVPROTO,
        &dt::ETHER_TYPE,
        16,
        false,
    ),
    k("time", NFT_META_TIME_NS, &dt::TIME_DATE, 64, false),
    k("day", NFT_META_TIME_DAY, &dt::DAY, 8, false),
    k("hour", NFT_META_TIME_HOUR, &dt::TIME_HOUR, 32, false),
    k("sdif", NFT_META_SDIF, &dt::IFACE_INDEX, 32, false),
    k("sdifname", NFT_META_SDIFNAME, &dt::IFNAME, 128, false),
    k("broute", 37, &dt::BOOLEAN, 8, false),
];

/// Conntrack keys, in nft's order.
pub static CT: &[Key] = &[
    k("state", NFT_CT_STATE, &dt::CT_STATE, 32, false),
    k("direction", NFT_CT_DIRECTION, &dt::CT_DIR, 8, false),
    k("status", NFT_CT_STATUS, &dt::CT_STATUS, 32, false),
    k("mark", NFT_CT_MARK, &dt::MARK, 32, false),
    k("secmark", NFT_CT_SECMARK, &dt::INTEGER, 32, false),
    k("expiration", NFT_CT_EXPIRATION, &dt::TIME, 32, false),
    k("helper", NFT_CT_HELPER, &dt::STRING, 128, false),
    k("l3proto", NFT_CT_L3PROTOCOL, &dt::NFPROTO, 8, false),
    k("saddr", NFT_CT_SRC, &dt::INVALID, 0, false),
    k("daddr", NFT_CT_DST, &dt::INVALID, 0, false),
    k("protocol", NFT_CT_PROTOCOL, &dt::INET_PROTO, 8, false),
    k("proto-src", NFT_CT_PROTO_SRC, &dt::INET_SERVICE, 16, false),
    k("proto-dst", NFT_CT_PROTO_DST, &dt::INET_SERVICE, 16, false),
    k("label", NFT_CT_LABELS, &dt::CT_LABEL, 128, false),
    k("packets", NFT_CT_PKTS, &dt::INTEGER, 64, false),
    k("bytes", NFT_CT_BYTES, &dt::INTEGER, 64, false),
    k("avgpkt", NFT_CT_AVGPKT, &dt::INTEGER, 64, false),
    k("zone", NFT_CT_ZONE, &dt::INTEGER, 16, false),
    k("event", NFT_CT_EVENTMASK, &dt::CT_EVENT, 32, false),
    k("ip saddr", NFT_CT_SRC_IP, &dt::IPV4_ADDR, 32, false),
    k("ip daddr", NFT_CT_DST_IP, &dt::IPV4_ADDR, 32, false),
    k("ip6 saddr", NFT_CT_SRC_IP6, &dt::IPV6_ADDR, 128, false),
    k("ip6 daddr", NFT_CT_DST_IP6, &dt::IPV6_ADDR, 128, false),
    k("id", NFT_CT_ID, &dt::INTEGER_BE, 32, false),
];

/// The meta key called `name`.
pub fn meta_by_name(name: &str) -> Option<&'static Key> {
    META.iter().find(|m| m.name == name)
}
/// The meta key with kernel number `key`.
pub fn meta_by_key(key: u32) -> Option<&'static Key> {
    META.iter().find(|m| m.key == key)
}
/// The ct key called `name`.
pub fn ct_by_name(name: &str) -> Option<&'static Key> {
    CT.iter().find(|m| m.name == name)
}
/// The ct key with kernel number `key`.
pub fn ct_by_key(key: u32) -> Option<&'static Key> {
    CT.iter().find(|m| m.key == key)
}

/// `NFT_CT_DIRECTION` values as nft prints them in `ct original saddr`.
pub fn ct_dir_name(dir: u8) -> Option<&'static str> {
    dt::CT_DIR.symbol(dir as u64)
}

/// Conntrack states of a protocol, in kernel attribute order (type - 1),
/// with the kernel's default timeout in seconds (measured: what a new
/// timeout object holds for the states it does not set; nft lists only
/// the states set to something else).
pub fn ct_timeout_states(l4: u8) -> &'static [(&'static str, u32)] {
    match l4 {
        6 => &[
            ("syn_sent", 120),
            ("syn_recv", 60),
            ("established", 432000),
            ("fin_wait", 120),
            ("close_wait", 60),
            ("last_ack", 30),
            ("time_wait", 120),
            ("close", 10),
            ("syn_sent2", 120),
            ("retrans", 300),
            ("unack", 300),
        ],
        17 => &[("unreplied", 30), ("replied", 120)],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for m in META {
            assert_eq!(meta_by_key(m.key).unwrap().name, m.name);
            assert_eq!(meta_by_name(m.name).unwrap().key, m.key);
        }
        for c in CT {
            assert_eq!(ct_by_key(c.key).unwrap().name, c.name);
        }
        assert_eq!(ct_by_name("mark").unwrap().dtype.name, "mark");
    }
}
