//! Tracing and NFLOG beside nft, in throwaway namespaces joined by a veth
//! pair.
//!
//! `cargo bench -p linx-netfilter --features testing --bench observe`
//! (`-- quick` for fewer packets).
//!
//! 1. Decoding on one core: real NFLOG and trace messages captured from the
//!    kernel, decoded (and trace messages grouped into paths) in a loop.
//! 2. CPU per traced packet: a Linx session against `nft monitor trace`
//!    reading the same kind of packets.
//! 3. What tracing costs a packet through a 10,000-rule chain: the median
//!    time to send a UDP datagram through it (the receiving namespace's
//!    netfilter work runs inside the send) with no session, with a session
//!    tracing other packets, with a session tracing it, and with nft's way
//!    (a `meta nftrace set 1` rule and `nft monitor trace`).

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use linx_netfilter::netlink::Msgs;
use linx_netfilter::nflog::LoggedPacket;
use linx_netfilter::sys::*;
use linx_netfilter::testing::{synthetic_chain, TestNetns};
use linx_netfilter::trace::{Assembler, Next, Session, SessionConfig, TraceEvent};
use linx_netfilter::{Family, Socket};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 2);
const PORT: u16 = 9999;

fn pair() -> (TestNetns, TestNetns) {
    let client = TestNetns::new();
    let server = TestNetns::new();
    client.link(&server, CLIENT, SERVER);
    (client, server)
}

/// Sends `n` 64-byte datagrams to the server; returns the time taken.
fn send(client: &TestNetns, n: usize) -> Duration {
    client
        .netns()
        .run_in(|| {
            let s = UdpSocket::bind((CLIENT, 0)).unwrap();
            let to = SocketAddr::from((SERVER, PORT));
            let t = Instant::now();
            for _ in 0..n {
                s.send_to(&[0x5a; 64], to).unwrap();
            }
            t.elapsed()
        })
        .unwrap()
}

/// Sends `n` datagrams, timing each send: the receiving namespace's
/// netfilter work runs inside the send (veth hands the packet over on the
/// same CPU), so the median send is the median cost of a packet, and the
/// median stands still while neighbours load the shared cores.
fn median_send(client: &TestNetns, n: usize) -> Duration {
    let mut times = client
        .netns()
        .run_in(|| {
            let s = UdpSocket::bind((CLIENT, 0)).unwrap();
            let to = SocketAddr::from((SERVER, PORT));
            (0..n)
                .map(|_| {
                    let t = Instant::now();
                    s.send_to(&[0x5a; 64], to).unwrap();
                    t.elapsed()
                })
                .collect::<Vec<_>>()
        })
        .unwrap();
    times.sort_unstable();
    times[n / 2]
}

/// A listener in the server that reads (and discards) until dropped.
fn listener(server: &TestNetns) -> Arc<AtomicBool> {
    let sock = server.netns().run_in(socket2_udp).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = stop.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 128];
        while !done.load(Ordering::SeqCst) {
            let _ = sock.recv(&mut buf);
        }
    });
    stop
}

/// A UDP socket on the server's port with a receive buffer for a burst.
fn socket2_udp() -> UdpSocket {
    let s = UdpSocket::bind((SERVER, PORT)).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    let size: libc::c_int = 64 << 20;
    // SAFETY: setsockopt with a valid int option value.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    s
}

/// Every message a socket receives until it is quiet for `quiet`.
fn drain(sock: &mut Socket, quiet: Duration) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        if sock
            .try_recv_messages(|m| out.push(m.bytes.to_vec()))
            .unwrap()
        {
            last = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    out
}

/// Real messages: `n` logged datagrams and the trace of `n` datagrams
/// through a jump and back.
fn captured(n: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (client, server) = pair();
    server.load(&format!(
        "table inet marking {{
	chain pre {{
		type filter hook prerouting priority -300; policy accept;
		udp dport {PORT} meta nftrace set 1
	}}
}}
table inet t {{
	chain input {{
		type filter hook input priority 0; policy accept;
		udp dport {PORT} jump c
	}}
	chain c {{
		log prefix \"bench \" group 4
		udp dport {PORT} drop
	}}
}}
"
    ));
    let mut trace = Socket::open(&server.netns()).unwrap();
    trace.set_receive_buffer(256 << 20).unwrap();
    trace.subscribe(NFNLGRP_NFTRACE).unwrap();
    let mut log = Socket::open(&server.netns()).unwrap();
    log.set_receive_buffer(256 << 20).unwrap();
    log.configure(
        ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG) as u16,
        0,
        4,
        |w| {
            w.put(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND as u8]);
            w.put_u32_be(NFULA_CFG_QTHRESH, 1);
        },
        "bind",
    )
    .unwrap();
    send(&client, n);
    let traces = drain(&mut trace, Duration::from_millis(300));
    let logs = drain(&mut log, Duration::from_millis(300));
    (logs, traces)
}

/// Decodes `msgs` over and over for about a second; packets per second.
fn rate(msgs: &[Vec<u8>], packets: usize, mut f: impl FnMut(&[Vec<u8>])) -> f64 {
    let t = Instant::now();
    let mut rounds = 0;
    while t.elapsed() < Duration::from_secs(1) || rounds < 3 {
        f(msgs);
        rounds += 1;
    }
    (packets * rounds) as f64 / t.elapsed().as_secs_f64()
}

fn decoding(n: usize) {
    let (logs, traces) = captured(n);
    let logged = logs
        .iter()
        .filter(|m| {
            let m = Msgs::new(m).next().unwrap().unwrap();
            LoggedPacket::decode(&m).unwrap().is_some()
        })
        .count();
    let nflog = rate(&logs, logged, |msgs| {
        for b in msgs {
            for m in Msgs::new(b) {
                black_box(LoggedPacket::decode(&m.unwrap()).unwrap());
            }
        }
    });
    let mut paths = 0;
    let trace = rate(&traces, n, |msgs| {
        let now = Instant::now();
        let mut a = Assembler::new(Some((Family::Inet, "marking".into())), Duration::ZERO);
        for b in msgs {
            for m in Msgs::new(b) {
                if let Some(e) = TraceEvent::decode(&m.unwrap()).unwrap() {
                    a.push(&e, now);
                }
            }
        }
        a.flush();
        paths = 0;
        while let Some(p) = a.pop() {
            black_box(p);
            paths += 1;
        }
    });
    println!("decoding on one core (real messages, {n} packets captured):");
    println!(
        "  NFLOG: {logged} packet messages  {:>12.0} packets/s  ({:.2} us per packet)",
        nflog,
        1e6 / nflog
    );
    println!(
        "  trace: {} messages, {paths} paths  {:>12.0} packets/s  ({:.2} us per packet, decode + group into paths)",
        traces.len(),
        trace,
        1e6 / trace
    );
}

/// CPU time of a process (user + system), from /proc.
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().map(|x| x.parse::<u64>().unwrap_or(0)).sum());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// A Linx session tracing `matching` in `server` on its own thread until
/// stopped; returns (paths, CPU time of that thread).
fn session_thread(
    server: &TestNetns,
    matching: &str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Duration)> {
    let mut cfg = SessionConfig::new(matching);
    cfg.count = None;
    cfg.timeout = None;
    cfg.receive_buffer = 256 << 20;
    let mut s = Session::start(&server.netns(), &cfg).unwrap();
    std::thread::spawn(move || {
        let cpu0 = thread_cpu();
        let mut paths = 0;
        loop {
            match s.next(Duration::from_millis(50)).unwrap() {
                Next::Path(p) => {
                    black_box(p);
                    paths += 1;
                }
                Next::Done => break,
                Next::Pending if stop.load(Ordering::SeqCst) => break,
                Next::Pending => {}
            }
        }
        let cpu = thread_cpu() - cpu0;
        s.stop().unwrap();
        (paths, cpu)
    })
}

/// `nft monitor trace` in `server` (nsenter execs nft: the child's pid
/// is nft's).
fn nft_monitor(server: &TestNetns) -> std::process::Child {
    let child = server.spawn_nft(&["monitor", "trace"]);
    std::thread::sleep(Duration::from_millis(300));
    child
}

fn live(n: usize, rules: usize) {
    let (client, server) = pair();
    server.load(&synthetic_chain(rules));
    let listening = listener(&server);
    median_send(&client, n / 10); // warm up
    let nft_table = format!("table inet nfttrace {{\n\tchain pre {{\n\t\ttype filter hook prerouting priority -300; policy accept;\n\t\tudp dport {PORT} meta nftrace set 1\n\t}}\n}}\n");

    // The cases take turns, round after round, and each keeps its best
    // round.
    let [mut base, mut idle, mut traced, mut nft] = [Duration::MAX; 4];
    let (mut traced_paths, mut linx_cpu, mut nft_cpu) = (0, Duration::MAX, Duration::MAX);
    let mut nft_paths = 0;
    for _ in 0..3 {
        base = base.min(median_send(&client, n));

        let stop = Arc::new(AtomicBool::new(false));
        let other = session_thread(&server, "tcp dport 5432", stop.clone());
        idle = idle.min(median_send(&client, n));
        stop.store(true, Ordering::SeqCst);
        other.join().unwrap();

        let stop = Arc::new(AtomicBool::new(false));
        let t = session_thread(&server, &format!("udp dport {PORT}"), stop.clone());
        traced = traced.min(median_send(&client, n));
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        let (paths, cpu) = t.join().unwrap();
        traced_paths = paths;
        linx_cpu = linx_cpu.min(cpu);

        server.load(&nft_table);
        let mut mon = nft_monitor(&server);
        // Count the packets nft printed a verdict for (it loses messages
        // when its socket overflows, and then works less).
        let out = mon.stdout.take().unwrap();
        let printed = std::thread::spawn(move || {
            use std::io::BufRead;
            std::io::BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .filter(|l| l.contains(" scale input policy "))
                .count()
        });
        let cpu0 = process_cpu(mon.id());
        nft = nft.min(median_send(&client, n));
        std::thread::sleep(Duration::from_millis(300));
        nft_cpu = nft_cpu.min(process_cpu(mon.id()) - cpu0);
        let _ = mon.kill();
        let _ = mon.wait();
        nft_paths = printed.join().unwrap();
        server
            .nft(&["delete", "table", "inet", "nfttrace"])
            .unwrap();
    }
    listening.store(true, Ordering::SeqCst);

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let plus = |d: Duration| us(d) - us(base);
    println!(
        "{n} UDP datagrams through a {rules}-rule chain: median time per packet (best of 3 rounds)"
    );
    println!("  {:<44} {:>8.1} us", "no trace session", us(base));
    println!(
        "  {:<44} {:>8.1} us  ({:+.1} us)",
        "Linx session on, tracing other packets",
        us(idle),
        plus(idle)
    );
    println!(
        "  {:<44} {:>8.1} us  ({:+.1} us)  {traced_paths} paths; reader {:.1} us CPU/packet",
        "Linx session tracing every datagram",
        us(traced),
        plus(traced),
        us(linx_cpu) / n as f64
    );
    println!(
        "  {:<44} {:>8.1} us  ({:+.1} us)  {nft_paths} paths printed; reader (nft) {:.1} us CPU/packet",
        "nft: nftrace rule + `nft monitor trace`",
        us(nft),
        plus(nft),
        us(nft_cpu) / n as f64
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    decoding(if quick { 500 } else { 2_000 });
    live(if quick { 2_000 } else { 20_000 }, 10_000);
}
