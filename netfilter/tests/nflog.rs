//! NFLOG with real packets: a client namespace sends UDP datagrams through
//! a veth pair to a server namespace whose firewall logs them to a group;
//! every datagram is received with the headers that were sent, or counted
//! in a `Lost(n)` whose n is exactly the number missing at that point.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use linx_netfilter::netlink::stream::Feed;
use linx_netfilter::nflog::{LogConfig, LogItem, LoggedPacket, Nflog};
use linx_netfilter::packet::{Network, Transport};
use linx_netfilter::testing::TestNetns;
use linx_netfilter::Family;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);
const PORT: u16 = 5555;
const PAYLOAD: usize = 64;

fn pair(group: u16) -> (TestNetns, TestNetns) {
    let client = TestNetns::new();
    let server = TestNetns::new();
    client.link(&server, CLIENT, SERVER);
    server.load(&format!(
        "table inet linx {{\n\tchain input {{\n\t\ttype filter hook input priority filter; policy accept;\n\t\tudp dport {PORT} log prefix \"linx \" group {group} drop\n\t}}\n}}\n"
    ));
    (client, server)
}

/// The datagram numbered `i`: its number, then filler.
fn datagram(i: u32) -> [u8; PAYLOAD] {
    let mut d = [0xa5u8; PAYLOAD];
    d[..4].copy_from_slice(&i.to_be_bytes());
    d
}

/// Sends datagrams `range` from the client as fast as it can; returns the
/// source port.
fn send(client: &TestNetns, range: std::ops::Range<u32>) -> u16 {
    client
        .netns()
        .run_in(|| {
            let s = UdpSocket::bind((CLIENT, 0)).unwrap();
            let to = SocketAddr::from((SERVER, PORT));
            for i in range {
                s.send_to(&datagram(i), to).unwrap();
            }
            s.local_addr().unwrap().port()
        })
        .unwrap()
}

/// Checks one logged packet against the datagram it must be; returns its number.
fn check(p: &LoggedPacket, group: u16, sport: u16) -> u32 {
    assert_eq!(p.group, group);
    assert_eq!(p.prefix.as_deref(), Some("linx "));
    assert_eq!(p.family, Family::Ip);
    assert_eq!(p.hook_name(), "input");
    assert_eq!(
        p.indev.as_ref().and_then(|i| i.name.as_deref()),
        Some("veth1")
    );
    match p.headers.network {
        Some(Network::Ipv4 {
            src,
            dst,
            protocol,
            length,
            ..
        }) => {
            assert_eq!((src, dst, protocol), (CLIENT, SERVER, 17));
            assert_eq!(length as usize, 20 + 8 + PAYLOAD);
        }
        ref n => panic!("not IPv4: {n:?}"),
    }
    assert_eq!(
        p.headers.transport,
        Some(Transport::Udp {
            sport,
            dport: PORT,
            length: (8 + PAYLOAD) as u16
        })
    );
    let data = p.data().expect("payload copied");
    let i = u32::from_be_bytes(data[..4].try_into().unwrap());
    assert_eq!(data, datagram(i), "payload of datagram {i}");
    i
}

/// Reads until `total` datagrams are accounted for (received or lost);
/// checks that each `Lost(n)` stands for exactly the n datagrams missing
/// where it appears. Returns (received, lost).
fn account(log: &mut Nflog, group: u16, sport: u16, total: u32) -> (u32, u32) {
    let (mut next, mut received, mut lost) = (0u32, 0u32, 0u32);
    while next < total {
        let item = log
            .next_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap_or_else(|| panic!("stalled at datagram {next} of {total}"));
        match item {
            LogItem::Packet(p) => {
                let i = check(&p, group, sport);
                assert_eq!(i, next, "datagrams arrive in order, gaps reported");
                next += 1;
                received += 1;
            }
            LogItem::Lost(n) => {
                assert!(n > 0);
                next += n as u32;
                lost += n as u32;
            }
        }
    }
    assert_eq!(next, total, "a loss counted more than was missing");
    (received, lost)
}

#[test]
fn ten_thousand_packets_at_once_all_received_or_lost_counted_exactly() {
    let group = 7;
    let (client, server) = pair(group);
    let mut cfg = LogConfig::group(group);
    cfg.receive_buffer = 64 << 20;
    let mut log = Nflog::bind(&server.netns(), &cfg).unwrap();
    let sport = send(&client, 0..10_000);
    // A loss is known from the next packet's sequence number: one more
    // datagram after the burst closes the count.
    let sport2 = send(&client, 10_000..10_001);
    let (received, lost) = account(&mut log, group, sport, 10_000);
    let last = log.next_timeout(Duration::from_secs(10)).unwrap();
    match last {
        Some(LogItem::Packet(p)) => assert_eq!(check(&p, group, sport2), 10_000),
        other => panic!("expected the closing datagram: {other:?}"),
    }
    assert_eq!(received + lost, 10_000);
    assert_eq!(
        (log.received(), log.lost()),
        (received as u64 + 1, lost as u64)
    );
    eprintln!("10,000 datagrams: {received} received, {lost} lost");
}

#[test]
fn an_overflowing_socket_reports_the_exact_loss() {
    let group = 8;
    let (client, server) = pair(group);
    let mut cfg = LogConfig::group(group);
    cfg.receive_buffer = 64 << 10; // far too small for a burst
    let mut log = Nflog::bind(&server.netns(), &cfg).unwrap();
    let sport = send(&client, 0..2_000);
    let sport2 = send(&client, 2_000..2_001);
    let (received, lost) = account(&mut log, group, sport, 2_000);
    assert!(lost > 0, "the burst overflowed a 64 KiB buffer");
    match log.next_timeout(Duration::from_secs(10)).unwrap() {
        Some(LogItem::Packet(p)) => assert_eq!(check(&p, group, sport2), 2_000),
        other => panic!("expected the closing datagram: {other:?}"),
    }
    eprintln!("2,000 datagrams into 64 KiB: {received} received, {lost} lost");
}

#[test]
fn a_group_is_released_when_dropped_and_busy_while_held() {
    let (_client, server) = pair(9);
    let log = Nflog::bind(&server.netns(), &LogConfig::group(9)).unwrap();
    let err = Nflog::bind(&server.netns(), &LogConfig::group(9))
        .err()
        .expect("a bound group cannot be bound twice");
    assert!(err.to_string().contains("nflog group 9"), "{err}");
    drop(log);
    Nflog::bind(&server.netns(), &LogConfig::group(9)).expect("released on drop");
}
