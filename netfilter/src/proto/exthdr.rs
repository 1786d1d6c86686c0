//! Headers matched by the `exthdr` expression: IPv6 extension headers,
//! TCP options, IPv4 options, SCTP chunks. Each has a type number the
//! kernel searches for and fields at bit offsets inside it.

use super::datatype::{self as dt, Datatype};
use super::header::Field;

/// Which kind of header list (`NFT_EXTHDR_OP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExthdrOp {
    Ipv6 = 0,
    TcpOpt = 1,
    Ipv4 = 2,
    Sctp = 3,
    Dccp = 4,
}

impl ExthdrOp {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => ExthdrOp::Ipv6,
            1 => ExthdrOp::TcpOpt,
            2 => ExthdrOp::Ipv4,
            3 => ExthdrOp::Sctp,
            4 => ExthdrOp::Dccp,
            _ => return None,
        })
    }
    /// nft's keyword before the header name (`tcp option`, `ip option`, `sctp chunk`).
    pub fn prefix(self) -> &'static str {
        match self {
            ExthdrOp::Ipv6 => "",
            ExthdrOp::TcpOpt => "tcp option",
            ExthdrOp::Ipv4 => "ip option",
            ExthdrOp::Sctp => "sctp chunk",
            ExthdrOp::Dccp => "dccp option",
        }
    }
}

/// One extension header / option / chunk kind.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Exthdr {
    pub op: ExthdrOp,
    /// nft's name (`frag`, `maxseg`, `init`, ...).
    pub name: &'static str,
    /// Type number the kernel looks for.
    pub ty: u8,
    pub fields: &'static [Field],
}

impl Exthdr {
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    pub fn field_at(&self, offset: u32, len: u32) -> Option<&'static Field> {
        self.fields
            .iter()
            .find(|f| f.offset == offset && f.len == len)
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
const fn x(op: ExthdrOp, name: &'static str, ty: u8, fields: &'static [Field]) -> Exthdr {
    Exthdr {
        op,
        name,
        ty,
        fields,
    }
}

use dt::{INET_PROTO, INTEGER, IPV4_ADDR, IPV6_ADDR, MH_TYPE};
use ExthdrOp::*;

const NEXT_LEN: [Field; 2] = [
    f("nexthdr", 0, 8, &INET_PROTO),
    f("hdrlength", 8, 8, &INTEGER),
];

pub static IPV6: &[Exthdr] = &[
    x(Ipv6, "hbh", 0, &NEXT_LEN),
    x(
        Ipv6,
        "rt",
        43,
        &[
            f("nexthdr", 0, 8, &INET_PROTO),
            f("hdrlength", 8, 8, &INTEGER),
            f("type", 16, 8, &INTEGER),
            f("seg-left", 24, 8, &INTEGER),
        ],
    ),
    x(
        Ipv6,
        "frag",
        44,
        &[
            f("nexthdr", 0, 8, &INET_PROTO),
            f("reserved", 8, 8, &INTEGER),
            f("frag-off", 16, 13, &INTEGER),
            f("reserved2", 29, 2, &INTEGER),
            f("more-fragments", 31, 1, &INTEGER),
            f("id", 32, 32, &INTEGER),
        ],
    ),
    x(Ipv6, "dst", 60, &NEXT_LEN),
    x(
        Ipv6,
        "mh",
        135,
        &[
            f("nexthdr", 0, 8, &INET_PROTO),
            f("hdrlength", 8, 8, &INTEGER),
            f("type", 16, 8, &MH_TYPE),
            f("reserved", 24, 8, &INTEGER),
            f("checksum", 32, 16, &INTEGER),
        ],
    ),
    x(
        Ipv6,
        "srh",
        43,
        &[
            f("last-entry", 32, 8, &INTEGER),
            f("flags", 40, 8, &INTEGER),
            f("tag", 48, 16, &INTEGER),
            f("sid[1]", 64, 128, &IPV6_ADDR),
            f("sid[2]", 192, 128, &IPV6_ADDR),
        ],
    ),
    x(
        Ipv6,
        "rt0",
        43,
        &[
            f("addr[1]", 64, 128, &IPV6_ADDR),
            f("addr[2]", 192, 128, &IPV6_ADDR),
        ],
    ),
];

const KIND_LEN: [Field; 2] = [f("kind", 0, 8, &INTEGER), f("length", 8, 8, &INTEGER)];

pub static TCP_OPTIONS: &[Exthdr] = &[
    x(TcpOpt, "eol", 0, &[f("kind", 0, 8, &INTEGER)]),
    x(TcpOpt, "nop", 1, &[f("kind", 0, 8, &INTEGER)]),
    x(
        TcpOpt,
        "maxseg",
        2,
        &[
            f("kind", 0, 8, &INTEGER),
            f("length", 8, 8, &INTEGER),
            f("size", 16, 16, &INTEGER),
        ],
    ),
    x(
        TcpOpt,
        "window",
        3,
        &[
            f("kind", 0, 8, &INTEGER),
            f("length", 8, 8, &INTEGER),
            f("count", 16, 8, &INTEGER),
        ],
    ),
    x(TcpOpt, "sack-perm", 4, &KIND_LEN),
    x(
        TcpOpt,
        "sack",
        5,
        &[
            f("kind", 0, 8, &INTEGER),
            f("length", 8, 8, &INTEGER),
            f("left", 16, 32, &INTEGER),
            f("right", 48, 32, &INTEGER),
        ],
    ),
    x(
        TcpOpt,
        "sack1",
        5,
        &[f("left", 80, 32, &INTEGER), f("right", 112, 32, &INTEGER)],
    ),
    x(
        TcpOpt,
        "sack2",
        5,
        &[f("left", 144, 32, &INTEGER), f("right", 176, 32, &INTEGER)],
    ),
    x(
        TcpOpt,
        "sack3",
        5,
        &[f("left", 208, 32, &INTEGER), f("right", 240, 32, &INTEGER)],
    ),
    x(
        TcpOpt,
        "timestamp",
        8,
        &[
            f("kind", 0, 8, &INTEGER),
            f("length", 8, 8, &INTEGER),
            f("tsval", 16, 32, &INTEGER),
            f("tsecr", 48, 32, &INTEGER),
        ],
    ),
    x(TcpOpt, "md5sig", 19, &KIND_LEN),
    x(
        TcpOpt,
        "mptcp",
        30,
        &[
            f("kind", 0, 8, &INTEGER),
            f("length", 8, 8, &INTEGER),
            f("subtype", 16, 4, &INTEGER),
        ],
    ),
    x(TcpOpt, "fastopen", 34, &KIND_LEN),
];

const IPOPT_ROUTE: [Field; 4] = [
    f("type", 0, 8, &INTEGER),
    f("length", 8, 8, &INTEGER),
    f("ptr", 16, 8, &INTEGER),
    f("addr", 24, 32, &IPV4_ADDR),
];

pub static IP_OPTIONS: &[Exthdr] = &[
    x(Ipv4, "lsrr", 131, &IPOPT_ROUTE),
    x(Ipv4, "rr", 7, &IPOPT_ROUTE),
    x(Ipv4, "ssrr", 137, &IPOPT_ROUTE),
    x(
        Ipv4,
        "ra",
        148,
        &[
            f("type", 0, 8, &INTEGER),
            f("length", 8, 8, &INTEGER),
            f("value", 16, 16, &INTEGER),
        ],
    ),
];

macro_rules! chunk {
    ($name:literal, $ty:literal $(, $fname:literal $off:literal $len:literal)*) => {
        x(Sctp, $name, $ty, &[
            f("type", 0, 8, &INTEGER),
            f("flags", 8, 8, &INTEGER),
            f("length", 16, 16, &INTEGER),
            $( f($fname, $off, $len, &INTEGER), )*
        ])
    };
}

pub static SCTP_CHUNKS: &[Exthdr] = &[
    chunk!("data", 0, "tsn" 32 32, "stream" 64 16, "ssn" 80 16, "ppid" 96 32),
    chunk!("init", 1, "init-tag" 32 32, "a-rwnd" 64 32, "num-outbound-streams" 96 16,
        "num-inbound-streams" 112 16, "initial-tsn" 128 32),
    chunk!("init-ack", 2, "init-tag" 32 32, "a-rwnd" 64 32, "num-outbound-streams" 96 16,
        "num-inbound-streams" 112 16, "initial-tsn" 128 32),
    chunk!("sack", 3, "cum-tsn-ack" 32 32, "a-rwnd" 64 32, "num-gap-ack-blocks" 96 16,
        "num-dup-tsns" 112 16),
    chunk!("heartbeat", 4),
    chunk!("heartbeat-ack", 5),
    chunk!("abort", 6),
    chunk!("shutdown", 7, "cum-tsn-ack" 32 32),
    chunk!("shutdown-ack", 8),
    chunk!("error", 9),
    chunk!("cookie-echo", 10),
    chunk!("cookie-ack", 11),
    chunk!("ecne", 12, "lowest-tsn" 32 32),
    chunk!("cwr", 13, "lowest-tsn" 32 32),
    chunk!("shutdown-complete", 14),
    chunk!("asconf-ack", 0x80, "seqno" 32 32),
    chunk!("forward-tsn", 0xc0, "new-cum-tsn" 32 32),
    chunk!("asconf", 0xc1, "seqno" 32 32),
];

/// The table for `op`.
pub fn table(op: ExthdrOp) -> &'static [Exthdr] {
    match op {
        Ipv6 => IPV6,
        TcpOpt => TCP_OPTIONS,
        Ipv4 => IP_OPTIONS,
        Sctp => SCTP_CHUNKS,
        Dccp => &[],
    }
}

/// The header of kind `op` called `name`.
pub fn by_name(op: ExthdrOp, name: &str) -> Option<&'static Exthdr> {
    table(op).iter().find(|h| h.name == name)
}

/// The header(s) and field for a kernel `exthdr` (type, offset, len in
/// bytes are converted by the caller to bits). The first header of that
/// type holding a field at exactly these bits wins.
pub fn field_at(
    op: ExthdrOp,
    ty: u8,
    offset: u32,
    len: u32,
) -> Option<(&'static Exthdr, &'static Field)> {
    table(op)
        .iter()
        .filter(|h| h.ty == ty)
        .find_map(|h| Some((h, h.field_at(offset, len)?)))
}

/// The first header with type number `ty` (for `exthdr exists` checks).
pub fn by_type(op: ExthdrOp, ty: u8) -> Option<&'static Exthdr> {
    table(op).iter().find(|h| h.ty == ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_both_ways() {
        let h = by_name(TcpOpt, "maxseg").unwrap();
        assert_eq!(h.ty, 2);
        let (h2, f2) = field_at(TcpOpt, 2, 16, 16).unwrap();
        assert_eq!((h2.name, f2.name), ("maxseg", "size"));
        let (h3, f3) = field_at(Ipv6, 44, 31, 1).unwrap();
        assert_eq!((h3.name, f3.name), ("frag", "more-fragments"));
        assert_eq!(
            by_name(Sctp, "init")
                .unwrap()
                .field("a-rwnd")
                .unwrap()
                .offset,
            64
        );
    }
}
