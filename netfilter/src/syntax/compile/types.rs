//! Datatypes of the nft language: how a written value becomes register
//! bytes (width, byte order, symbolic names), and nft's type ids that sets
//! record as their key and data types.

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
    pub syms: &'static [(&'static str, u64)],
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
    pub const fn sym(mut self, syms: &'static [(&'static str, u64)]) -> Self {
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
pub const ETHERTYPE: Dtype = d("ether_type", 10, 16, true, Kind::Int).sym(&[
    ("ip", 0x0800),
    ("arp", 0x0806),
    ("ip6", 0x86dd),
    ("vlan", 0x8100),
    ("8021q", 0x8100),
    ("8021ad", 0x88a8),
]);
pub const ARPOP: Dtype = d("arp_op", 11, 16, true, Kind::Int).sym(&[
    ("request", 1),
    ("reply", 2),
    ("rrequest", 3),
    ("rreply", 4),
    ("inrequest", 8),
    ("inreply", 9),
    ("nak", 10),
]);
pub const INET_PROTO: Dtype = d("inet_proto", 12, 8, true, Kind::Int).sym(&[
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ggp", 3),
    ("ipencap", 4),
    ("st", 5),
    ("tcp", 6),
    ("egp", 8),
    ("igp", 9),
    ("pup", 12),
    ("udp", 17),
    ("hmp", 20),
    ("xns-idp", 22),
    ("rdp", 27),
    ("iso-tp4", 29),
    ("dccp", 33),
    ("xtp", 36),
    ("ddp", 37),
    ("idpr-cmtp", 38),
    ("ipv6", 41),
    ("ipv6-route", 43),
    ("ipv6-frag", 44),
    ("idrp", 45),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("skip", 57),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("rspf", 73),
    ("vmtp", 81),
    ("eigrp", 88),
    ("ospf", 89),
    ("ax.25", 93),
    ("ipip", 94),
    ("etherip", 97),
    ("encap", 98),
    ("pim", 103),
    ("ipcomp", 108),
    ("comp", 108),
    ("vrrp", 112),
    ("l2tp", 115),
    ("isis", 124),
    ("sctp", 132),
    ("fc", 133),
    ("mobility-header", 135),
    ("udplite", 136),
    ("mpls-in-ip", 137),
    ("manet", 138),
    ("hip", 139),
    ("shim6", 140),
    ("wesp", 141),
    ("rohc", 142),
    ("ethernet", 143),
]);
pub const INET_SERVICE: Dtype = d("inet_service", 13, 16, true, Kind::Int).sym(&[
    ("tcpmux", 1),
    ("echo", 7),
    ("discard", 9),
    ("systat", 11),
    ("daytime", 13),
    ("netstat", 15),
    ("chargen", 19),
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("time", 37),
    ("whois", 43),
    ("tacacs", 49),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("gopher", 70),
    ("finger", 79),
    ("http", 80),
    ("kerberos", 88),
    ("pop3", 110),
    ("sunrpc", 111),
    ("auth", 113),
    ("nntp", 119),
    ("ntp", 123),
    ("epmap", 135),
    ("netbios-ns", 137),
    ("netbios-dgm", 138),
    ("netbios-ssn", 139),
    ("imap2", 143),
    ("snmp", 161),
    ("snmp-trap", 162),
    ("bgp", 179),
    ("irc", 194),
    ("ldap", 389),
    ("https", 443),
    ("microsoft-ds", 445),
    ("kpasswd", 464),
    ("submissions", 465),
    ("syslog", 514),
    ("submission", 587),
    ("ldaps", 636),
    ("rsync", 873),
    ("ftps-data", 989),
    ("ftps", 990),
    ("telnets", 992),
    ("imaps", 993),
    ("pop3s", 995),
    ("socks", 1080),
    ("openvpn", 1194),
    ("ms-sql-s", 1433),
    ("mysql", 3306),
    ("postgresql", 5432),
]);
pub const ICMP_TYPE: Dtype = d("icmp_type", 14, 8, true, Kind::Int).sym(&[
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("info-request", 15),
    ("info-reply", 16),
    ("address-mask-request", 17),
    ("address-mask-reply", 18),
]);
pub const TCP_FLAG: Dtype = d("tcp_flag", 15, 8, true, Kind::Bitmask).sym(&[
    ("fin", 1),
    ("syn", 2),
    ("rst", 4),
    ("psh", 8),
    ("ack", 16),
    ("urg", 32),
    ("ecn", 64),
    ("cwr", 128),
]);
pub const DCCP_PKTTYPE: Dtype = d("dccp_pkttype", 16, 4, true, Kind::Int).sym(&[
    ("request", 0),
    ("response", 1),
    ("data", 2),
    ("ack", 3),
    ("dataack", 4),
    ("closereq", 5),
    ("close", 6),
    ("reset", 7),
    ("sync", 8),
    ("syncack", 9),
]);
pub const MH_TYPE: Dtype = d("mh_type", 17, 8, true, Kind::Int).sym(&[
    ("binding-refresh-request", 0),
    ("home-test-init", 1),
    ("careof-test-init", 2),
    ("home-test", 3),
    ("careof-test", 4),
    ("binding-update", 5),
    ("binding-acknowledgement", 6),
    ("binding-error", 7),
    ("fast-binding-update", 8),
    ("fast-binding-acknowledgement", 9),
    ("fast-binding-advertisement", 10),
    ("experimental-mobility-header", 11),
    ("home-agent-switch-message", 12),
]);
pub const TIME: Dtype = d("time", 18, 64, false, Kind::Time);
pub const MARK: Dtype = d("mark", 19, 32, false, Kind::Int);
pub const IFINDEX: Dtype = d("iface_index", 20, 32, false, Kind::Int);
pub const ARPHRD: Dtype = d("iface_type", 21, 16, false, Kind::Int).sym(&[
    ("ether", 1),
    ("ppp", 512),
    ("ipip", 768),
    ("ipip6", 769),
    ("loopback", 772),
    ("sit", 776),
    ("ipgre", 778),
]);
pub const REALM: Dtype = d("realm", 22, 32, false, Kind::Int);
pub const CLASSID: Dtype = d("classid", 23, 32, false, Kind::Int);
pub const UID: Dtype = d("uid", 24, 32, false, Kind::Int).sym(&[("root", 0)]);
pub const GID: Dtype = d("gid", 25, 32, false, Kind::Int).sym(&[("root", 0)]);
pub const CT_STATE: Dtype = d("ct_state", 26, 32, false, Kind::Bitmask).sym(&[
    ("invalid", 1),
    ("established", 2),
    ("related", 4),
    ("new", 8),
    ("untracked", 64),
]);
pub const CT_DIR: Dtype =
    d("ct_dir", 27, 8, false, Kind::Int).sym(&[("original", 0), ("reply", 1)]);
pub const CT_STATUS: Dtype = d("ct_status", 28, 32, false, Kind::Bitmask).sym(&[
    ("expected", 1),
    ("seen-reply", 2),
    ("assured", 4),
    ("confirmed", 8),
    ("snat", 16),
    ("dnat", 32),
    ("dying", 512),
]);
pub const ICMP6_TYPE: Dtype = d("icmpv6_type", 29, 8, true, Kind::Int).sym(&[
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("mld-listener-query", 130),
    ("mld-listener-report", 131),
    ("mld-listener-done", 132),
    ("mld-listener-reduction", 132),
    ("nd-router-solicit", 133),
    ("nd-router-advert", 134),
    ("nd-neighbor-solicit", 135),
    ("nd-neighbor-advert", 136),
    ("nd-redirect", 137),
    ("router-renumbering", 138),
    ("ind-neighbor-solicit", 141),
    ("ind-neighbor-advert", 142),
    ("mld2-listener-report", 143),
]);
pub const CT_LABEL: Dtype = d("ct_label", 30, 128, false, Kind::Bitmask);
pub const PKTTYPE: Dtype = d("pkt_type", 31, 8, false, Kind::Int).sym(&[
    ("host", 0),
    ("unicast", 0),
    ("broadcast", 1),
    ("multicast", 2),
    ("other", 3),
]);
pub const ICMP_CODE: Dtype = d("icmp_code", 32, 8, true, Kind::Int).sym(&[
    ("net-unreachable", 0),
    ("host-unreachable", 1),
    ("prot-unreachable", 2),
    ("port-unreachable", 3),
    ("frag-needed", 4),
    ("net-prohibited", 9),
    ("host-prohibited", 10),
    ("admin-prohibited", 13),
]);
pub const ICMPV6_CODE: Dtype = d("icmpv6_code", 33, 8, true, Kind::Int).sym(&[
    ("no-route", 0),
    ("admin-prohibited", 1),
    ("addr-unreachable", 3),
    ("port-unreachable", 4),
    ("policy-fail", 5),
    ("reject-route", 6),
]);
pub const ICMPX_CODE: Dtype = d("icmpx_code", 34, 8, true, Kind::Int).sym(&[
    ("port-unreachable", 1),
    ("admin-prohibited", 3),
    ("no-route", 0),
    ("host-unreachable", 2),
]);
pub const DEVGROUP: Dtype = d("devgroup", 35, 32, false, Kind::Int).sym(&[("default", 0)]);
pub const DSCP: Dtype = d("dscp", 36, 6, true, Kind::Int).sym(&[
    ("cs0", 0),
    ("cs1", 8),
    ("cs2", 16),
    ("cs3", 24),
    ("cs4", 32),
    ("cs5", 40),
    ("cs6", 48),
    ("cs7", 56),
    ("df", 0),
    ("be", 0),
    ("lephb", 1),
    ("af11", 10),
    ("af12", 12),
    ("af13", 14),
    ("af21", 18),
    ("af22", 20),
    ("af23", 22),
    ("af31", 26),
    ("af32", 28),
    ("af33", 30),
    ("af41", 34),
    ("af42", 36),
    ("af43", 38),
    ("va", 44),
    ("ef", 46),
]);
pub const ECN: Dtype =
    d("ecn", 37, 2, true, Kind::Int).sym(&[("not-ect", 0), ("ect1", 1), ("ect0", 2), ("ce", 3)]);
pub const BOOLEAN: Dtype = d("boolean", 39, 1, false, Kind::Int).sym(&[
    ("exists", 1),
    ("missing", 0),
    ("true", 1),
    ("false", 0),
]);
pub const CT_EVENT: Dtype = d("ct_event", 40, 32, false, Kind::Bitmask).sym(&[
    ("new", 1),
    ("related", 2),
    ("destroy", 4),
    ("reply", 8),
    ("assured", 16),
    ("protoinfo", 32),
    ("helper", 64),
    ("mark", 128),
    ("seqadj", 256),
    ("secmark", 512),
    ("label", 1024),
]);
pub const IGMP_TYPE: Dtype = d("igmp_type", 42, 8, true, Kind::Int).sym(&[
    ("membership-query", 0x11),
    ("membership-report-v1", 0x12),
    ("membership-report-v2", 0x16),
    ("membership-report-v3", 0x22),
    ("leave-group", 0x17),
]);
pub const NFPROTO: Dtype = d("nf_proto", 2, 8, false, Kind::Int).sym(&[("ipv4", 2), ("ipv6", 10)]);
pub const DAY: Dtype = d("day", 45, 8, false, Kind::Int).sym(&[
    ("sunday", 0),
    ("monday", 1),
    ("tuesday", 2),
    ("wednesday", 3),
    ("thursday", 4),
    ("friday", 5),
    ("saturday", 6),
]);
pub const HOUR: Dtype = d("hour", 44, 32, false, Kind::Int);
pub const CGROUPV2: Dtype = d("cgroupsv2", 46, 64, false, Kind::Int);
pub const FIB_ADDR: Dtype = d("fib_addrtype", 38, 32, false, Kind::Int).sym(&[
    ("unspec", 0),
    ("unicast", 1),
    ("local", 2),
    ("broadcast", 3),
    ("anycast", 4),
    ("multicast", 5),
    ("blackhole", 6),
    ("unreachable", 7),
    ("prohibit", 8),
]);

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
