//! Test fixtures: a throwaway network namespace per test (removed on drop),
//! and `nft` run inside it as the oracle. Nothing here ever touches the
//! host namespace's firewall.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Netns, Rule, Ruleset};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh network namespace, `/run/netns/linx-t-PID-N`, deleted on drop.
pub struct TestNetns {
    name: String,
}

impl TestNetns {
    /// Creates the namespace (needs root and `ip` from iproute2).
    pub fn new() -> Self {
        let name = format!(
            "linx-t-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run `ip netns add` (iproute2)");
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = TestNetns { name };
        assert_ne!(
            ns.netns().inode().expect("stat test netns"),
            Netns::Current.inode().expect("stat own netns"),
            "a test namespace must never be the host's"
        );
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
    pub fn netns(&self) -> Netns {
        Netns::Path(self.path())
    }

    /// Joins this namespace and `peer` with a veth pair, `veth0` here
    /// (`addr`/24) and `veth1` there (`peer_addr`/24), both up, loopback
    /// up on both sides: real packets between two test namespaces.
    pub fn link(&self, peer: &TestNetns, addr: std::net::Ipv4Addr, peer_addr: std::net::Ipv4Addr) {
        let ip = |ns: &str, args: &str| {
            let out = Command::new("ip")
                .args(["-n", ns])
                .args(args.split_whitespace())
                .output()
                .expect("run ip (iproute2)");
            assert!(
                out.status.success(),
                "ip -n {ns} {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(
            &self.name,
            &format!(
                "link add veth0 type veth peer name veth1 netns {}",
                peer.name
            ),
        );
        ip(&self.name, &format!("addr add {addr}/24 dev veth0"));
        ip(&peer.name, &format!("addr add {peer_addr}/24 dev veth1"));
        for (ns, dev) in [(&self.name, "veth0"), (&peer.name, "veth1")] {
            ip(ns, &format!("link set {dev} up"));
            ip(ns, "link set lo up");
        }
    }

    /// Runs `nft ARGS` inside the namespace; `Err(stderr)` when it fails.
    pub fn nft(&self, args: &[&str]) -> Result<String, String> {
        self.nft_with_input(args, None)
    }

    /// Loads an nft script (`nft -f -`) inside the namespace.
    pub fn nft_load(&self, script: &str) -> Result<String, String> {
        self.nft_with_input(&["-f", "-"], Some(script))
    }

    /// Panicking variant of [`TestNetns::nft_load`], for test setup.
    pub fn load(&self, script: &str) {
        if let Err(e) = self.nft_load(script) {
            panic!(
                "nft -f failed in {}: {e}\n--- script ---\n{script}",
                self.name
            );
        }
    }

    /// `nft list ruleset` inside the namespace.
    pub fn ruleset(&self) -> String {
        self.nft(&["list", "ruleset"])
            .unwrap_or_else(|e| panic!("nft list ruleset: {e}"))
    }

    /// `nft -s list ruleset`: the listing without counter values, which
    /// packets move.
    pub fn ruleset_stateless(&self) -> String {
        self.nft(&["-s", "list", "ruleset"])
            .unwrap_or_else(|e| panic!("nft -s list ruleset: {e}"))
    }

    /// The handle `nft -a` shows for the rule listed as `rule`.
    pub fn handle_of(&self, rule: &str) -> u64 {
        let listing = self.nft(&["-a", "list", "ruleset"]).unwrap();
        let line = listing
            .lines()
            .find(|l| l.trim().starts_with(&format!("{rule} # handle ")))
            .unwrap_or_else(|| panic!("{rule:?} not in {listing}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// `nft ARGS` running in the namespace (e.g. `monitor trace`), its
    /// stdout piped, until the caller kills it.
    pub fn spawn_nft(&self, args: &[&str]) -> std::process::Child {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path().display()))
            .arg("nft")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nsenter nft")
    }

    /// One TCP connection attempt from inside this namespace (a SYN, and
    /// whatever answer comes within `timeout`).
    pub fn connect(&self, to: std::net::SocketAddr, timeout: std::time::Duration) {
        self.netns()
            .run_in(|| {
                let _ = std::net::TcpStream::connect_timeout(&to, timeout);
            })
            .expect("enter the test namespace");
    }

    fn nft_with_input(&self, args: &[&str], input: Option<&str>) -> Result<String, String> {
        nft_in(&self.path(), args, input)
    }
}

/// `nft ARGS` inside the network namespace at `netns` (a bind mount or
/// `/proc/PID/ns/net`), fed `input` on stdin; `Err(stderr)` when it fails.
pub fn nft_in(netns: &Path, args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display()))
        .arg("nft")
        .args(args);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("spawn nsenter nft: {e}"))?;
    if let Some(text) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        let text = text.to_owned();
        // Feed on a thread: a big script must not deadlock against stdout.
        std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("wait nft: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Default for TestNetns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `nft list ruleset` of the host namespace, read-only: tests compare it
/// before and after to prove they never wrote there.
pub fn host_ruleset() -> String {
    let out = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("run nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An nft script with `rules` rules spread over chains of `per_chain`
/// rules (jumped to from one base chain), for scale tests and benchmarks.
pub fn synthetic_ruleset(rules: usize, per_chain: usize) -> String {
    use std::fmt::Write as _;
    let per_chain = per_chain.max(1);
    let chains = rules.div_ceil(per_chain);
    let mut s = String::with_capacity(rules * 80);
    s.push_str("table inet scale {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n");
    for c in 0..chains {
        let _ = writeln!(
            s,
            "\t\tip daddr 192.168.{}.{} jump c{c}",
            c / 256 % 256,
            c % 256
        );
    }
    s.push_str("\t}\n");
    for c in 0..chains {
        let _ = writeln!(s, "\tchain c{c} {{");
        for i in c * per_chain..((c + 1) * per_chain).min(rules) {
            synthetic_rule(&mut s, i);
        }
        s.push_str("\t}\n");
    }
    s.push_str("}\n");
    s
}

/// An nft script with `rules` rules all in one base chain `input` (the
/// shape of a plain pod firewall), with the rules of [`synthetic_ruleset`].
pub fn synthetic_chain(rules: usize) -> String {
    let mut s = String::with_capacity(rules * 80);
    s.push_str("table inet scale {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n");
    for i in 0..rules {
        synthetic_rule(&mut s, i);
    }
    s.push_str("\t}\n}\n");
    s
}

/// The `i`th synthetic rule, one line.
fn synthetic_rule(s: &mut String, i: usize) {
    use std::fmt::Write as _;
    let _ = writeln!(
        s,
        "\t\tip saddr 10.{}.{}.{} tcp dport {} counter accept comment \"r{i}\"",
        i >> 16 & 255,
        i >> 8 & 255,
        i & 255,
        1 + i % 65535
    );
}

/// An nft script of `rules` rules in the mix a real host firewall has, for
/// the compiler's and the cold path's benchmarks (#20): table `inet
/// realistic`, a base chain `input` dispatching by `iifname` to 10 chains
/// `c0`..`c9` that share the rules; every rule counts and carries a
/// comment; a quarter match IPv6 prefixes, a quarter address and port
/// ranges, a quarter an interface; one in 20 (5%) an anonymous port set
/// `tcp dport { 80, 443, P }`. Rule `i` is the same line at every size.
pub fn realistic_ruleset(rules: usize) -> String {
    use std::fmt::Write as _;
    let chains = 10;
    let per_chain = rules.div_ceil(chains).max(1);
    let mut s = String::with_capacity(rules * 90 + 1024);
    s.push_str("table inet realistic {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n");
    s.push_str("\t\tct state established,related accept\n");
    for c in 0..chains {
        let _ = writeln!(s, "\t\tiifname \"eth{c}\" jump c{c}");
    }
    s.push_str("\t}\n");
    for c in 0..chains {
        let _ = writeln!(s, "\tchain c{c} {{");
        for i in c * per_chain..((c + 1) * per_chain).min(rules) {
            s.push_str("\t\t");
            realistic_rule(&mut s, i);
            s.push('\n');
        }
        s.push_str("\t}\n");
    }
    s.push_str("}\n");
    s
}

/// Rule `i` of [`realistic_ruleset`], without indentation or newline.
fn realistic_rule(s: &mut String, i: usize) {
    use std::fmt::Write as _;
    let (a, b, c) = (i >> 16 & 255, i >> 8 & 255, i & 255);
    let port = 1024 + i % 60000;
    let _ = match i % 4 {
        0 if i % 20 == 0 => write!(
            s,
            "ip saddr 10.{a}.{b}.{c} tcp dport {{ 80, 443, {port} }} counter accept comment \"web {i}\""
        ),
        0 => write!(
            s,
            "ip saddr 10.{a}.{b}.0/24 tcp dport {port} counter accept comment \"svc {i}\""
        ),
        1 => write!(
            s,
            "ip6 saddr 2001:db8:{a:x}:{:x}::/64 tcp dport {port} counter accept comment \"v6 {i}\"",
            b << 8 | c
        ),
        2 => write!(
            s,
            "ip daddr 172.16.{b}.{c}-172.16.{b}.255 udp dport {port}-{} counter drop comment \"range {i}\"",
            port + 100
        ),
        _ => write!(
            s,
            "iifname \"veth{}\" ip saddr 192.168.{b}.{c} tcp dport {port} counter reject comment \"if {i}\"",
            i % 64
        ),
    };
}

/// An nft script with one interval set of `n` distinct /32 ranges
/// (`10.0.0.0/32`, `10.0.0.2/32`, ...: every other address, so none merge).
pub fn synthetic_interval_set(n: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(n * 20);
    s.push_str("table inet scale {\n\tset big {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { ");
    for i in 0..n {
        let a = (10u32 << 24) + 2 * i as u32;
        let _ = write!(
            s,
            "{}.{}.{}.{}/32, ",
            a >> 24,
            a >> 16 & 255,
            a >> 8 & 255,
            a & 255
        );
    }
    s.push_str("}\n\t}\n}\n");
    s
}

/// An `nft list ruleset` listing with what two namespaces holding the same
/// ruleset may differ in blanked: counter values, quota consumption, `last`
/// use, element expiry (each becomes `N`).
pub fn masked_listing(listing: &str) -> String {
    let mut out = String::with_capacity(listing.len());
    for line in listing.lines() {
        let mut prev = "";
        let words: Vec<String> = line
            .split(' ')
            .map(|w| {
                let numeric = w.starts_with(|c: char| c.is_ascii_digit());
                let masked = match prev {
                    "packets" | "bytes" | "used" if numeric => true,
                    "expires" => true,
                    _ => false,
                };
                prev = w;
                if masked {
                    let tail: String = w.chars().rev().take_while(|c| *c == ',').collect();
                    format!("N{tail}")
                } else {
                    w.to_owned()
                }
            })
            .collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

/// The real-world rulesets of `netfilter/tests/rulesets/` — whole files,
/// each shaped like a published system's ruleset (its header says which) —
/// by file name and text, sorted, followed by [`generated_acl`]'s 5,000
/// rules as `generated-acl-5000.nft`.
pub fn real_world_rulesets() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rulesets");
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "nft").then_some(p)
        })
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, text)
        })
        .collect();
    out.sort();
    out.push(("generated-acl-5000.nft".into(), generated_acl(5000)));
    out
}

/// An access list of `rules` rules as a firewall manager generates it from
/// an inventory (deterministic: a fixed-seed generator): zones dispatched by
/// interface through a verdict map, per-zone chains of
/// `ip saddr NET ip daddr HOST PROTO dport PORTS ACTION comment "ACL-n"` —
/// single ports and anonymous port sets, some logged, some rejected — and
/// named sets of shared services.
pub fn generated_acl(rules: usize) -> String {
    use std::fmt::Write as _;
    const ZONES: [&str; 8] = [
        "dmz", "office", "lab", "voice", "guest", "mgmt", "backup", "iot",
    ];
    let mut seed: u64 = 0x5eed_0013;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut s = String::with_capacity(rules * 110);
    s.push_str("# A generated access list (linx_netfilter::testing::generated_acl).\n");
    s.push_str("table inet acl {\n");
    for (name, a, b) in [("dns_servers", 53, 53), ("ntp_servers", 123, 123)] {
        let _ = write!(
            s,
            "\tset {name} {{\n\t\ttype ipv4_addr\n\t\telements = {{ 10.255.0.{a}, 10.255.1.{b} }}\n\t}}\n\n"
        );
    }
    s.push_str("\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n");
    s.push_str("\t\tct state established,related accept\n\t\tct state invalid drop\n");
    s.push_str("\t\tip daddr @dns_servers udp dport 53 accept\n");
    s.push_str("\t\tip daddr @ntp_servers udp dport 123 accept\n");
    let vmap: Vec<String> = ZONES
        .iter()
        .enumerate()
        .map(|(i, z)| format!("\"vlan{}\" : jump zone_{z}", 100 + i))
        .collect();
    let _ = writeln!(s, "\t\tiifname vmap {{ {} }}", vmap.join(", "));
    s.push_str("\t\tlog prefix \"acl drop: \" counter drop\n\t}\n");
    let per_zone = rules.div_ceil(ZONES.len());
    let mut n = 0;
    for (zi, z) in ZONES.iter().enumerate() {
        let _ = write!(s, "\n\tchain zone_{z} {{\n");
        for _ in 0..per_zone {
            if n == rules {
                break;
            }
            n += 1;
            let src = format!("10.{}.{}.0/24", 10 + zi, next(256));
            let dst = format!("10.{}.{}.{}", 100 + next(20), next(256), 1 + next(254));
            let proto = if next(5) == 0 { "udp" } else { "tcp" };
            let ports = match next(4) {
                0 => format!(
                    "{{ {}, {}, {} }}",
                    1 + next(1024),
                    1025 + next(8000),
                    9025 + next(50000)
                ),
                1 => format!("{}-{}", 1024 + next(1000) * 10, 11024 + next(1000) * 10),
                _ => format!("{}", 1 + next(65535)),
            };
            let action = match next(10) {
                0 => "log prefix \"acl: \" accept",
                1 => "reject with icmpx admin-prohibited",
                2 => "counter drop",
                _ => "accept",
            };
            let _ = writeln!(
                s,
                "\t\tip saddr {src} ip daddr {dst} {proto} dport {ports} {action} comment \"ACL-{n:05}\""
            );
        }
        s.push_str("\t}\n");
    }
    s.push_str("}\n");
    s
}

/// The same value in allocations of its own, sharing no rule list and no
/// expressions with `v` (as two pulls of one ruleset give): what a diff
/// must compare rule by rule.
pub fn unshared(v: &Ruleset) -> Ruleset {
    let mut out = v.clone();
    for c in out.tables.iter_mut().flat_map(|t| &mut t.chains) {
        c.rules = c
            .rules
            .iter()
            .map(|r| Rule {
                exprs: r.exprs.to_vec().into(),
                ..r.clone()
            })
            .collect();
    }
    out
}

/// Another writer in a namespace: commits a new chain to its own table
/// (`ip neighbour`) every `every`, unguarded, as `nft add chain` in a loop
/// would, until stopped. Every chain it made must survive whatever Linx
/// does beside it.
pub struct BusyNeighbour {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Held by the writer around each commit; held by a test to pause it.
    turn: std::sync::Arc<std::sync::Mutex<()>>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

/// The neighbour's table.
pub const NEIGHBOUR_TABLE: &str = "neighbour";

impl BusyNeighbour {
    /// Creates its table, then starts committing.
    pub fn start(ns: &TestNetns, every: std::time::Duration) -> BusyNeighbour {
        use crate::sys::*;
        ns.load(&format!("table ip {NEIGHBOUR_TABLE} {{\n}}\n"));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut sock = crate::Socket::open(&ns.netns()).expect("neighbour socket");
        let flag = stop.clone();
        let turn = std::sync::Arc::new(std::sync::Mutex::new(()));
        let my_turn = turn.clone();
        let thread = std::thread::spawn(move || {
            let mut written = 0u32;
            while !flag.load(Ordering::Relaxed) {
                let _turn = my_turn.lock().unwrap_or_else(|p| p.into_inner());
                let mut batch = crate::Batch::new();
                let name = format!("c{written}");
                batch.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, NFPROTO_IPV4 as u8, |w| {
                    w.put_str(NFTA_CHAIN_TABLE, NEIGHBOUR_TABLE);
                    w.put_str(NFTA_CHAIN_NAME, &name);
                });
                sock.commit(&mut batch, None).expect("neighbour commit");
                written += 1;
                drop(_turn);
                std::thread::sleep(every);
            }
            written
        });
        BusyNeighbour {
            stop,
            turn,
            thread: Some(thread),
        }
    }

    /// Pauses the writer while the guard lives (e.g. while `nft list` runs:
    /// nft's own listing restarts whenever the generation moves, so it
    /// starves beside a busy writer).
    pub fn pause(&self) -> std::sync::MutexGuard<'_, ()> {
        self.turn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops; how many commits it made.
    pub fn stop(mut self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("neighbour thread"))
            .unwrap_or(0)
    }

    /// How many of its chains `nft list table` shows in `ns`.
    pub fn chains_kept(ns: &TestNetns) -> usize {
        ns.nft(&["list", "table", "ip", NEIGHBOUR_TABLE])
            .unwrap_or_default()
            .lines()
            .filter(|l| l.trim_start().starts_with("chain c"))
            .count()
    }
}

impl Drop for BusyNeighbour {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A small deterministic generator (xorshift64*) for mutation tests, so
/// failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// What the `nflog` fuzz target does with its input: every message of the
/// buffer through the NFLOG decoder and the header parser.
pub fn fuzz_nflog(buf: &[u8]) {
    for m in crate::netlink::Msgs::new(buf) {
        let Ok(m) = m else { break };
        if let Ok(Some(p)) = crate::nflog::LoggedPacket::decode(&m) {
            let _ = (p.to_string(), p.data(), p.hook_name());
        }
    }
}

/// What the `trace` fuzz target does with its input: every message of the
/// buffer through the trace decoder, the header parser and the path
/// assembler (with and without a session table).
pub fn fuzz_trace(buf: &[u8]) {
    use crate::trace::{Assembler, TraceEvent};
    use std::time::{Duration, Instant};
    let now = Instant::now();
    let mut own = Assembler::new(Some((crate::Family::Inet, "t".into())), Duration::ZERO);
    let mut all = Assembler::new(None, Duration::ZERO);
    for m in crate::netlink::Msgs::new(buf) {
        let Ok(m) = m else { break };
        if let Ok(Some(e)) = TraceEvent::decode(&m) {
            let _ = e.headers().to_string();
            own.push(&e, now);
            all.push(&e, now);
        }
    }
    for a in [&mut own, &mut all] {
        a.flush();
        while let Some(p) = a.pop() {
            let _ = (p.to_string(), p.summary());
        }
    }
}
