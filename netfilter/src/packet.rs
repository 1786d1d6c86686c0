//! Packet headers as NFLOG and trace messages carry them: link, network
//! and transport headers parsed (with `etherparse`, tolerant of packets cut
//! short by a copy range) into plain values, printable as nft prints a
//! packet in `nft monitor trace`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    Ethernet2Slice, LaxNetSlice, LaxSlicedPacket, TcpSlice, TransportSlice, UdpSlice,
};
use serde::Serialize;

/// What could be read of a packet's headers; a layer that is absent or
/// could not be parsed is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Headers {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<Ethernet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    /// Where the transport payload starts in the bytes parsed by
    /// [`Headers::from_ip`] (NFLOG's payload), when it was reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_offset: Option<usize>,
}

/// An Ethernet II header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Ethernet {
    pub src: Mac,
    pub dst: Mac,
    pub ether_type: u16,
}

/// A MAC address, printed `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The network header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "proto")]
pub enum Network {
    Ipv4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        /// The transport protocol (`ip protocol`).
        protocol: u8,
        ttl: u8,
        id: u16,
        dscp: u8,
        ecn: u8,
        /// Total length, header included.
        length: u16,
        /// Fragment offset in 8-byte units; non-zero or `more_fragments`
        /// for a fragment.
        fragment_offset: u16,
        more_fragments: bool,
    },
    Ipv6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        /// The protocol after the extension headers.
        protocol: u8,
        hop_limit: u8,
        flow_label: u32,
        dscp: u8,
        ecn: u8,
        /// Payload length.
        length: u16,
    },
}

impl Network {
    pub fn src(&self) -> IpAddr {
        match *self {
            Network::Ipv4 { src, .. } => src.into(),
            Network::Ipv6 { src, .. } => src.into(),
        }
    }
    pub fn dst(&self) -> IpAddr {
        match *self {
            Network::Ipv4 { dst, .. } => dst.into(),
            Network::Ipv6 { dst, .. } => dst.into(),
        }
    }
    /// The transport protocol number.
    pub fn protocol(&self) -> u8 {
        match *self {
            Network::Ipv4 { protocol, .. } | Network::Ipv6 { protocol, .. } => protocol,
        }
    }
}

/// TCP flags as the header holds them (`cwr ece urg ack psh rst syn fin`,
/// high bit first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
    const NAMES: [(u8, &'static str); 8] = [
        (Self::FIN, "fin"),
        (Self::SYN, "syn"),
        (Self::RST, "rst"),
        (Self::PSH, "psh"),
        (Self::ACK, "ack"),
        (Self::URG, "urg"),
        (Self::ECE, "ecn"),
        (Self::CWR, "cwr"),
    ];
}

impl fmt::Display for TcpFlags {
    /// nft's names joined with ` | ` (`syn | ack`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, name) in Self::NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("0x0")?;
        }
        Ok(())
    }
}

/// The transport header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "proto")]
pub enum Transport {
    Tcp {
        sport: u16,
        dport: u16,
        flags: TcpFlags,
        seq: u32,
        ack: u32,
        window: u16,
    },
    Udp {
        sport: u16,
        dport: u16,
        /// UDP length, header included.
        length: u16,
    },
    Icmp {
        #[serde(rename = "type")]
        ty: u8,
        code: u8,
    },
    Icmpv6 {
        #[serde(rename = "type")]
        ty: u8,
        code: u8,
    },
}

impl Transport {
    /// Source and destination ports, for TCP and UDP.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match *self {
            Transport::Tcp { sport, dport, .. } | Transport::Udp { sport, dport, .. } => {
                Some((sport, dport))
            }
            _ => None,
        }
    }
}

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;

impl Headers {
    /// Parses a packet that starts at its network header (what NFLOG
    /// copies for the ip, ip6 and inet families).
    pub fn from_ip(bytes: &[u8]) -> Headers {
        let Ok(p) = LaxSlicedPacket::from_ip(bytes) else {
            return Headers::default();
        };
        let mut h = Headers {
            network: p.net.as_ref().and_then(network_header),
            ..Headers::default()
        };
        if let Some(t) = &p.transport {
            h.transport = transport(t);
            let (whole, payload) = match t {
                TransportSlice::Tcp(t) => (t.slice(), t.payload()),
                TransportSlice::Udp(u) => (u.slice(), u.payload()),
                TransportSlice::Icmpv4(i) => (i.slice(), i.payload()),
                TransportSlice::Icmpv6(i) => (i.slice(), i.payload()),
                TransportSlice::Igmp(_) => (&[][..], &[][..]),
            };
            // Both are sub-slices of `bytes`: the offset is their distance.
            if !whole.is_empty() {
                let start = whole.as_ptr() as usize - bytes.as_ptr() as usize;
                h.payload_offset = Some(start + (whole.len() - payload.len()));
            }
        }
        h
    }

    /// Parses headers handed over separately, as trace messages do: the
    /// link header (Ethernet when 14 bytes long), the network header and
    /// the start of the transport header.
    pub fn from_parts(
        link: Option<&[u8]>,
        network: Option<&[u8]>,
        transport: Option<&[u8]>,
    ) -> Headers {
        let mut h = Headers {
            link: link.and_then(ethernet),
            ..Headers::default()
        };
        if let Some(Ok(p)) = network.map(LaxSlicedPacket::from_ip) {
            h.network = p.net.as_ref().and_then(network_header);
        }
        if let (Some(net), Some(t)) = (&h.network, transport) {
            h.transport = transport_of(net.protocol(), t);
        }
        h
    }

    /// The transport payload of `bytes` (the slice given to
    /// [`Headers::from_ip`]), when its start was reached.
    pub fn payload<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        bytes.get(self.payload_offset?..)
    }
}

fn network_header(n: &LaxNetSlice<'_>) -> Option<Network> {
    Some(match n {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            Network::Ipv4 {
                src: h.source_addr(),
                dst: h.destination_addr(),
                protocol: h.protocol().0,
                ttl: h.ttl(),
                id: h.identification(),
                dscp: h.dcp().value(),
                ecn: h.ecn().value(),
                length: h.total_len(),
                fragment_offset: h.fragments_offset().value(),
                more_fragments: h.more_fragments(),
            }
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            Network::Ipv6 {
                src: h.source_addr(),
                dst: h.destination_addr(),
                protocol: v6.payload().ip_number.0,
                hop_limit: h.hop_limit(),
                flow_label: h.flow_label().value(),
                dscp: h.dscp().value(),
                ecn: h.ecn().value(),
                length: h.payload_length(),
            }
        }
        LaxNetSlice::Arp(_) => return None,
    })
}

fn ethernet(b: &[u8]) -> Option<Ethernet> {
    if b.len() != 14 {
        return None;
    }
    let e = Ethernet2Slice::from_slice_without_fcs(b).ok()?;
    Some(Ethernet {
        src: Mac(e.source()),
        dst: Mac(e.destination()),
        ether_type: e.ether_type().0,
    })
}

fn transport(t: &TransportSlice<'_>) -> Option<Transport> {
    Some(match t {
        TransportSlice::Tcp(t) => tcp(t),
        TransportSlice::Udp(u) => udp(u),
        TransportSlice::Icmpv4(i) => Transport::Icmp {
            ty: i.type_u8(),
            code: i.code_u8(),
        },
        TransportSlice::Icmpv6(i) => Transport::Icmpv6 {
            ty: i.type_u8(),
            code: i.code_u8(),
        },
        // IGMP: the protocol number in the network header says enough.
        TransportSlice::Igmp(_) => return None,
    })
}

fn tcp(t: &TcpSlice<'_>) -> Transport {
    // The flags byte, high bit first: cwr ece urg ack psh rst syn fin.
    let bits = [
        (t.cwr(), TcpFlags::CWR),
        (t.ece(), TcpFlags::ECE),
        (t.urg(), TcpFlags::URG),
        (t.ack(), TcpFlags::ACK),
        (t.psh(), TcpFlags::PSH),
        (t.rst(), TcpFlags::RST),
        (t.syn(), TcpFlags::SYN),
        (t.fin(), TcpFlags::FIN),
    ];
    Transport::Tcp {
        sport: t.source_port(),
        dport: t.destination_port(),
        flags: TcpFlags(bits.iter().filter(|b| b.0).fold(0, |a, b| a | b.1)),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        window: t.window_size(),
    }
}

fn udp(u: &UdpSlice<'_>) -> Transport {
    Transport::Udp {
        sport: u.source_port(),
        dport: u.destination_port(),
        length: u.length(),
    }
}

/// A transport header given on its own (trace messages carry its first
/// bytes, without the options a TCP header may announce).
fn transport_of(protocol: u8, b: &[u8]) -> Option<Transport> {
    match protocol {
        IPPROTO_TCP => {
            if let Ok(t) = TcpSlice::from_slice(b) {
                return Some(tcp(&t));
            }
            // Options cut off: parse the fixed 20 bytes as an option-less header.
            let mut fixed = [0u8; 20];
            fixed.copy_from_slice(b.get(..20)?);
            fixed[12] = (5 << 4) | (fixed[12] & 0x0f);
            TcpSlice::from_slice(&fixed).ok().map(|t| tcp(&t))
        }
        IPPROTO_UDP => UdpSlice::from_slice_lax(b).ok().map(|u| udp(&u)),
        IPPROTO_ICMP => etherparse::Icmpv4Slice::from_slice(b)
            .ok()
            .map(|i| Transport::Icmp {
                ty: i.type_u8(),
                code: i.code_u8(),
            }),
        IPPROTO_ICMPV6 => etherparse::Icmpv6Slice::from_slice(b)
            .ok()
            .map(|i| Transport::Icmpv6 {
                ty: i.type_u8(),
                code: i.code_u8(),
            }),
        _ => None,
    }
}

impl fmt::Display for Headers {
    /// As nft prints a packet (`ip saddr 10.0.0.1 ip daddr 10.0.0.2 ip
    /// protocol tcp tcp sport 40000 tcp dport 22 tcp flags == syn`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(e) = &self.link {
            parts.push(format!("ether saddr {} ether daddr {}", e.src, e.dst));
        }
        match &self.network {
            Some(Network::Ipv4 {
                src,
                dst,
                protocol,
                ttl,
                id,
                length,
                ..
            }) => parts.push(format!(
                "ip saddr {src} ip daddr {dst} ip ttl {ttl} ip id {id} ip protocol {} ip length {length}",
                proto_name(*protocol)
            )),
            Some(Network::Ipv6 {
                src,
                dst,
                protocol,
                hop_limit,
                length,
                ..
            }) => parts.push(format!(
                "ip6 saddr {src} ip6 daddr {dst} ip6 hoplimit {hop_limit} ip6 nexthdr {} ip6 length {length}",
                proto_name(*protocol)
            )),
            None => {}
        }
        match &self.transport {
            Some(Transport::Tcp {
                sport,
                dport,
                flags,
                window,
                ..
            }) => parts.push(format!(
                "tcp sport {sport} tcp dport {dport} tcp flags == {flags} tcp window {window}"
            )),
            Some(Transport::Udp {
                sport,
                dport,
                length,
            }) => parts.push(format!(
                "udp sport {sport} udp dport {dport} udp length {length}"
            )),
            Some(Transport::Icmp { ty, code }) => {
                parts.push(format!("icmp type {ty} icmp code {code}"))
            }
            Some(Transport::Icmpv6 { ty, code }) => {
                parts.push(format!("icmpv6 type {ty} icmpv6 code {code}"))
            }
            None => {}
        }
        f.write_str(&parts.join(" "))
    }
}

fn proto_name(p: u8) -> String {
    match p {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        IPPROTO_ICMP => "icmp".into(),
        IPPROTO_ICMPV6 => "ipv6-icmp".into(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 + UDP, built with etherparse's writer (not by hand).
    fn udp_packet(payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(4000, 5555);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn parses_ipv4_udp_and_finds_the_payload() {
        let p = udp_packet(b"hello");
        let h = Headers::from_ip(&p);
        assert_eq!(h.network.unwrap().src(), IpAddr::from([10, 0, 0, 1]));
        assert_eq!(h.network.unwrap().protocol(), 17);
        assert_eq!(h.transport.unwrap().ports(), Some((4000, 5555)));
        assert_eq!(h.payload(&p), Some(&b"hello"[..]));
    }

    #[test]
    fn truncated_packets_parse_what_is_there() {
        let p = udp_packet(b"hello");
        for cut in 0..p.len() {
            let h = Headers::from_ip(&p[..cut]);
            if cut >= 20 {
                assert!(h.network.is_some(), "cut {cut}");
            }
            let _ = h.to_string();
        }
    }

    #[test]
    fn tcp_header_without_its_options() {
        let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 22, 7, 64240)
            .syn()
            .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
            .unwrap();
        let mut p = Vec::new();
        b.write(&mut p, &[]).unwrap();
        let h = Headers::from_parts(None, Some(&p[..20]), Some(&p[20..40]));
        assert_eq!(
            h.transport,
            Some(Transport::Tcp {
                sport: 40000,
                dport: 22,
                flags: TcpFlags(TcpFlags::SYN),
                seq: 7,
                ack: 0,
                window: 64240
            })
        );
        assert!(h.to_string().ends_with("tcp flags == syn tcp window 64240"));
    }
}
