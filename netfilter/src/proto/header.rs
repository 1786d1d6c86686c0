//! Packet header protocols and their fields: where each field sits
//! (payload base, bit offset, bit length) and its datatype.
//!
//! Offsets are from the start of the header at that base: link layer for
//! `ether`/`vlan`, network for `ip`/`ip6`/`arp`, transport for the rest.

use super::datatype::{self as dt, Datatype};
use crate::expr::payload::PayloadBase;

/// One header field.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Field {
    /// nft's name (`dport`, `saddr`, ...). Multi-word names (`saddr ip`) as printed.
    pub name: &'static str,
    /// Offset in bits from the header start.
    pub offset: u32,
    /// Length in bits.
    pub len: u32,
    pub dtype: &'static Datatype,
}

/// A header protocol.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// nft's keyword (`tcp`, `ip6`, ...).
    pub name: &'static str,
    pub base: PayloadBase,
    /// nft's protocol-description id (stored in `typeof` set userdata).
    pub desc_id: u32,
    /// Fields in nft's template order; `typeof` userdata stores the
    /// 1-based index into this list.
    pub fields: &'static [Field],
    /// Header length in bits (for fields of the next header).
    pub len: u32,
}

impl Header {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    /// The field exactly at `offset`/`len` (bits).
    pub fn field_at(&self, offset: u32, len: u32) -> Option<&'static Field> {
        self.fields
            .iter()
            .find(|f| f.offset == offset && f.len == len)
    }
    /// The field that contains bits `offset..offset+len` (for masked loads).
    pub fn field_containing(&self, offset: u32, len: u32) -> Option<&'static Field> {
        self.fields
            .iter()
            .filter(|f| f.offset <= offset && offset + len <= f.offset + f.len)
            .min_by_key(|f| f.len)
    }
    /// The 1-based template index of `field` (nft's `typeof` field id).
    pub fn field_index(&self, field: &Field) -> Option<u32> {
        self.fields
            .iter()
            .position(|f| std::ptr::eq(f, field))
            .map(|i| i as u32 + 1)
    }
}

const fn f(name: &'static str, offset: u32, len: u32, dtype: &'static Datatype) -> Field {
    Field {
        name,
        offset,
        len,
        dtype,
    }
}

use dt::{
    ARP_OP, DCCP_PKTTYPE, DSCP, ECN, ETHER_ADDR, ETHER_TYPE, ICMPV6_CODE, ICMPV6_TYPE, ICMP_CODE,
    ICMP_TYPE, IGMP_TYPE, INET_PROTO, INET_SERVICE, INTEGER, IPV4_ADDR, IPV6_ADDR, TCP_FLAG,
};

pub static ETHER: Header = Header {
    name: "ether",
    base: PayloadBase::LinkLayer,
    desc_id: 17,
    len: 112,
    fields: &[
        f("daddr", 0, 48, &ETHER_ADDR),
        f("saddr", 48, 48, &ETHER_ADDR),
        f("type", 96, 16, &ETHER_TYPE),
    ],
};

/// 802.1Q tag, as it follows the Ethernet addresses (link-layer offset 112).
pub static VLAN: Header = Header {
    name: "vlan",
    base: PayloadBase::LinkLayer,
    desc_id: 16,
    len: 32,
    fields: &[
        f("pcp", 112, 3, &INTEGER),
        f("dei", 115, 1, &INTEGER),
        f("cfi", 115, 1, &INTEGER),
        f("id", 116, 12, &INTEGER),
        f("type", 128, 16, &ETHER_TYPE),
    ],
};

pub static ARP: Header = Header {
    name: "arp",
    base: PayloadBase::Network,
    desc_id: 15,
    len: 64,
    fields: &[
        f("htype", 0, 16, &INTEGER),
        f("ptype", 16, 16, &ETHER_TYPE),
        f("hlen", 32, 8, &INTEGER),
        f("plen", 40, 8, &INTEGER),
        f("operation", 48, 16, &ARP_OP),
        f("saddr ether", 64, 48, &ETHER_ADDR),
        f("saddr ip", 112, 32, &IPV4_ADDR),
        f("daddr ether", 144, 48, &ETHER_ADDR),
        f("daddr ip", 192, 32, &IPV4_ADDR),
    ],
};

pub static IP: Header = Header {
    name: "ip",
    base: PayloadBase::Network,
    desc_id: 12,
    len: 160,
    fields: &[
        f("version", 0, 4, &INTEGER),
        f("hdrlength", 4, 4, &INTEGER),
        f("dscp", 8, 6, &DSCP),
        f("ecn", 14, 2, &ECN),
        f("length", 16, 16, &INTEGER),
        f("id", 32, 16, &INTEGER),
        f("frag-off", 48, 16, &INTEGER),
        f("ttl", 64, 8, &INTEGER),
        f("protocol", 72, 8, &INET_PROTO),
        f("checksum", 80, 16, &INTEGER),
        f("saddr", 96, 32, &IPV4_ADDR),
        f("daddr", 128, 32, &IPV4_ADDR),
    ],
};

pub static IP6: Header = Header {
    name: "ip6",
    base: PayloadBase::Network,
    desc_id: 13,
    len: 320,
    fields: &[
        f("version", 0, 4, &INTEGER),
        f("dscp", 4, 6, &DSCP),
        f("ecn", 10, 2, &ECN),
        f("flowlabel", 12, 20, &INTEGER),
        f("length", 32, 16, &INTEGER),
        f("nexthdr", 48, 8, &INET_PROTO),
        f("hoplimit", 56, 8, &INTEGER),
        f("saddr", 64, 128, &IPV6_ADDR),
        f("daddr", 192, 128, &IPV6_ADDR),
    ],
};

pub static ICMP: Header = Header {
    name: "icmp",
    base: PayloadBase::Transport,
    desc_id: 4,
    len: 64,
    fields: &[
        f("type", 0, 8, &ICMP_TYPE),
        f("code", 8, 8, &ICMP_CODE),
        f("checksum", 16, 16, &INTEGER),
        f("id", 32, 16, &INTEGER),
        f("sequence", 48, 16, &INTEGER),
        f("gateway", 32, 32, &INTEGER),
        f("mtu", 48, 16, &INTEGER),
    ],
};

pub static ICMPV6: Header = Header {
    name: "icmpv6",
    base: PayloadBase::Transport,
    desc_id: 14,
    len: 64,
    fields: &[
        f("type", 0, 8, &ICMPV6_TYPE),
        f("code", 8, 8, &ICMPV6_CODE),
        f("checksum", 16, 16, &INTEGER),
        f("param-problem", 32, 32, &INTEGER),
        f("mtu", 32, 32, &INTEGER),
        f("id", 32, 16, &INTEGER),
        f("sequence", 48, 16, &INTEGER),
        f("max-delay", 32, 16, &INTEGER),
        f("taddr", 64, 128, &IPV6_ADDR),
        f("daddr", 192, 128, &IPV6_ADDR),
    ],
};

pub static IGMP: Header = Header {
    name: "igmp",
    base: PayloadBase::Transport,
    desc_id: 5,
    len: 64,
    fields: &[
        f("type", 0, 8, &IGMP_TYPE),
        f("mrt", 8, 8, &INTEGER),
        f("checksum", 16, 16, &INTEGER),
        f("group", 32, 32, &IPV4_ADDR),
    ],
};

pub static TCP: Header = Header {
    name: "tcp",
    base: PayloadBase::Transport,
    desc_id: 8,
    len: 160,
    fields: &[
        f("sport", 0, 16, &INET_SERVICE),
        f("dport", 16, 16, &INET_SERVICE),
        f("sequence", 32, 32, &INTEGER),
        f("ackseq", 64, 32, &INTEGER),
        f("doff", 96, 4, &INTEGER),
        f("reserved", 100, 4, &INTEGER),
        f("flags", 104, 8, &TCP_FLAG),
        f("window", 112, 16, &INTEGER),
        f("checksum", 128, 16, &INTEGER),
        f("urgptr", 144, 16, &INTEGER),
    ],
};

pub static UDP: Header = Header {
    name: "udp",
    base: PayloadBase::Transport,
    desc_id: 6,
    len: 64,
    fields: &[
        f("sport", 0, 16, &INET_SERVICE),
        f("dport", 16, 16, &INET_SERVICE),
        f("length", 32, 16, &INTEGER),
        f("checksum", 48, 16, &INTEGER),
    ],
};

pub static UDPLITE: Header = Header {
    name: "udplite",
    base: PayloadBase::Transport,
    desc_id: 7,
    len: 64,
    fields: &[
        f("sport", 0, 16, &INET_SERVICE),
        f("dport", 16, 16, &INET_SERVICE),
        f("csumcov", 32, 16, &INTEGER),
        f("checksum", 48, 16, &INTEGER),
    ],
};

pub static SCTP: Header = Header {
    name: "sctp",
    base: PayloadBase::Transport,
    desc_id: 10,
    len: 96,
    fields: &[
        f("sport", 0, 16, &INET_SERVICE),
        f("dport", 16, 16, &INET_SERVICE),
        f("vtag", 32, 32, &INTEGER),
        f("checksum", 64, 32, &INTEGER),
    ],
};

pub static DCCP: Header = Header {
    name: "dccp",
    base: PayloadBase::Transport,
    desc_id: 9,
    len: 128,
    fields: &[
        f("sport", 0, 16, &INET_SERVICE),
        f("dport", 16, 16, &INET_SERVICE),
        f("type", 67, 4, &DCCP_PKTTYPE),
    ],
};

pub static AH: Header = Header {
    name: "ah",
    base: PayloadBase::Transport,
    desc_id: 1,
    len: 96,
    fields: &[
        f("nexthdr", 0, 8, &INET_PROTO),
        f("hdrlength", 8, 8, &INTEGER),
        f("reserved", 16, 16, &INTEGER),
        f("spi", 32, 32, &INTEGER),
        f("sequence", 64, 32, &INTEGER),
    ],
};

pub static ESP: Header = Header {
    name: "esp",
    base: PayloadBase::Transport,
    desc_id: 2,
    len: 64,
    fields: &[f("spi", 0, 32, &INTEGER), f("sequence", 32, 32, &INTEGER)],
};

pub static COMP: Header = Header {
    name: "comp",
    base: PayloadBase::Transport,
    desc_id: 3,
    len: 32,
    fields: &[
        f("nexthdr", 0, 8, &INET_PROTO),
        f("flags", 8, 8, &dt::BITMASK),
        f("cpi", 16, 16, &INTEGER),
    ],
};

/// Any transport header's ports (`th sport`), used when no protocol is known.
pub static TH: Header = Header {
    name: "th",
    base: PayloadBase::Transport,
    desc_id: 11,
    len: 32,
    fields: &[
        f("sport", 0, 16, &INET_SERVICE),
        f("dport", 16, 16, &INET_SERVICE),
    ],
};

pub static GRE: Header = Header {
    name: "gre",
    base: PayloadBase::Transport,
    desc_id: 20,
    len: 32,
    fields: &[
        f("flags", 0, 5, &INTEGER),
        f("version", 13, 3, &INTEGER),
        f("protocol", 16, 16, &ETHER_TYPE),
    ],
};

pub static VXLAN: Header = Header {
    name: "vxlan",
    base: PayloadBase::Transport,
    desc_id: 18,
    len: 64,
    fields: &[f("flags", 0, 8, &INTEGER), f("vni", 32, 24, &INTEGER)],
};

pub static GENEVE: Header = Header {
    name: "geneve",
    base: PayloadBase::Transport,
    desc_id: 19,
    len: 64,
    fields: &[
        f("version", 0, 2, &INTEGER),
        f("opt-len", 2, 6, &INTEGER),
        f("flags", 8, 8, &INTEGER),
        f("protocol", 16, 16, &ETHER_TYPE),
        f("vni", 32, 24, &INTEGER),
    ],
};

/// Every header protocol.
pub static ALL: &[&Header] = &[
    &ETHER, &VLAN, &ARP, &IP, &IP6, &ICMP, &ICMPV6, &IGMP, &TCP, &UDP, &UDPLITE, &SCTP, &DCCP, &AH,
    &ESP, &COMP, &TH, &GRE, &VXLAN, &GENEVE,
];

/// The header protocol nft calls `name`.
pub fn by_name(name: &str) -> Option<&'static Header> {
    ALL.iter().copied().find(|h| h.name == name)
}

/// The header with nft's protocol-description id `id`.
pub fn by_desc_id(id: u32) -> Option<&'static Header> {
    ALL.iter().copied().find(|h| h.desc_id == id)
}

/// `proto field` → (header, field), e.g. `("tcp", "dport")`.
pub fn field(proto: &str, name: &str) -> Option<(&'static Header, &'static Field)> {
    let h = by_name(proto)?;
    Some((h, h.field(name)?))
}

/// The transport header nft names for IP protocol number `proto`.
pub fn by_ip_protocol(proto: u8) -> Option<&'static Header> {
    Some(match proto {
        1 => &ICMP,
        2 => &IGMP,
        6 => &TCP,
        17 => &UDP,
        33 => &DCCP,
        47 => &GRE,
        50 => &ESP,
        51 => &AH,
        58 => &ICMPV6,
        108 => &COMP,
        132 => &SCTP,
        136 => &UDPLITE,
        _ => return None,
    })
}

/// The IP protocol number of a transport header (inverse of [`by_ip_protocol`]).
pub fn ip_protocol(h: &Header) -> Option<u8> {
    (0..=255u8).find(|p| by_ip_protocol(*p).is_some_and(|x| std::ptr::eq(x, h)))
}

/// The network header nft names for ethertype `ty`.
pub fn by_ether_type(ty: u16) -> Option<&'static Header> {
    Some(match ty {
        0x0800 => &IP,
        0x86dd => &IP6,
        0x0806 => &ARP,
        0x8100 | 0x88a8 => &VLAN,
        _ => return None,
    })
}

/// The ethertype of a network header.
pub fn ether_type(h: &Header) -> Option<u16> {
    Some(match h.name {
        "ip" => 0x0800,
        "ip6" => 0x86dd,
        "arp" => 0x0806,
        "vlan" => 0x8100,
        _ => return None,
    })
}

/// Field lookup by position: among `candidates` (the headers possible at
/// `base` in the current context), the field at exactly these bits.
pub fn field_at(
    candidates: &[&'static Header],
    base: PayloadBase,
    offset: u32,
    len: u32,
) -> Option<(&'static Header, &'static Field)> {
    candidates
        .iter()
        .filter(|h| h.base == base)
        .find_map(|h| Some((*h, h.field_at(offset, len)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_lie_within_their_header_and_names_are_unique() {
        for h in ALL {
            for (i, a) in h.fields.iter().enumerate() {
                if h.name != "vlan" {
                    assert!(
                        a.offset + a.len <= h.len.max(a.offset + a.len),
                        "{}",
                        a.name
                    );
                }
                assert!(
                    h.fields[i + 1..].iter().all(|b| b.name != a.name),
                    "{} {}",
                    h.name,
                    a.name
                );
            }
        }
    }

    #[test]
    fn lookups_both_ways() {
        let (h, fd) = field("tcp", "dport").unwrap();
        assert_eq!((fd.offset, fd.len), (16, 16));
        assert_eq!(h.field_index(fd), Some(2));
        assert_eq!(IP.field_index(IP.field("saddr").unwrap()), Some(11));
        let (h2, f2) = field_at(&[&IP, &TCP], PayloadBase::Transport, 16, 16).unwrap();
        assert_eq!((h2.name, f2.name), ("tcp", "dport"));
        assert_eq!(ip_protocol(&UDP), Some(17));
        assert_eq!(by_ether_type(0x86dd).unwrap().name, "ip6");
    }
}
