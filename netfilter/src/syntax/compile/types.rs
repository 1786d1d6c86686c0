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
    pub const fn new(name: &'static str, id: u32, bits: u32, be: bool, kind: Kind) -> Self {
        Dtype {
            name,
            id,
            bits,
            be,
            kind,
            syms: &[],
        }
    }
    pub const fn sym(mut self, syms: &'static [Symbol]) -> Self {
        self.syms = syms;
        self
    }
    pub const fn bits(mut self, bits: u32) -> Self {
        self.bits = bits;
        self
    }
    pub fn bytes(&self) -> usize {
        self.bits.div_ceil(8) as usize
    }
}

/// Symbolic constants known only to the compiler (service names, `root`).
const fn sy(name: &'static str, value: u64) -> Symbol {
    Symbol { name, value }
}

const fn d(name: &'static str, id: u32, bits: u32, be: bool, kind: Kind) -> Dtype {
    Dtype::new(name, id, bits, be, kind)
}

pub const INTEGER: Dtype = d("integer", 4, 32, false, Kind::Int);
pub const BE_INT: Dtype = d("integer", 4, 32, true, Kind::Int);
pub const STRING: Dtype = d("string", 5, 128, true, Kind::Str);
pub const IFNAME: Dtype = d("ifname", 41, 128, true, Kind::Str);
pub const VERDICT: Dtype = d("verdict", 1, 32, false, Kind::Verdict);
pub const IPV4: Dtype = d("ipv4_addr", 7, 32, true, Kind::Ipv4);
pub const IPV6: Dtype = d("ipv6_addr", 8, 128, true, Kind::Ipv6);
pub const ETHER: Dtype = d("ether_addr", 9, 48, true, Kind::Ether);
pub const ETHERTYPE: Dtype = d("ether_type", 10, 16, true, Kind::Int).sym(dt::ETHER_TYPE_SYMS);
pub const ARPOP: Dtype = d("arp_op", 11, 16, true, Kind::Int).sym(dt::ARP_OP_SYMS);
pub const INET_PROTO: Dtype = d("inet_proto", 12, 8, true, Kind::Int).sym(dt::INET_PROTO_SYMS);
pub const INET_SERVICE: Dtype = d("inet_service", 13, 16, true, Kind::Int);
pub const ICMP_TYPE: Dtype = d("icmp_type", 14, 8, true, Kind::Int).sym(dt::ICMP_TYPE_SYMS);
pub const TCP_FLAG: Dtype = d("tcp_flag", 15, 8, true, Kind::Bitmask).sym(dt::TCP_FLAG_SYMS);
pub const DCCP_PKTTYPE: Dtype =
    d("dccp_pkttype", 16, 4, true, Kind::Int).sym(dt::DCCP_PKTTYPE_SYMS);
pub const MH_TYPE: Dtype = d("mh_type", 17, 8, true, Kind::Int).sym(dt::MH_TYPE_SYMS);
pub const TIME: Dtype = d("time", 18, 64, false, Kind::Time);
pub const MARK: Dtype = d("mark", 19, 32, false, Kind::Int);
pub const IFINDEX: Dtype = d("iface_index", 20, 32, false, Kind::Int);
pub const ARPHRD: Dtype = d("iface_type", 21, 16, false, Kind::Int).sym(dt::ARPHRD_SYMS);
pub const REALM: Dtype = d("realm", 22, 32, false, Kind::Int);
pub const CLASSID: Dtype = d("classid", 23, 32, false, Kind::Int);
pub const UID: Dtype = d("uid", 24, 32, false, Kind::Int).sym(&[sy("root", 0)]);
pub const GID: Dtype = d("gid", 25, 32, false, Kind::Int).sym(&[sy("root", 0)]);
pub const CT_STATE: Dtype = d("ct_state", 26, 32, false, Kind::Bitmask).sym(dt::CT_STATE_SYMS);
pub const CT_DIR: Dtype = d("ct_dir", 27, 8, false, Kind::Int).sym(dt::CT_DIR_SYMS);
pub const CT_STATUS: Dtype = d("ct_status", 28, 32, false, Kind::Bitmask).sym(dt::CT_STATUS_SYMS);
pub const ICMP6_TYPE: Dtype = d("icmpv6_type", 29, 8, true, Kind::Int).sym(dt::ICMPV6_TYPE_SYMS);
pub const CT_LABEL: Dtype = d("ct_label", 30, 128, false, Kind::Bitmask);
pub const PKTTYPE: Dtype = d("pkt_type", 31, 8, false, Kind::Int).sym(dt::PKTTYPE_SYMS);
pub const ICMP_CODE: Dtype = d("icmp_code", 32, 8, true, Kind::Int).sym(dt::ICMP_CODE_SYMS);
pub const ICMPV6_CODE: Dtype = d("icmpv6_code", 33, 8, true, Kind::Int).sym(dt::ICMPV6_CODE_SYMS);
pub const ICMPX_CODE: Dtype = d("icmpx_code", 34, 8, true, Kind::Int).sym(dt::ICMPX_CODE_SYMS);
pub const DEVGROUP: Dtype = d("devgroup", 35, 32, false, Kind::Int).sym(dt::DEVGROUP_SYMS);
pub const DSCP: Dtype = d("dscp", 36, 6, true, Kind::Int).sym(dt::DSCP_SYMS);
pub const ECN: Dtype = d("ecn", 37, 2, true, Kind::Int).sym(dt::ECN_SYMS);
pub const BOOLEAN: Dtype = d("boolean", 39, 1, false, Kind::Int).sym(dt::BOOLEAN_SYMS);
pub const CT_EVENT: Dtype = d("ct_event", 40, 32, false, Kind::Bitmask).sym(dt::CT_EVENT_SYMS);
pub const IGMP_TYPE: Dtype = d("igmp_type", 42, 8, true, Kind::Int).sym(dt::IGMP_TYPE_SYMS);
pub const NFPROTO: Dtype = d("nf_proto", 2, 8, false, Kind::Int).sym(dt::NFPROTO_SYMS);
pub const DAY: Dtype = d("day", 45, 8, false, Kind::Int).sym(dt::DAY_SYMS);
pub const HOUR: Dtype = d("hour", 44, 32, false, Kind::Int);
pub const CGROUPV2: Dtype = d("cgroupsv2", 46, 64, false, Kind::Int);
pub const FIB_ADDR: Dtype = d("fib_addrtype", 38, 32, false, Kind::Int).sym(dt::FIB_ADDRTYPE_SYMS);

/// Types nameable in `type ...` of a set declaration.
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
