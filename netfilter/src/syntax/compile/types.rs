//! Datatypes of the nft language: how a written value becomes register
//! bytes (width, byte order, symbolic names), and nft's type ids that sets
//! record as their key and data types.

use crate::proto::datatype::{self as dt, Symbol};
use crate::syntax::parser::parse_u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Ipv4,
    Ipv6,
    Ether,
    /// NUL-padded string (interface names); `bits` is the register width.
    Str,
    /// Flags: values combine with `,` or `|`.
    Bitmask,
    Verdict,
    /// Durations: `bits` wide, unit given by `scale` (ms per unit).
    Time,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dtype {
    pub name: &'static str,
    /// nft's type id, recorded in set key/data types.
    pub id: u32,
    pub bits: u32,
    /// Big-endian (network order) in the register; otherwise host order.
    pub be: bool,
    pub kind: Kind,
    pub syms: &'static [Symbol],
}

impl Dtype {
    pub const fn bits(mut self, bits: u32) -> Self {
        self.bits = bits;
        self
    }
    pub fn bytes(&self) -> usize {
        self.bits.div_ceil(8) as usize
    }
}

/// The compiler's view of one of nft's datatypes (`crate::proto::datatype`):
/// how values of it are parsed.
pub const fn from_proto(d: &'static dt::Datatype) -> Dtype {
    use dt::{ByteOrder, Format};
    let kind = match d.format {
        Format::Ipv4 => Kind::Ipv4,
        Format::Ipv6 => Kind::Ipv6,
        Format::Lladdr => Kind::Ether,
        Format::String => Kind::Str,
        Format::Bitmask => Kind::Bitmask,
        Format::Verdict => Kind::Verdict,
        Format::Time | Format::Date => Kind::Time,
        _ => Kind::Int,
    };
    Dtype {
        name: d.name,
        id: d.id,
        bits: d.bits,
        be: matches!(d.byteorder, ByteOrder::Big),
        kind,
        syms: d.symbols,
    }
}

pub const INTEGER: Dtype = from_proto(&dt::INTEGER).bits(32);
pub const BE_INT: Dtype = from_proto(&dt::INTEGER_BE).bits(32);
pub const STRING: Dtype = from_proto(&dt::STRING).bits(128);
pub const IFNAME: Dtype = from_proto(&dt::IFNAME);
pub const VERDICT: Dtype = from_proto(&dt::VERDICT);
pub const IPV4: Dtype = from_proto(&dt::IPV4_ADDR);
pub const IPV6: Dtype = from_proto(&dt::IPV6_ADDR);
pub const ETHER: Dtype = from_proto(&dt::ETHER_ADDR);
pub const ETHERTYPE: Dtype = from_proto(&dt::ETHER_TYPE);
pub const ARPOP: Dtype = from_proto(&dt::ARP_OP);
pub const INET_PROTO: Dtype = from_proto(&dt::INET_PROTO);
pub const INET_SERVICE: Dtype = from_proto(&dt::INET_SERVICE);
pub const ICMP_TYPE: Dtype = from_proto(&dt::ICMP_TYPE);
pub const TCP_FLAG: Dtype = from_proto(&dt::TCP_FLAG);
pub const DCCP_PKTTYPE: Dtype = from_proto(&dt::DCCP_PKTTYPE);
pub const MH_TYPE: Dtype = from_proto(&dt::MH_TYPE);
pub const TIME: Dtype = from_proto(&dt::TIME);
pub const MARK: Dtype = from_proto(&dt::MARK);
pub const IFINDEX: Dtype = from_proto(&dt::IFACE_INDEX);
pub const ARPHRD: Dtype = from_proto(&dt::ARPHRD);
pub const REALM: Dtype = from_proto(&dt::REALM);
pub const CLASSID: Dtype = from_proto(&dt::TC_HANDLE);
pub const UID: Dtype = from_proto(&dt::UID);
pub const GID: Dtype = from_proto(&dt::GID);
pub const CT_STATE: Dtype = from_proto(&dt::CT_STATE);
pub const CT_DIR: Dtype = from_proto(&dt::CT_DIR);
pub const CT_STATUS: Dtype = from_proto(&dt::CT_STATUS);
pub const ICMP6_TYPE: Dtype = from_proto(&dt::ICMPV6_TYPE);
pub const CT_LABEL: Dtype = from_proto(&dt::CT_LABEL);
pub const PKTTYPE: Dtype = from_proto(&dt::PKTTYPE);
pub const ICMP_CODE: Dtype = from_proto(&dt::ICMP_CODE);
pub const ICMPV6_CODE: Dtype = from_proto(&dt::ICMPV6_CODE);
pub const ICMPX_CODE: Dtype = from_proto(&dt::ICMPX_CODE);
pub const DEVGROUP: Dtype = from_proto(&dt::DEVGROUP);
pub const DSCP: Dtype = from_proto(&dt::DSCP);
pub const ECN: Dtype = from_proto(&dt::ECN);
pub const BOOLEAN: Dtype = from_proto(&dt::BOOLEAN);
pub const CT_EVENT: Dtype = from_proto(&dt::CT_EVENT);
pub const IGMP_TYPE: Dtype = from_proto(&dt::IGMP_TYPE);
pub const NFPROTO: Dtype = from_proto(&dt::NFPROTO);
pub const DAY: Dtype = from_proto(&dt::DAY);
pub const HOUR: Dtype = from_proto(&dt::TIME_HOUR);
pub const CGROUPV2: Dtype = from_proto(&dt::CGROUPV2);
pub const FIB_ADDR: Dtype = from_proto(&dt::FIB_ADDRTYPE);

pub fn by_name(name: &str) -> Option<Dtype> {
    Some(match name {
        "ipv4_addr" => IPV4,
        "ipv6_addr" => IPV6,
        "ether_addr" => ETHER,
        "inet_proto" => INET_PROTO,
        "inet_service" => INET_SERVICE,
        "mark" => MARK,
        "ifname" => IFNAME,
        "iface_index" => IFINDEX,
        "ether_type" => ETHERTYPE,
        "arp_op" => ARPOP,
        "icmp_type" => ICMP_TYPE,
        "icmpv6_type" => ICMP6_TYPE,
        "tcp_flag" => TCP_FLAG,
        "ct_state" => CT_STATE,
        "ct_status" => CT_STATUS,
        "ct_label" => CT_LABEL,
        "dscp" => DSCP,
        "ecn" => ECN,
        "verdict" => VERDICT,
        "uid" => UID,
        "gid" => GID,
        "nf_proto" => NFPROTO,
        "pkt_type" => PKTTYPE,
        "iface_type" => ARPHRD,
        "time" => TIME,
        "realm" => REALM,
        "classid" => CLASSID,
        "devgroup" => DEVGROUP,
        "integer" => INTEGER,
        "string" => STRING,
        "boolean" => BOOLEAN,
        "day" => DAY,
        "hour" => HOUR,
        "ct_dir" => CT_DIR,
        "mh_type" => MH_TYPE,
        "dccp_pkttype" => DCCP_PKTTYPE,
        "icmp_code" => ICMP_CODE,
        "icmpv6_code" => ICMPV6_CODE,
        "icmpx_code" => ICMPX_CODE,
        "igmp_type" => IGMP_TYPE,
        _ => return None,
    })
}

/// Parses a duration such as `30s`, `1h2m`, `4d23h59m59s`, `500ms`, `33`
/// (seconds) into milliseconds.
pub fn parse_duration_ms(w: &str) -> Option<u64> {
    if let Some(n) = parse_u64(w) {
        return n.checked_mul(1000);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    let b = w.as_bytes();
    let mut i = 0;
    let mut any = false;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_ascii_digit() {
            num.push(c);
            i += 1;
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let (mult, step) = if w[i..].starts_with("ms") {
            (1, 2)
        } else {
            match c {
                'd' => (86_400_000, 1),
                'h' => (3_600_000, 1),
                'm' => (60_000, 1),
                's' => (1000, 1),
                'w' => (7 * 86_400_000, 1),
                _ => return None,
            }
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
        i += step;
        any = true;
    }
    if !num.is_empty() || !any {
        return None;
    }
    Some(total)
}

pub fn parse_ipv4(w: &str) -> Option<[u8; 4]> {
    w.parse::<std::net::Ipv4Addr>().ok().map(|a| a.octets())
}

pub fn parse_ipv6(w: &str) -> Option<[u8; 16]> {
    let w = w
        .strip_prefix('[')
        .and_then(|w| w.strip_suffix(']'))
        .unwrap_or(w);
    w.parse::<std::net::Ipv6Addr>().ok().map(|a| a.octets())
}

pub fn parse_ether(w: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = w.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    parts
        .iter()
        .map(|p| {
            if p.len() <= 2 {
                u8::from_str_radix(p, 16).ok()
            } else {
                None
            }
        })
        .collect()
}

/// Integer as `len` bytes in the type's byte order; None if it does not fit.
pub fn int_bytes(v: u128, len: usize, be: bool) -> Option<Vec<u8>> {
    if len < 16 && v >> (len * 8) != 0 {
        return None;
    }
    let full = v.to_be_bytes();
    let mut out = full[16 - len.min(16)..].to_vec();
    if !be {
        out.reverse();
    }
    Some(out)
}
