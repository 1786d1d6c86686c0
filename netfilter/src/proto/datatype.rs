//! nft's datatypes: the numeric id nft stores in a set's `key_type`, the
//! value's size and byte order, how a value is written, and its symbolic
//! constants (as `nft describe` and listings show them).

/// Byte order of a value in a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Network order (packet fields).
    Big,
    /// The machine's order (meta and ct keys the kernel fills in natively).
    Host,
}

impl ByteOrder {
    /// The number nft stores in set userdata (`NFTNL_UDATA_SET_KEYBYTEORDER`).
    pub fn udata_value(self) -> u32 {
        match self {
            ByteOrder::Big => 2,
            ByteOrder::Host => 1,
        }
    }
    pub fn from_udata_value(v: u32) -> Option<Self> {
        match v {
            2 => Some(ByteOrder::Big),
            1 => Some(ByteOrder::Host),
            _ => None,
        }
    }
}

/// How a value of the type is written when no symbol matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Unsigned decimal.
    Decimal,
    /// `0x` and as many hex digits as the value's size (`mark`: `0x0000002a`).
    HexPadded,
    /// `0x` and the hex digits needed (`ct label`, raw bitmasks).
    Hex,
    /// Dotted quad.
    Ipv4,
    /// RFC 5952 text.
    Ipv6,
    /// `aa:bb:cc:dd:ee:ff`.
    Lladdr,
    /// NUL-padded string, quoted.
    String,
    /// Flags joined: symbols of the set bits (`syn,ack` / `syn | ack`).
    Bitmask,
    /// Verdict (in verdict maps).
    Verdict,
    /// Milliseconds as `1d2h3m4s` (nft's time type).
    Time,
    /// `major:minor` in hex, `none`/`root` for the special handles.
    TcHandle,
    /// Nanoseconds since the epoch as a quoted UTC date and time.
    Date,
    /// Seconds since midnight as a quoted `HH:MM[:SS]`.
    Hour,
    /// An interface index, printed as the interface's quoted name.
    Ifindex,
}

/// A symbolic constant of a datatype.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Symbol {
    pub name: &'static str,
    pub value: u64,
}

const fn s(name: &'static str, value: u64) -> Symbol {
    Symbol { name, value }
}

/// An nft datatype.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Datatype {
    /// nft's type id (the `key_type` of a set of this type; concatenations
    /// shift ids left by [`TYPE_BITS`] per field).
    pub id: u32,
    /// Name in `type NAME` of a set declaration.
    pub name: &'static str,
    /// Size in bits (0: variable, e.g. strings sized by their field).
    pub bits: u32,
    pub byteorder: ByteOrder,
    pub format: Format,
    /// Symbolic constants, in the order nft lists them.
    pub symbols: &'static [Symbol],
}

impl Datatype {
    /// The symbol naming `value`, if any.
    pub fn symbol(&self, value: u64) -> Option<&'static str> {
        self.symbols
            .iter()
            .find(|s| s.value == value)
            .map(|s| s.name)
    }
    /// The value of a symbol (exact name).
    pub fn value_of(&self, name: &str) -> Option<u64> {
        self.symbols
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value)
    }
    /// Size in bytes, rounded up (0 for variable-size types).
    pub fn bytes(&self) -> u32 {
        self.bits.div_ceil(8)
    }
}

/// Bits per field in a concatenated set's `key_type`.
pub const TYPE_BITS: u32 = 6;

macro_rules! datatypes {
    ($( $(#[$m:meta])* $konst:ident = $id:literal, $name:literal, $bits:literal, $bo:ident, $fmt:ident, $syms:expr; )+) => {
        $( $(#[$m])* pub static $konst: Datatype = Datatype {
            id: $id, name: $name, bits: $bits, byteorder: ByteOrder::$bo, format: Format::$fmt, symbols: $syms,
        }; )+
        /// Every datatype, by id order.
        pub static ALL: &[&Datatype] = &[ $( &$konst ),+ ];
    };
}

datatypes! {
    INVALID = 0, "invalid", 0, Big, Hex, &[];
    VERDICT = 1, "verdict", 32, Host, Verdict, &[];
    NFPROTO = 2, "nf_proto", 8, Host, Decimal, NFPROTO_SYMS;
    BITMASK = 3, "bitmask", 0, Host, Hex, &[];
    INTEGER = 4, "integer", 0, Host, Decimal, &[];
    STRING = 5, "string", 0, Host, String, &[];
    LLADDR = 6, "ll_addr", 0, Big, Lladdr, &[];
    IPV4_ADDR = 7, "ipv4_addr", 32, Big, Ipv4, &[];
    IPV6_ADDR = 8, "ipv6_addr", 128, Big, Ipv6, &[];
    ETHER_ADDR = 9, "ether_addr", 48, Big, Lladdr, &[];
    ETHER_TYPE = 10, "ether_type", 16, Big, Hex, ETHER_TYPE_SYMS;
    ARP_OP = 11, "arp_op", 16, Big, Decimal, ARP_OP_SYMS;
    INET_PROTO = 12, "inet_proto", 8, Big, Decimal, INET_PROTO_SYMS;
    INET_SERVICE = 13, "inet_service", 16, Big, Decimal, &[];
    ICMP_TYPE = 14, "icmp_type", 8, Big, Decimal, ICMP_TYPE_SYMS;
    TCP_FLAG = 15, "tcp_flag", 8, Big, Bitmask, TCP_FLAG_SYMS;
    DCCP_PKTTYPE = 16, "dccp_pkttype", 4, Big, Decimal, DCCP_PKTTYPE_SYMS;
    MH_TYPE = 17, "mh_type", 8, Big, Decimal, MH_TYPE_SYMS;
    TIME = 18, "time", 64, Host, Time, &[];
    MARK = 19, "mark", 32, Host, HexPadded, &[];
    IFACE_INDEX = 20, "iface_index", 32, Host, Ifindex, &[];
    ARPHRD = 21, "iface_type", 16, Host, Decimal, ARPHRD_SYMS;
    REALM = 22, "realm", 32, Host, Decimal, REALM_SYMS;
    TC_HANDLE = 23, "classid", 32, Host, TcHandle, &[];
    UID = 24, "uid", 32, Host, Decimal, &[];
    GID = 25, "gid", 32, Host, Decimal, &[];
    CT_STATE = 26, "ct_state", 32, Host, Bitmask, CT_STATE_SYMS;
    CT_DIR = 27, "ct_dir", 8, Host, Decimal, CT_DIR_SYMS;
    CT_STATUS = 28, "ct_status", 32, Host, Bitmask, CT_STATUS_SYMS;
    ICMPV6_TYPE = 29, "icmpv6_type", 8, Big, Decimal, ICMPV6_TYPE_SYMS;
    CT_LABEL = 30, "ct_label", 128, Host, Bitmask, &[];
    PKTTYPE = 31, "pkt_type", 8, Host, Decimal, PKTTYPE_SYMS;
    ICMP_CODE = 32, "icmp_code", 8, Big, Decimal, ICMP_CODE_SYMS;
    ICMPV6_CODE = 33, "icmpv6_code", 8, Big, Decimal, ICMPV6_CODE_SYMS;
    ICMPX_CODE = 34, "icmpx_code", 8, Big, Decimal, ICMPX_CODE_SYMS;
    DEVGROUP = 35, "devgroup", 32, Host, Decimal, DEVGROUP_SYMS;
    DSCP = 36, "dscp", 6, Big, HexPadded, DSCP_SYMS;
    ECN = 37, "ecn", 2, Big, Hex, ECN_SYMS;
    FIB_ADDRTYPE = 38, "fib_addrtype", 32, Host, Decimal, FIB_ADDRTYPE_SYMS;
    BOOLEAN = 39, "boolean", 1, Host, Decimal, BOOLEAN_SYMS;
    CT_EVENT = 40, "ct_event", 32, Host, Bitmask, CT_EVENT_SYMS;
    IFNAME = 41, "ifname", 128, Host, String, &[];
    IGMP_TYPE = 42, "igmp_type", 8, Big, Hex, IGMP_TYPE_SYMS;
    TIME_DATE = 43, "time", 64, Host, Date, &[];
    TIME_HOUR = 44, "hour", 32, Host, Hour, &[];
    DAY = 45, "day", 8, Host, Decimal, DAY_SYMS;
    CGROUPV2 = 46, "cgroupsv2", 64, Host, Decimal, &[];
}

/// `integer` in network order (`meta random`, `ct id`); same id as [`INTEGER`].
pub static INTEGER_BE: Datatype = Datatype {
    id: 4,
    name: "integer",
    bits: 0,
    byteorder: ByteOrder::Big,
    format: Format::Decimal,
    symbols: &[],
};

/// The datatype with nft's id `id`.
pub fn by_id(id: u32) -> Option<&'static Datatype> {
    ALL.iter().copied().find(|d| d.id == id)
}

/// The datatype named `name` (as in `type NAME`).
pub fn by_name(name: &str) -> Option<&'static Datatype> {
    ALL.iter().copied().find(|d| d.name == name)
}

/// Splits a set's `key_type` into the datatypes of its concatenated fields
/// (one element for a plain key). `None` when a part is unknown.
pub fn split_concat(key_type: u32, fields: usize) -> Option<Vec<&'static Datatype>> {
    let mask = (1 << TYPE_BITS) - 1;
    (0..fields)
        .rev()
        .map(|i| by_id(key_type.checked_shr(TYPE_BITS * i as u32).unwrap_or(0) & mask))
        .collect()
}

/// How many fields a `key_type` packs (1 for a plain type; at most 5,
/// the most that fit in 32 bits).
pub fn concat_len(key_type: u32) -> usize {
    (1..6)
        .take_while(|i| key_type.checked_shr(TYPE_BITS * i).unwrap_or(0) != 0)
        .count()
        + 1
}

/// `ipv4_addr . inet_service` for a (concatenated) datatype id of `n` parts.
pub fn type_names(id: u32, n: usize) -> String {
    split_concat(id, n)
        .map(|ts| ts.iter().map(|t| t.name).collect::<Vec<_>>().join(" . "))
        .unwrap_or_else(|| format!("{id}"))
}

/// The `key_type` of a concatenation of `types`.
pub fn concat_id(types: &[&Datatype]) -> u32 {
    types.iter().fold(0, |acc, t| (acc << TYPE_BITS) | t.id)
}

pub static NFPROTO_SYMS: &[Symbol] = &[s("ipv4", 2), s("ipv6", 10)];
pub static ETHER_TYPE_SYMS: &[Symbol] = &[
    s("ip", 0x0800),
    s("arp", 0x0806),
    s("ip6", 0x86dd),
    s("8021q", 0x8100),
    s("8021ad", 0x88a8),
    s("vlan", 0x8100),
];
pub static ARP_OP_SYMS: &[Symbol] = &[
    s("request", 1),
    s("reply", 2),
    s("rrequest", 3),
    s("rreply", 4),
    s("inrequest", 8),
    s("inreply", 9),
    s("nak", 10),
];
/// Protocol names nft uses (from the system's protocol database).
pub static INET_PROTO_SYMS: &[Symbol] = &[
    s("hopopt", 0),
    s("icmp", 1),
    s("igmp", 2),
    s("ipencap", 4),
    s("tcp", 6),
    s("udp", 17),
    s("ipv6", 41),
    s("ipv6-route", 43),
    s("ipv6-frag", 44),
    s("gre", 47),
    s("esp", 50),
    s("ah", 51),
    s("ipv6-icmp", 58),
    s("ipv6-nonxt", 59),
    s("ipv6-opts", 60),
    s("comp", 108),
    s("sctp", 132),
    s("mobility-header", 135),
    s("udplite", 136),
    s("dccp", 33),
    // The rest of Debian's /etc/protocols (netbase), which nft 1.0.6 lists
    // by name (`hbh nexthdr xns-idp`).
    s("ggp", 3),
    s("st", 5),
    s("egp", 8),
    s("igp", 9),
    s("pup", 12),
    s("hmp", 20),
    s("xns-idp", 22),
    s("rdp", 27),
    s("iso-tp4", 29),
    s("xtp", 36),
    s("ddp", 37),
    s("idpr-cmtp", 38),
    s("idrp", 45),
    s("rsvp", 46),
    s("skip", 57),
    s("rspf", 73),
    s("vmtp", 81),
    s("eigrp", 88),
    s("ospf", 89),
    s("ax.25", 93),
    s("ipip", 94),
    s("etherip", 97),
    s("encap", 98),
    s("pim", 103),
    s("vrrp", 112),
    s("l2tp", 115),
    s("isis", 124),
    s("fc", 133),
    s("mpls-in-ip", 137),
    s("manet", 138),
    s("hip", 139),
    s("shim6", 140),
    s("wesp", 141),
    s("rohc", 142),
    s("ethernet", 143),
];
pub static ICMP_TYPE_SYMS: &[Symbol] = &[
    s("echo-reply", 0),
    s("destination-unreachable", 3),
    s("source-quench", 4),
    s("redirect", 5),
    s("echo-request", 8),
    s("router-advertisement", 9),
    s("router-solicitation", 10),
    s("time-exceeded", 11),
    s("parameter-problem", 12),
    s("timestamp-request", 13),
    s("timestamp-reply", 14),
    s("info-request", 15),
    s("info-reply", 16),
    s("address-mask-request", 17),
    s("address-mask-reply", 18),
];
pub static ICMPV6_TYPE_SYMS: &[Symbol] = &[
    s("destination-unreachable", 1),
    s("packet-too-big", 2),
    s("time-exceeded", 3),
    s("parameter-problem", 4),
    s("echo-request", 128),
    s("echo-reply", 129),
    s("mld-listener-query", 130),
    s("mld-listener-report", 131),
    s("mld-listener-done", 132),
    s("mld-listener-reduction", 132),
    s("nd-router-solicit", 133),
    s("nd-router-advert", 134),
    s("nd-neighbor-solicit", 135),
    s("nd-neighbor-advert", 136),
    s("nd-redirect", 137),
    s("router-renumbering", 138),
    s("ind-neighbor-solicit", 141),
    s("ind-neighbor-advert", 142),
    s("mld2-listener-report", 143),
];
pub static ICMP_CODE_SYMS: &[Symbol] = &[
    s("net-unreachable", 0),
    s("host-unreachable", 1),
    s("prot-unreachable", 2),
    s("port-unreachable", 3),
    s("frag-needed", 4),
    s("net-prohibited", 9),
    s("host-prohibited", 10),
    s("admin-prohibited", 13),
];
pub static ICMPV6_CODE_SYMS: &[Symbol] = &[
    s("no-route", 0),
    s("admin-prohibited", 1),
    s("addr-unreachable", 3),
    s("port-unreachable", 4),
    s("policy-fail", 5),
    s("reject-route", 6),
];
pub static ICMPX_CODE_SYMS: &[Symbol] = &[
    s("no-route", 0),
    s("port-unreachable", 1),
    s("host-unreachable", 2),
    s("admin-prohibited", 3),
];
pub static TCP_FLAG_SYMS: &[Symbol] = &[
    s("fin", 0x01),
    s("syn", 0x02),
    s("rst", 0x04),
    s("psh", 0x08),
    s("ack", 0x10),
    s("urg", 0x20),
    s("ecn", 0x40),
    s("cwr", 0x80),
];
pub static DCCP_PKTTYPE_SYMS: &[Symbol] = &[
    s("request", 0),
    s("response", 1),
    s("data", 2),
    s("ack", 3),
    s("dataack", 4),
    s("closereq", 5),
    s("close", 6),
    s("reset", 7),
    s("sync", 8),
    s("syncack", 9),
];
pub static MH_TYPE_SYMS: &[Symbol] = &[
    s("binding-refresh-request", 0),
    s("home-test-init", 1),
    s("careof-test-init", 2),
    s("home-test", 3),
    s("careof-test", 4),
    s("binding-update", 5),
    s("binding-acknowledgement", 6),
    s("binding-error", 7),
    s("fast-binding-update", 8),
    s("fast-binding-acknowledgement", 9),
    s("fast-binding-advertisement", 10),
    s("experimental-mobility-header", 11),
    s("home-agent-switch-message", 12),
];
pub static ARPHRD_SYMS: &[Symbol] = &[
    s("ether", 1),
    s("ppp", 512),
    s("ipip", 768),
    s("ipip6", 769),
    s("loopback", 772),
    s("sit", 776),
    s("ipgre", 778),
];
pub static CT_STATE_SYMS: &[Symbol] = &[
    s("invalid", 1),
    s("established", 2),
    s("related", 4),
    s("new", 8),
    s("untracked", 64),
];
pub static CT_DIR_SYMS: &[Symbol] = &[s("original", 0), s("reply", 1)];
pub static CT_STATUS_SYMS: &[Symbol] = &[
    s("expected", 1),
    s("seen-reply", 2),
    s("assured", 4),
    s("confirmed", 8),
    s("snat", 16),
    s("dnat", 32),
    s("dying", 512),
];
pub static CT_EVENT_SYMS: &[Symbol] = &[
    s("new", 1),
    s("related", 2),
    s("destroy", 4),
    s("reply", 8),
    s("assured", 16),
    s("protoinfo", 32),
    s("helper", 64),
    s("mark", 128),
    s("seqadj", 256),
    s("secmark", 512),
    s("label", 1024),
];
pub static PKTTYPE_SYMS: &[Symbol] = &[
    s("host", 0),
    s("unicast", 0),
    s("broadcast", 1),
    s("multicast", 2),
    s("other", 3),
];
/// From iproute2's `rt_realms` file.
pub static REALM_SYMS: &[Symbol] = &[s("cosmos", 0)];
pub static DEVGROUP_SYMS: &[Symbol] = &[s("default", 0)];
pub static DSCP_SYMS: &[Symbol] = &[
    s("cs0", 0x00),
    s("cs1", 0x08),
    s("cs2", 0x10),
    s("cs3", 0x18),
    s("cs4", 0x20),
    s("cs5", 0x28),
    s("cs6", 0x30),
    s("cs7", 0x38),
    s("df", 0x00),
    s("be", 0x00),
    s("lephb", 0x01),
    s("af11", 0x0a),
    s("af12", 0x0c),
    s("af13", 0x0e),
    s("af21", 0x12),
    s("af22", 0x14),
    s("af23", 0x16),
    s("af31", 0x1a),
    s("af32", 0x1c),
    s("af33", 0x1e),
    s("af41", 0x22),
    s("af42", 0x24),
    s("af43", 0x26),
    s("va", 0x2c),
    s("ef", 0x2e),
];
pub static ECN_SYMS: &[Symbol] = &[s("not-ect", 0), s("ect1", 1), s("ect0", 2), s("ce", 3)];
pub static FIB_ADDRTYPE_SYMS: &[Symbol] = &[
    s("unspec", 0),
    s("unicast", 1),
    s("local", 2),
    s("broadcast", 3),
    s("anycast", 4),
    s("multicast", 5),
    s("blackhole", 6),
    s("unreachable", 7),
    s("prohibit", 8),
];
pub static BOOLEAN_SYMS: &[Symbol] = &[s("exists", 1), s("missing", 0)];
pub static IGMP_TYPE_SYMS: &[Symbol] = &[
    s("membership-query", 0x11),
    s("membership-report-v1", 0x12),
    s("membership-report-v2", 0x16),
    s("membership-report-v3", 0x22),
    s("leave-group", 0x17),
];
pub static DAY_SYMS: &[Symbol] = &[
    s("Sunday", 0),
    s("Monday", 1),
    s("Tuesday", 2),
    s("Wednesday", 3),
    s("Thursday", 4),
    s("Friday", 5),
    s("Saturday", 6),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_fit_type_bits() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(a.id < 1 << TYPE_BITS, "{}", a.name);
            for b in &ALL[i + 1..] {
                assert_ne!(a.id, b.id, "{} / {}", a.name, b.name);
            }
        }
    }

    #[test]
    fn concat_ids_round_trip() {
        // `type inet_service . ifname`: nft stores 0x369.
        let id = concat_id(&[&INET_SERVICE, &IFNAME]);
        assert_eq!(id, 0x369);
        assert_eq!(concat_len(id), 2);
        assert_eq!(concat_len(INET_SERVICE.id), 1);
        let parts = split_concat(id, 2).unwrap();
        assert_eq!(parts[0].name, "inet_service");
        assert_eq!(parts[1].name, "ifname");
        assert_eq!(by_name("ipv4_addr").unwrap().id, 7);
    }
}
