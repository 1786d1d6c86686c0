//! Pulling many sets at once (`pull/elements`: sets spread over several
//! sockets): the value is the one compiled from the script nft loaded,
//! lists as nft lists it, and equals a pull made on one socket.

mod common;

use linx_netfilter::pull::{pull, Pulled, Selector};
use linx_netfilter::push::{push, PushOptions};
use linx_netfilter::testing::{masked_listing, TestNetns};
use linx_netfilter::{syntax, Family, Socket};

/// 300 rules with anonymous sets and maps of every shape nft makes (plain,
/// interval, concatenated, maps with a catch-all element, sets with `*`),
/// one anonymous set of 3,000 IPv6 addresses (about 100 KB of elements: its
/// dump takes several passes), named sets, and a second table.
fn script() -> String {
    use std::fmt::Write as _;
    let mut s = String::from("table inet t {\n\tset named {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.1, 192.0.2.2 }\n\t}\n\tchain c {\n");
    for i in 0..300u32 {
        let (a, b) = (i / 250, i % 250);
        let _ = match i % 6 {
            0 => writeln!(
                s,
                "\t\ttcp dport {{ {} }} accept",
                (0..i % 7 + 2)
                    .map(|k| (1000 + i * 8 + k).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            1 => writeln!(
                s,
                "\t\tip saddr {{ 10.{a}.{b}.0/24, 11.{a}.{b}.0/24, 12.{a}.{b}.7 }} drop"
            ),
            2 => writeln!(
                s,
                "\t\ttcp dport vmap {{ 22 : accept, {} : drop, * : drop }}",
                2000 + i
            ),
            3 => writeln!(
                s,
                "\t\tip6 saddr . tcp dport {{ 2001:db8::{i:x} . 22, 2001:db8::{i:x} . 80 }} accept"
            ),
            4 => writeln!(s, "\t\tip saddr {{ 172.16.{a}.{b}, * }} accept"),
            _ => writeln!(s, "\t\tmeta mark {{ {i}, {} }} accept", i + 1000),
        };
    }
    let big: Vec<String> = (0..3000u32)
        .map(|i| format!("2001:db8:1::{:x}:{:x}", i >> 8, i & 255))
        .collect();
    let _ = writeln!(s, "\t\tip6 daddr {{ {} }} drop", big.join(", "));
    s.push_str("\t}\n}\ntable ip u {\n\tset v {\n\t\ttype inet_service\n\t\telements = { 53, 123 }\n\t}\n\tchain d {\n\t\tudp dport { 53, 67, 123 } accept\n\t\tudp dport @v accept\n\t}\n}\n");
    s
}

/// `pull` on a thread allowed one CPU only: the pull then uses one socket.
fn pull_on_one_cpu(sock: &mut Socket, which: &Selector) -> Pulled {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
            // sched_setaffinity only read and write it.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(0, &mut set);
                assert_eq!(
                    libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
                    0
                );
            }
            assert_eq!(std::thread::available_parallelism().unwrap().get(), 1);
            pull(sock, which).unwrap()
        })
        .join()
        .unwrap()
    })
}

/// Drops CAP_SYS_ADMIN (entering a namespace) from the calling thread's
/// effective capabilities; threads it starts inherit that.
fn drop_sys_admin() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const CAP_SYS_ADMIN: u32 = 21;
    let mut h = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset read and write the two structs we pass, for
    // this thread only (pid 0).
    unsafe {
        assert_eq!(libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()), 0);
        d[0].effective &= !(1 << CAP_SYS_ADMIN);
        assert_eq!(libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()), 0);
    }
}

/// Helpers' sockets are opened by entering the namespace; a reader allowed
/// to read it but not to enter namespaces still pulls, on its one socket.
#[test]
fn many_sets_pull_without_the_right_to_enter_namespaces() {
    let ns = TestNetns::new();
    ns.load(&script());
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let pulled = pull(&mut sock, &Selector::All).unwrap();
    let unprivileged = std::thread::scope(|s| {
        s.spawn(|| {
            drop_sys_admin();
            assert!(Socket::open(&ns.netns()).is_err(), "setns is refused");
            pull(&mut sock, &Selector::All).unwrap()
        })
        .join()
        .unwrap()
    });
    assert_eq!(unprivileged, pulled);
}

#[test]
fn many_sets_pull_as_compiled_as_listed_and_as_on_one_socket() {
    let script = script();
    let ns = TestNetns::new();
    ns.load(&script);
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let pulled = pull(&mut sock, &Selector::All).unwrap();

    let t = &pulled.ruleset.tables[0];
    let anonymous: usize = t.chains[0].rules.iter().map(|r| r.sets.len()).sum();
    assert_eq!(anonymous, 301, "every rule holds its anonymous set");
    let big = t.chains[0].rules[300].sets[0].elements.len();
    assert_eq!(big, 3000, "the set dumped over several passes is whole");
    let catchall = t.chains[0].rules[2].sets[0]
        .elements
        .iter()
        .filter(|e| e.flags.unwrap_or(0) & linx_netfilter::sys::NFT_SET_ELEM_CATCHALL != 0)
        .count();
    assert_eq!(catchall, 1, "a map's catch-all element comes with it");

    let compiled = syntax::compile(&script).unwrap();
    if let Some(d) = common::values::difference(&pulled.ruleset, &compiled) {
        panic!("the pulled value is not the compiled one: {d}");
    }

    let copy = TestNetns::new();
    push(
        &mut Socket::open(&copy.netns()).unwrap(),
        &pulled.ruleset,
        &PushOptions::default(),
    )
    .unwrap();
    assert_eq!(
        masked_listing(&copy.ruleset()),
        masked_listing(&ns.ruleset())
    );

    assert_eq!(pull_on_one_cpu(&mut sock, &Selector::All), pulled);
    let only = Selector::Tables(vec![(Family::Ip, "u".into()), (Family::Inet, "t".into())]);
    let narrowed = pull(&mut sock, &only).unwrap();
    assert_eq!(narrowed, pull_on_one_cpu(&mut sock, &only));
    assert_eq!(narrowed.ruleset.tables.len(), 2);
}
