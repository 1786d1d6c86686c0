//! The transport against the real kernel, each test in its own namespace.

use std::time::{Duration, Instant};

use linx_netfilter::netlink::Writer;
use linx_netfilter::sys::*;
use linx_netfilter::testing::{host_ruleset, TestNetns};
use linx_netfilter::{Batch, Error, Netns, Socket};

const INET: u8 = NFPROTO_INET as u8;

fn add_table(b: &mut Batch, family: u8, name: &str) {
    b.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, family, |w| {
        w.put_str(NFTA_TABLE_NAME, name)
    });
}

fn add_chain(b: &mut Batch, family: u8, table: &str, name: &str, hook: Option<u32>) {
    b.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, family, |w| {
        w.put_str(NFTA_CHAIN_TABLE, table);
        w.put_str(NFTA_CHAIN_NAME, name);
        if let Some(h) = hook {
            w.nest(NFTA_CHAIN_HOOK, |w| {
                w.put_u32_be(NFTA_HOOK_HOOKNUM, h);
                w.put_u32_be(NFTA_HOOK_PRIORITY, 0);
            });
            w.put_u32_be(NFTA_CHAIN_POLICY, NF_ACCEPT);
            w.put_str(NFTA_CHAIN_TYPE, "filter");
        }
    });
}

/// `accept`, as one immediate expression writing the verdict register.
fn verdict_accept(w: &mut Writer) {
    w.nest(NFTA_RULE_EXPRESSIONS, |w| {
        w.nest(NFTA_LIST_ELEM, |w| {
            w.put_str(NFTA_EXPR_NAME, "immediate");
            w.nest(NFTA_EXPR_DATA, |w| {
                w.put_u32_be(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                w.nest(NFTA_IMMEDIATE_DATA, |w| {
                    w.nest(NFTA_DATA_VERDICT, |w| {
                        w.put_u32_be(NFTA_VERDICT_CODE, NF_ACCEPT)
                    });
                });
            });
        });
    });
}

fn add_rule(b: &mut Batch, family: u8, table: &str, chain: &str) {
    b.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family, |w| {
        w.put_str(NFTA_RULE_TABLE, table);
        w.put_str(NFTA_RULE_CHAIN, chain);
        verdict_accept(w);
    });
}

#[test]
fn batch_creates_table_chain_and_rule_in_the_namespace_only() {
    let host_before = host_ruleset();
    let ns = TestNetns::new();
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let mut b = Batch::new();
    add_table(&mut b, INET, "t");
    add_chain(&mut b, INET, "t", "input", Some(NF_INET_LOCAL_IN));
    add_rule(&mut b, INET, "t", "input");
    sock.commit(&mut b, None).unwrap();
    assert_eq!(
        ns.ruleset(),
        "table inet t {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\taccept\n\t}\n}\n"
    );
    assert_eq!(
        host_ruleset(),
        host_before,
        "the host namespace must be untouched"
    );
}

#[test]
fn a_failing_third_message_applies_nothing_and_is_named() {
    let ns = TestNetns::new();
    ns.load("table ip keep {\n chain c {\n }\n}\n");
    let before = ns.ruleset();
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let mut b = Batch::new();
    add_table(&mut b, INET, "t2");
    add_chain(&mut b, INET, "t2", "c", None);
    add_chain(&mut b, INET, "missing", "x", None);
    let err = sock.commit(&mut b, None).unwrap_err();
    let Error::Batch(f) = &err else {
        panic!("expected a batch failure, got {err:?}")
    };
    let first = f.first();
    assert_eq!(first.index, 3, "{err}");
    assert_eq!(first.op, "add chain");
    assert_eq!(first.object, "inet missing x");
    assert_eq!(first.errno, libc::ENOENT);
    let offset = first
        .offset
        .expect("the kernel points at the offending attribute");
    let msg = b.message_bytes(2).unwrap();
    assert_eq!(
        linx_netfilter::netlink::describe::attr_at_offset(msg, offset),
        Some(NFTA_CHAIN_TABLE)
    );
    let text = err.to_string();
    assert!(
        text.contains("message 3 (add chain inet missing x): No such file or directory"),
        "{text}"
    );
    assert_eq!(ns.ruleset(), before, "nothing of the batch may be applied");
}

#[test]
fn extack_text_is_reported() {
    let ns = TestNetns::new();
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let mut b = Batch::new();
    add_table(&mut b, INET, "t");
    // Table flags as 2 bytes instead of 4: netlink's policy check explains.
    b.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, INET, |w| {
        w.put_str(NFTA_TABLE_NAME, "u");
        w.put_u16_be(NFTA_TABLE_FLAGS, 0);
    });
    let err = sock.commit(&mut b, None).unwrap_err();
    let Error::Batch(f) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(f.first().index, 2);
    assert_eq!(f.first().errno, libc::ERANGE, "{err}");
    assert_eq!(
        f.first().extack.as_deref(),
        Some("Attribute failed policy validation"),
        "{err}"
    );
    assert!(
        err.to_string().contains("message 2 (add table inet u)"),
        "{err}"
    );
    assert_eq!(ns.ruleset(), "");
}

#[test]
fn a_stale_generation_is_refused_whole() {
    let ns = TestNetns::new();
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let g = sock.generation().unwrap();
    ns.nft(&["add", "table", "ip", "other"]).unwrap();
    let before = ns.ruleset();
    let mut b = Batch::new();
    add_table(&mut b, INET, "mine");
    let err = sock.commit(&mut b, Some(g.id)).unwrap_err();
    assert!(
        matches!(err, Error::GenerationMismatch { expected } if expected == g.id),
        "{err:?}"
    );
    assert_eq!(ns.ruleset(), before);

    // With the current generation the same batch goes through, and the
    // generation it reports is the kernel's next one.
    let g2 = sock.generation().unwrap();
    assert_eq!(g2.id, g.id + 1);
    let mut b = Batch::new();
    add_table(&mut b, INET, "mine");
    let after = sock.commit(&mut b, Some(g2.id)).unwrap();
    assert_eq!(after, Some(sock.generation().unwrap().id));
    assert!(ns.ruleset().contains("table inet mine"));
}

#[test]
fn generation_names_the_last_writer() {
    let ns = TestNetns::new();
    ns.nft(&["add", "table", "ip", "x"]).unwrap();
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let g = sock.generation().unwrap();
    assert_eq!(g.id, 2, "a fresh namespace starts at 1, one commit since");
    assert!(g.pid.is_some(), "{g:?}");
}

#[test]
fn dump_returns_all_20000_rules() {
    let ns = TestNetns::new();
    let mut script = String::from("table inet big {\n chain c {\n");
    for i in 0..20_000 {
        script.push_str(&format!("  tcp dport {} accept\n", 1 + i % 60000));
    }
    script.push_str(" }\n}\n");
    ns.load(&script);
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let d = sock.dump(NFT_MSG_GETRULE, 0, |_| {}).unwrap();
    assert_eq!(d.len(), 20_000);
    let mut n = 0;
    for m in d.iter() {
        let m = m.unwrap();
        assert_eq!(m.nft_msg(), Some(NFT_MSG_NEWRULE));
        n += 1;
    }
    assert_eq!(n, 20_000);
    // Narrowed to one table's chain, the same count.
    let d = sock
        .dump(NFT_MSG_GETRULE, INET, |w| {
            w.put_str(NFTA_RULE_TABLE, "big");
            w.put_str(NFTA_RULE_CHAIN, "c");
        })
        .unwrap();
    assert_eq!(d.len(), 20_000);
}

#[test]
fn a_subscriber_sees_a_table_nft_creates() {
    let ns = TestNetns::new();
    let mut sub = Socket::open(&ns.netns()).unwrap();
    sub.subscribe(NFNLGRP_NFTABLES).unwrap();
    ns.nft(&["add", "table", "inet", "seen"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut found = false;
    while !found && Instant::now() < deadline {
        let got = sub
            .try_recv_messages(|m| {
                if m.nft_msg() == Some(NFT_MSG_NEWTABLE) {
                    let (family, attrs) = m.nfgen().unwrap();
                    let name = attrs
                        .flatten()
                        .find(|a| a.kind() == NFTA_TABLE_NAME)
                        .map(|a| a.str().unwrap().to_owned());
                    found |= family == INET && name.as_deref() == Some("seen");
                }
            })
            .unwrap();
        if !got {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert!(found, "no NEWTABLE event for inet seen");
}

fn thread_namespaces() -> Vec<(String, String)> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| {
            let link = std::fs::read_link(t.path().join("ns/net")).ok()?;
            Some((
                t.file_name().to_string_lossy().into_owned(),
                link.to_string_lossy().into_owned(),
            ))
        })
        .collect()
}

#[test]
fn opening_by_pid_moves_no_other_thread() {
    let ns = TestNetns::new();
    let own = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    // A process living in the test namespace, to name it by pid.
    let mut child = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    let pid = child.id();
    let target = (0..200)
        .find_map(|_| {
            let l = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
            if l == own {
                std::thread::sleep(Duration::from_millis(10));
                None
            } else {
                Some(l)
            }
        })
        .expect("child entered the namespace");
    // Some idle threads that must stay where they are.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let idle: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    let mut sock = Socket::open(&Netns::Pid(pid)).unwrap();
    for (tid, link) in thread_namespaces() {
        assert_eq!(
            link,
            own.to_string_lossy(),
            "thread {tid} changed namespace"
        );
    }
    // The socket really lives in the pod's namespace.
    let mut b = Batch::new();
    add_table(&mut b, INET, "bypid");
    sock.commit(&mut b, None).unwrap();
    assert_eq!(ns.ruleset(), "table inet bypid {\n}\n");
    assert_ne!(target, own);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in idle {
        t.join().unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
}
