//! Malformed or truncated NFLOG and trace messages give an error, never a
//! panic: real messages captured from the kernel (packets logged and
//! traced between two namespaces), then every truncation, every byte set
//! to edge values, and many random multi-byte mutations of them, through
//! the decoders and the path assembler, as the cargo-fuzz targets
//! `nflog` and `trace` in `netfilter/fuzz/` do. With
//! `LINX_FUZZ_SEEDS=DIR` the captured messages are written there as seeds.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use linx_netfilter::netlink::Msgs;
use linx_netfilter::nflog::LoggedPacket;
use linx_netfilter::sys::*;
use linx_netfilter::testing::{fuzz_nflog, fuzz_trace, Rng, TestNetns};
use linx_netfilter::trace::TraceEvent;
use linx_netfilter::Socket;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 2);

/// Every datagram the socket receives within `wait`, as raw bytes.
fn capture(sock: &mut Socket, wait: Duration) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let got = sock
            .try_recv_messages(|m| out.push(m.bytes.to_vec()))
            .unwrap();
        if !got {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    out
}

/// Real trace and NFLOG messages: a SYN traced through a jump and a
/// policy, and UDP, TCP and ICMP packets logged.
fn real_messages() -> Vec<Vec<u8>> {
    let client = TestNetns::new();
    let server = TestNetns::new();
    client.link(&server, CLIENT, SERVER);
    server.load(
        "table inet t {
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		meta nftrace set 1
	}
	chain input {
		type filter hook input priority 0; policy drop;
		log prefix \"in \" group 3
		tcp dport 22 jump admin
		udp dport 53 accept
	}
	chain admin {
		counter
	}
}
",
    );
    let mut trace = Socket::open(&server.netns()).unwrap();
    trace.subscribe(NFNLGRP_NFTRACE).unwrap();
    let mut log = Socket::open(&server.netns()).unwrap();
    let ty = ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG) as u16;
    log.configure(
        ty,
        0,
        3,
        |w| {
            w.put(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND as u8]);
            w.put(NFULA_CFG_FLAGS, &(NFULNL_CFG_F_SEQ as u16).to_be_bytes());
        },
        "bind",
    )
    .unwrap();
    client.connect(SocketAddr::from((SERVER, 22)), Duration::from_millis(200));
    client
        .netns()
        .run_in(|| {
            let u = UdpSocket::bind((CLIENT, 0)).unwrap();
            u.send_to(b"query", (SERVER, 53)).unwrap();
        })
        .unwrap();
    let ping = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            client.name(),
            "ping",
            "-c",
            "1",
            "-W",
            "1",
            "10.80.0.2",
        ])
        .output();
    let _ = ping; // ICMP is a bonus: ping may be absent
    let mut msgs = capture(&mut trace, Duration::from_millis(300));
    let traces = msgs.len();
    // The kernel holds a partial queue for up to 1 s by default.
    msgs.extend(capture(&mut log, Duration::from_millis(1500)));
    assert!(traces >= 8, "trace messages captured: {traces}");
    assert!(msgs.len() >= traces + 2, "NFLOG messages captured");
    msgs
}

/// What the fuzz targets do with one buffer.
fn exercise(buf: &[u8]) {
    fuzz_nflog(buf);
    fuzz_trace(buf);
}

#[test]
fn mutated_real_messages_never_panic() {
    let msgs = real_messages();
    if let Some(dir) = std::env::var_os("LINX_FUZZ_SEEDS") {
        for (i, m) in msgs.iter().enumerate() {
            std::fs::write(std::path::Path::new(&dir).join(format!("real-{i}")), m).unwrap();
        }
    }
    // Each one as it came must decode (but the NLMSG_DONE that ends an
    // NFLOG batch).
    for m in &msgs {
        let msg = Msgs::new(m).next().unwrap().unwrap();
        if msg.ty == NLMSG_DONE {
            continue;
        }
        let decoded = TraceEvent::decode(&msg)
            .map(|e| e.is_some())
            .and_then(|t| LoggedPacket::decode(&msg).map(|p| t || p.is_some()));
        assert_eq!(decoded, Ok(true), "{m:02x?}");
    }
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    let whole: Vec<u8> = msgs.concat();
    inputs.push(whole);
    for m in &msgs {
        for cut in 0..m.len() {
            inputs.push(m[..cut].to_vec());
        }
        for i in 0..m.len() {
            for v in [0x00, 0xff, m[i].wrapping_add(1), m[i].wrapping_sub(1)] {
                let mut b = m.clone();
                b[i] = v;
                inputs.push(b);
            }
        }
        for _ in 0..2_000 {
            let mut b = m.clone();
            for _ in 0..1 + rng.below(6) {
                let i = rng.below(b.len());
                b[i] = rng.next_u64() as u8;
            }
            if rng.below(4) == 0 {
                b.truncate(rng.below(b.len() + 1));
            }
            inputs.push(b);
        }
    }
    let n = inputs.len();
    for input in inputs {
        if catch_unwind(AssertUnwindSafe(|| exercise(&input))).is_err() {
            panic!("decoder panicked on {input:02x?}");
        }
    }
    eprintln!("{} real messages, {n} inputs: no panic", msgs.len());
}

/// What cargo-fuzz found, kept: each must give an error, not a panic.
#[test]
fn fuzz_findings_are_refused() {
    use linx_netfilter::netlink::Writer;
    use linx_netfilter::nflog::LoggedPacket;
    // A timestamp of u64::MAX seconds and as many microseconds (the sum
    // overflowed a Duration).
    let mut w = Writer::new();
    let start = w.begin_msg(
        ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET) as u16,
        0,
        0,
        2,
        7,
    );
    w.put(NFULA_PACKET_HDR, &[0x08, 0x00, 1, 0]);
    w.put(NFULA_TIMESTAMP, &[0xff; 16]);
    w.end_msg(start);
    let m = Msgs::new(w.as_bytes()).next().unwrap().unwrap();
    assert!(LoggedPacket::decode(&m).is_err());
    exercise(w.as_bytes());
}
