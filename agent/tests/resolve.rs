//! The pod namespace resolver against real processes in real cgroups.

use std::time::{Duration, Instant};

use linx_agent::pod::Pod;
use linx_agent::resolve::{CgroupResolver, NetnsResolver, Resolution};
use linx_agent::testing::{pod_uid, resolver, FakePod, PodFarm};
use linx_netfilter::sys::*;
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{Batch, Socket};

fn pod(uid: &str) -> Pod {
    Pod {
        uid: uid.into(),
        namespace: "default".into(),
        name: "web".into(),
        ..Default::default()
    }
}

fn uid(n: u32) -> String {
    pod_uid(n)
}

fn resolve_eventually(r: &CgroupResolver, p: &Pod) -> Resolution {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res = r.resolve(p).unwrap();
        if matches!(res, Resolution::Found(_)) || Instant::now() > deadline {
            return res;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn assert_socket_lives_in(found: &linx_agent::resolve::PodNetns, ns: &TestNetns) {
    let mut sock = Socket::open(&found.netns).unwrap();
    let mut b = Batch::new();
    b.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, NFPROTO_INET as u8, |w| {
        w.put_str(NFTA_TABLE_NAME, "resolved")
    });
    sock.commit(&mut b, None).unwrap();
    assert_eq!(ns.ruleset(), "table inet resolved {\n}\n");
}

#[test]
fn finds_a_pod_by_its_cgroupfs_path() {
    let ns = TestNetns::new();
    let u = uid(1);
    let fake = FakePod::start(&u, false, Some(&ns));
    let r = resolver();
    let Resolution::Found(found) = resolve_eventually(&r, &pod(&u)) else {
        panic!("pod not found")
    };
    assert_eq!(found.pid, fake.pid());
    assert_eq!(found.inode, ns.netns().inode().unwrap());
    assert!(r.still_valid(&found));
    assert_socket_lives_in(&found, &ns);
}

#[test]
fn finds_a_pod_by_its_systemd_path() {
    let ns = TestNetns::new();
    let u = uid(2);
    let _fake = FakePod::start(&u, true, Some(&ns));
    let r = resolver();
    let Resolution::Found(found) = resolve_eventually(&r, &pod(&u)) else {
        panic!("pod not found")
    };
    assert_socket_lives_in(&found, &ns);
}

/// Pods of a farm (benchmarks' cheap pods): each found by its cgroup, in
/// a namespace of its own, and one index scan serves them all.
#[test]
fn farm_pods_are_found_each_in_its_own_namespace() {
    let uids: Vec<String> = (10..14).map(uid).collect();
    let mut farm = PodFarm::new();
    farm.start(&uids);
    let r = resolver();
    let mut inodes = Vec::new();
    for (i, u) in uids.iter().enumerate() {
        let Resolution::Found(found) = resolve_eventually(&r, &pod(u)) else {
            panic!("farm pod {u} not found")
        };
        assert_eq!(found.pid, farm.pods()[i].pid());
        let mut sock = Socket::open(&found.netns).unwrap();
        let mut b = Batch::new();
        b.add(NFT_MSG_NEWTABLE, NLM_F_CREATE, NFPROTO_INET as u8, |w| {
            w.put_str(NFTA_TABLE_NAME, &format!("farm{i}"))
        });
        sock.commit(&mut b, None).unwrap();
        inodes.push(found.inode);
    }
    for (i, p) in farm.pods().iter().enumerate() {
        assert_eq!(
            p.nft(&["list", "tables"]).unwrap(),
            format!("table inet farm{i}\n")
        );
    }
    inodes.sort();
    inodes.dedup();
    assert_eq!(inodes.len(), uids.len(), "one namespace per pod");
    // A pod removed is not running any more.
    assert!(farm.stop(&uids[0]));
    assert!(matches!(
        r.resolve(&pod(&uids[0])).unwrap(),
        Resolution::NotRunning
    ));
}

#[test]
fn host_network_pods_are_skipped_and_the_host_namespace_is_never_returned() {
    let u = uid(3);
    let mut p = pod(&u);
    p.host_network = true;
    let r = resolver();
    assert!(matches!(r.resolve(&p).unwrap(), Resolution::HostNetwork));
    // A pod not flagged hostNetwork whose process is in the host namespace.
    let _fake = FakePod::start(&u, false, None);
    p.host_network = false;
    std::thread::sleep(Duration::from_millis(50));
    assert!(matches!(r.resolve(&p).unwrap(), Resolution::NotRunning));
}

#[test]
fn a_dead_process_invalidates_what_was_held_and_a_gone_pod_is_not_running() {
    let ns = TestNetns::new();
    let u = uid(4);
    let mut fake = FakePod::start(&u, false, Some(&ns));
    let r = resolver();
    let Resolution::Found(found) = resolve_eventually(&r, &pod(&u)) else {
        panic!("pod not found")
    };
    fake.stop();
    assert!(!r.still_valid(&found));
    assert!(matches!(
        r.resolve(&pod(&u)).unwrap(),
        Resolution::NotRunning
    ));
    // The held descriptor still names the pod's namespace, never another.
    assert_eq!(found.netns.inode().unwrap(), ns.netns().inode().unwrap());
}

/// A proc tree we control, to replay a pid being reused by another pod.
#[test]
fn a_reused_pid_is_never_trusted() {
    let dir = std::env::temp_dir().join(format!("linx-fakeproc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mk = |pid: &str, cgroup: &str, start: u64, ns_file: &str| {
        let p = dir.join(pid);
        std::fs::create_dir_all(p.join("ns")).unwrap();
        std::fs::write(p.join("cgroup"), cgroup).unwrap();
        // Fields 4..=21, then the start time as field 22.
        let fields: Vec<String> = (4..=21).map(|i| i.to_string()).collect();
        std::fs::write(
            p.join("stat"),
            format!("{pid} (sleep x) S {} {start} 0 0\n", fields.join(" ")),
        )
        .unwrap();
        std::fs::write(p.join("ns/net"), ns_file).unwrap();
    };
    mk("1", "0::/init.scope\n", 1, "host");
    let u = uid(5);
    mk(
        "4242",
        &format!("0::/kubepods/besteffort/pod{u}/c1\n"),
        100,
        "pod-a",
    );
    let r = CgroupResolver::with_host_netns(&dir, dir.join("1/ns/net")).unwrap();
    let Resolution::Found(found) = r.resolve(&pod(&u)).unwrap() else {
        panic!("not found")
    };
    assert_eq!((found.pid, found.start_time), (4242, 100));
    assert!(r.still_valid(&found));
    // The pod's process exits and pid 4242 is reused by another pod's process.
    mk(
        "4242",
        "0::/kubepods/besteffort/podffffffff-0000-0000-0000-000000000000/c9\n",
        555,
        "pod-b",
    );
    assert!(
        !r.still_valid(&found),
        "a reused pid must not pass for the original"
    );
    assert!(matches!(
        r.resolve(&pod(&u)).unwrap(),
        Resolution::NotRunning
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
