//! What a selector (`tcp dport`, `meta mark`, `ct original saddr`) loads,
//! its datatype, and the protocol it needs matched first.
//!
//! Kept here until `crate::proto` provides the shared protocol tables.

use super::types::*;
use crate::proto::exthdr::{self, ExthdrOp};
use crate::proto::{header, keys};
use crate::sys::*;

/// The protocol a header field belongs to, for dependencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    None,
    Ether,
    Vlan,
    Arp,
    Ip,
    Ip6,
    /// A transport protocol (number), with the network protocol it needs.
    L4(u8, Option<L3>),
    /// Any transport header (`th`): needs only that one exists.
    Th,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    Ip,
    Ip6,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Load {
    /// Bits, relative to the header base.
    Payload {
        base: u32,
        off: u32,
        len: u32,
    },
    Meta(u32),
    Ct {
        key: u32,
        dir: Option<u32>,
    },
    /// IPv6 extension header / TCP option / IPv4 option.
    Exthdr {
        op: u32,
        ty: u8,
        off: u32,
        len: u32,
        flags: u32,
    },
    Rt(u32),
    /// IPsec state: `ipsec in|out [spnum N] KEY`.
    Xfrm {
        key: u32,
        dir: u8,
        spnum: u32,
    },
    Socket {
        key: u32,
        level: Option<u32>,
    },
    Numgen {
        mode: u32,
        modulus: u32,
        offset: u32,
    },
    Osf {
        ttl: u32,
        flags: u32,
    },
    Fib {
        flags: u32,
        result: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub load: Load,
    pub dt: Dtype,
    pub proto: Proto,
}

fn p(base: u32, off: u32, len: u32, dt: Dtype, proto: Proto) -> Field {
    let dt = if dt.kind == Kind::Int && dt.bits != len && dt.syms.is_empty() {
        dt.bits(len)
    } else {
        dt
    };
    Field {
        load: Load::Payload { base, off, len },
        dt,
        proto,
    }
}

const LL: u32 = NFT_PAYLOAD_LL_HEADER;
const NH: u32 = NFT_PAYLOAD_NETWORK_HEADER;
const TH: u32 = NFT_PAYLOAD_TRANSPORT_HEADER;

/// A selector's words, borrowed (on the stack: selectors are short).
pub(super) fn words(path: &[String]) -> smallvec::SmallVec<[&str; 8]> {
    path.iter().map(String::as_str).collect()
}

/// Headers nft 1.0.6 can match (tunnel headers need a newer nft).
const HEADERS: &[&str] = &[
    "ether", "vlan", "arp", "ip", "ip6", "icmp", "icmpv6", "igmp", "tcp", "udp", "udplite", "sctp",
    "dccp", "ah", "esp", "comp", "th",
];

/// A header field from the shared table `crate::proto::header`, with the
/// protocol it needs matched first.
fn header_field(h: &str, rest: &[&str]) -> Option<Field> {
    let name: std::borrow::Cow<str> = match (h, rest) {
        ("arp", ["saddr"]) => "saddr ip".into(),
        ("arp", ["daddr"]) => "daddr ip".into(),
        ("icmpv6", ["parameter-problem"]) => "param-problem".into(),
        ("icmpv6", ["packet-too-big"]) => "mtu".into(),
        // Neighbour discovery addresses are newer than nft 1.0.6.
        ("icmpv6", ["taddr" | "daddr"]) => return None,
        (_, [one]) => (*one).into(),
        _ => rest.join(" ").into(),
    };
    let (hdr, f) = header::field(h, &name)?;
    let proto = match h {
        "ether" => Proto::Ether,
        "vlan" => Proto::Vlan,
        "arp" => Proto::Arp,
        "ip" => Proto::Ip,
        "ip6" => Proto::Ip6,
        "icmp" => Proto::L4(1, Some(L3::Ip)),
        "icmpv6" => Proto::L4(58, Some(L3::Ip6)),
        "igmp" => Proto::L4(2, Some(L3::Ip)),
        "th" => Proto::Th,
        _ => Proto::L4(header::ip_protocol(hdr)?, None),
    };
    Some(p(
        u32::from(hdr.base),
        f.offset,
        f.len,
        packet_dtype(f),
        proto,
    ))
}

/// Resolves a selector path in a table of `family` (for `ct saddr`).
pub fn field(path: &[String], family_l3: Option<L3>) -> Option<Field> {
    let w = words(path);
    Some(match w.as_slice() {
        [h, rest @ ..]
            if HEADERS.contains(h)
                && !rest.is_empty()
                && !matches!(rest[0], "option" | "chunk") =>
        {
            header_field(h, rest)?
        }
        ["@", base, off, len] => {
            let base = match *base {
                "ll" => LL,
                "nh" => NH,
                "th" => TH,
                "ih" => NFT_PAYLOAD_INNER_HEADER,
                _ => return None,
            };
            let off: u32 = off.parse().ok()?;
            let len: u32 = len.parse().ok()?;
            if !raw_bits_fit(off, len) {
                return None;
            }
            p(base, off, len, BE_INT.bits(len), Proto::None)
        }
        ["exthdr", h] => {
            let ty = match *h {
                "hbh" => 0,
                "rt" => 43,
                "frag" => 44,
                "dst" => 60,
                "mh" => 135,
                _ => return None,
            };
            Field {
                load: Load::Exthdr {
                    op: 0,
                    ty,
                    off: 0,
                    len: 8,
                    flags: NFT_EXTHDR_F_PRESENT,
                },
                dt: BOOLEAN.bits(8),
                proto: Proto::Ip6,
            }
        }
        [h @ ("hbh" | "dst" | "rt" | "frag" | "mh" | "srh" | "rt0" | "rt2"), f]
            if exthdr6(h, f).is_some() =>
        {
            exthdr6(h, f)?
        }
        ["tcp", "option", rest @ ..] => {
            tcp_option_by_number(rest).or_else(|| exthdr_field(ExthdrOp::TcpOpt, rest))?
        }
        ["ip", "option", rest @ ..] => exthdr_field(ExthdrOp::Ipv4, rest)?,
        ["sctp", "chunk", rest @ ..] => exthdr_field(ExthdrOp::Sctp, rest)?,
        ["meta", k] => meta(k)?,
        [k] => meta(k)?,
        ["ct", rest @ ..] => ct(rest, family_l3)?,
        ["fib", rest @ ..] => fib(rest)?,
        ["ipsec", dir @ ("in" | "out"), rest @ ..] => {
            let (spnum, rest) = match rest {
                ["spnum", n, r @ ..] => (n.parse::<u8>().ok()? as u32, r),
                r => (0, r),
            };
            let (key, dt) = match rest {
                ["reqid"] => (NFT_XFRM_KEY_REQID, INTEGER),
                ["spi"] => (NFT_XFRM_KEY_SPI, BE_INT),
                ["ip", "saddr"] => (NFT_XFRM_KEY_SADDR_IP4, IPV4),
                ["ip", "daddr"] => (NFT_XFRM_KEY_DADDR_IP4, IPV4),
                ["ip6", "saddr"] => (NFT_XFRM_KEY_SADDR_IP6, IPV6),
                ["ip6", "daddr"] => (NFT_XFRM_KEY_DADDR_IP6, IPV6),
                _ => return None,
            };
            Field {
                load: Load::Xfrm {
                    key,
                    dir: (*dir == "out") as u8,
                    spnum,
                },
                dt,
                proto: Proto::None,
            }
        }
        ["rt", k] | ["rt", "ip" | "ip6", k] => {
            let (key, dt) = match *k {
                "classid" => (NFT_RT_CLASSID, REALM),
                "nexthop" => match (w.get(1).copied(), family_l3) {
                    (Some("ip6"), _) | (Some("nexthop"), Some(L3::Ip6)) => (NFT_RT_NEXTHOP6, IPV6),
                    _ => (NFT_RT_NEXTHOP4, IPV4),
                },
                // The MSS for the route's MTU, in host order.
                "mtu" => (NFT_RT_TCPMSS, INTEGER.bits(16)),
                "ipsec" => (NFT_RT_XFRM, BOOLEAN),
                _ => return None,
            };
            Field {
                load: Load::Rt(key),
                dt,
                proto: Proto::None,
            }
        }
        ["socket", k, rest @ ..] => {
            let (key, dt, level) = match *k {
                "transparent" => (NFT_SOCKET_TRANSPARENT, INTEGER.bits(1), None),
                "mark" => (NFT_SOCKET_MARK, MARK, None),
                "wildcard" => (NFT_SOCKET_WILDCARD, INTEGER.bits(1), None),
                "cgroupv2" => (3, CGROUPV2, rest.get(1).and_then(|l| l.parse().ok())),
                _ => return None,
            };
            Field {
                load: Load::Socket { key, level },
                dt,
                proto: Proto::None,
            }
        }
        ["osf", rest @ ..] => osf(rest)?,
        ["numgen", mode, rest @ ..] => {
            let mode = match *mode {
                "inc" => 0,
                "random" => 1,
                _ => return None,
            };
            let (mut modulus, mut offset) = (None, 0);
            for kv in rest.chunks(2) {
                match kv {
                    ["mod", n] => modulus = crate::syntax::parser::parse_u64(n),
                    ["offset", n] => offset = crate::syntax::parser::parse_u64(n)?,
                    _ => return None,
                }
            }
            Field {
                load: Load::Numgen {
                    mode,
                    modulus: modulus? as u32,
                    offset: offset as u32,
                },
                dt: INTEGER,
                proto: Proto::None,
            }
        }
        _ => return None,
    })
}

/// `osf [ttl loose|skip] name|version`: the OS guessed from a SYN, as a
/// 16-byte string (`name:version` with the version flag).
fn osf(rest: &[&str]) -> Option<Field> {
    let (ttl, rest) = match rest {
        ["ttl", "loose", r @ ..] => (1, r),
        ["ttl", "skip", r @ ..] => (2, r),
        r => (0, r),
    };
    let flags = match rest {
        ["name"] => 0,
        ["version"] => NFT_OSF_F_VERSION,
        _ => return None,
    };
    Some(Field {
        load: Load::Osf { ttl, flags },
        dt: STRING,
        proto: Proto::None,
    })
}

/// `fib saddr . iif oif [present]`: route lookup keyed by the `.`-joined
/// inputs, giving the output interface (index or name) or address type.
fn fib(rest: &[&str]) -> Option<Field> {
    let (present, rest) = match rest {
        [r @ .., "present"] => (true, r),
        r => (false, r),
    };
    let (result, inputs) = rest.split_last()?;
    let mut flags = 0;
    for (i, w) in inputs.iter().enumerate() {
        if i % 2 == 1 {
            if *w != "." {
                return None;
            }
            continue;
        }
        flags |= match *w {
            "saddr" => NFTA_FIB_F_SADDR,
            "daddr" => NFTA_FIB_F_DADDR,
            "mark" => NFTA_FIB_F_MARK,
            "iif" => NFTA_FIB_F_IIF,
            "oif" => NFTA_FIB_F_OIF,
            _ => return None,
        } as u32;
    }
    let both = |a: u16, b: u16| flags & (a | b) as u32 == (a | b) as u32;
    // Exactly one address; at most one of the interfaces.
    if flags & (NFTA_FIB_F_SADDR | NFTA_FIB_F_DADDR) as u32 == 0
        || both(NFTA_FIB_F_SADDR, NFTA_FIB_F_DADDR)
        || both(NFTA_FIB_F_IIF, NFTA_FIB_F_OIF)
    {
        return None;
    }
    let (result, dt) = match *result {
        "oif" => (NFT_FIB_RESULT_OIF, IFINDEX),
        "oifname" => (NFT_FIB_RESULT_OIFNAME, IFNAME),
        "type" => (NFT_FIB_RESULT_ADDRTYPE, FIB_ADDR),
        _ => return None,
    };
    let (flags, dt) = if present {
        // The result register holds a 32-bit flag.
        (flags | NFTA_FIB_F_PRESENT as u32, BOOLEAN.bits(32))
    } else {
        (flags, dt)
    };
    Some(Field {
        load: Load::Fib { flags, result },
        dt,
        proto: Proto::None,
    })
}

/// The compiler's datatype for a meta or ct key of the shared table.
fn key_dtype(k: &keys::Key) -> Dtype {
    let d = from_proto(k.dtype);
    if k.bits != 0 {
        d.bits(k.bits)
    } else {
        d
    }
}

fn meta(k: &str) -> Option<Field> {
    let name = match k {
        "ibriport" => "ibrname",
        "obriport" => "obrname",
        "secpath" => "ipsec",
        // Newer than nft 1.0.6.
        "broute" => return None,
        k => k,
    };
    let key = keys::meta_by_name(name)?;
    Some(Field {
        load: Load::Meta(key.key),
        dt: key_dtype(key),
        proto: Proto::None,
    })
}

fn ct(rest: &[&str], family_l3: Option<L3>) -> Option<Field> {
    let (dir, rest) = match rest {
        ["original", r @ ..] => (Some(0), r),
        ["reply", r @ ..] => (Some(1), r),
        r => (None, r),
    };
    let addr = |v4: u32, v6: u32| match family_l3 {
        Some(L3::Ip6) => (v6, IPV6),
        _ => (v4, IPV4),
    };
    let (key, dt) = match rest {
        ["saddr"] => addr(NFT_CT_SRC, NFT_CT_SRC),
        ["daddr"] => addr(NFT_CT_DST, NFT_CT_DST),
        r => {
            let k = keys::ct_by_name(&r.join(" "))?;
            (k.key, key_dtype(k))
        }
    };
    // Tuple keys need a direction; per-connection keys take none.
    let tuple = matches!(
        rest,
        ["saddr" | "daddr" | "proto-src" | "proto-dst"] | ["ip" | "ip6", "saddr" | "daddr"]
    );
    let whole = matches!(
        rest,
        ["state"
            | "direction"
            | "status"
            | "mark"
            | "secmark"
            | "expiration"
            | "helper"
            | "label"
            | "event"
            | "id"]
    );
    if (tuple && dir.is_none()) || (whole && dir.is_some()) {
        return None;
    }
    // The kernel ignores (and does not dump) a direction on the protocol
    // keys, so none is sent.
    let dir = if matches!(rest, ["protocol" | "l3proto"]) {
        None
    } else {
        dir
    };
    Some(Field {
        load: Load::Ct { key, dir },
        dt,
        proto: Proto::None,
    })
}

/// IPv6 extension header fields from `crate::proto::exthdr::IPV6`;
/// `srh` shares the routing header's first fields, and `sid[N]` is the
/// Nth 16-byte segment address after the 8-byte header.
fn exthdr6(h: &str, f: &str) -> Option<Field> {
    let sid = f
        .strip_prefix("sid[")
        .and_then(|n| n.strip_suffix(']'))
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=128).contains(n));
    let name = if matches!(h, "rt0" | "rt2") { "rt" } else { h };
    let e = exthdr::by_name(ExthdrOp::Ipv6, name)?;
    let (off, len, dt) = match sid {
        Some(n) if h == "srh" => (64 + (n - 1) * 128, 128, IPV6),
        _ => {
            let fd = e.field(f).or_else(|| {
                (h == "srh")
                    .then(|| exthdr::by_name(ExthdrOp::Ipv6, "rt")?.field(f))
                    .flatten()
            })?;
            (fd.offset, fd.len, packet_dtype(fd))
        }
    };
    Some(Field {
        load: Load::Exthdr {
            op: 0,
            ty: e.ty,
            off,
            len,
            flags: 0,
        },
        dt,
        proto: Proto::Ip6,
    })
}

/// The compiler's datatype of a packet field of the shared tables:
/// plain integers are in network order and as wide as the field.
fn packet_dtype(f: &header::Field) -> Dtype {
    let d = from_proto(f.dtype);
    if d.name == "integer" || d.bits == 0 {
        BE_INT.bits(f.len)
    } else {
        d
    }
}

/// Raw bits `OFF,LEN` are loaded as whole bytes into one 16-byte register:
/// the bytes they touch must fit it (nft itself aborts on more).
fn raw_bits_fit(off: u32, len: u32) -> bool {
    len != 0 && off.checked_add(len).is_some() && off % 8 + len <= 128
}

/// `tcp option N` (presence of kind N) and `tcp option @N,OFF,LEN` (bits
/// of kind N).
fn tcp_option_by_number(rest: &[&str]) -> Option<Field> {
    let kind = |n: &str| crate::syntax::parser::parse_u64(n).and_then(|n| u8::try_from(n).ok());
    let (ty, off, len, flags, dt) = match rest {
        [n] => (kind(n)?, 0, 8, NFT_EXTHDR_F_PRESENT, BOOLEAN.bits(8)),
        ["@", n, off, len] => {
            let (off, len): (u32, u32) = (off.parse().ok()?, len.parse().ok()?);
            if !raw_bits_fit(off, len) {
                return None;
            }
            (kind(n)?, off, len, 0, BE_INT.bits(len))
        }
        _ => return None,
    };
    Some(Field {
        load: Load::Exthdr {
            op: ExthdrOp::TcpOpt as u32,
            ty,
            off,
            len,
            flags,
        },
        dt,
        proto: Proto::None,
    })
}

/// TCP options, IPv4 options and SCTP chunks from the shared tables in
/// `crate::proto::exthdr`: `NAME` alone tests presence, `NAME FIELD`
/// loads the field (bit offsets within the option).
fn exthdr_field(op: ExthdrOp, rest: &[&str]) -> Option<Field> {
    let name = |n: &str| -> String {
        match (op, n) {
            (ExthdrOp::TcpOpt, "mss") => "maxseg".into(),
            (ExthdrOp::TcpOpt, "sack0") => "sack".into(),
            (ExthdrOp::TcpOpt, "sack-permitted") => "sack-perm".into(),
            (ExthdrOp::TcpOpt, "sack-permitted-kind") => "sack-perm".into(),
            _ => n.to_owned(),
        }
    };
    let proto = match op {
        ExthdrOp::Ipv4 => Proto::Ip,
        _ => Proto::None,
    };
    let (h, off, len, flags, dt) = match rest {
        [n] => {
            let h = exthdr::by_name(op, &name(n))?;
            (h, 0, 8, NFT_EXTHDR_F_PRESENT, BOOLEAN.bits(8))
        }
        [n, f] => {
            let h = exthdr::by_name(op, &name(n))?;
            let fd = h.field(f)?;
            let dt = packet_dtype(fd);
            (h, fd.offset, fd.len, 0, dt)
        }
        _ => return None,
    };
    Some(Field {
        load: Load::Exthdr {
            op: op as u32,
            ty: h.ty,
            off,
            len,
            flags,
        },
        dt,
        proto,
    })
}
