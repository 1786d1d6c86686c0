//! The pod namespace resolver against real processes in real cgroups.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use linx_agent::resolve::{CgroupResolver, NetnsResolver, PodRef, Resolution};
use linx_netfilter::sys::*;
use linx_netfilter::testing::TestNetns;
use linx_netfilter::{Batch, Socket};

const CGROOT: &str = "/sys/fs/cgroup/unified";

/// A process standing in for a pod's container: in a given namespace (or
/// the host's), placed in the cgroup a kubelet would give the pod.
struct FakePod {
    child: Child,
    dirs: Vec<PathBuf>,
}

impl FakePod {
    fn start(uid: &str, systemd: bool, netns: Option<&TestNetns>) -> FakePod {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.path().display()))
                    .args(["sleep", "60"]);
                c
            }
            None => {
                let mut c = Command::new("sleep");
                c.arg("60");
                c
            }
        };
        let child = cmd.spawn().unwrap();
        let top = format!("linx-test-{}-{}", std::process::id(), child.id());
        let rel: Vec<String> = if systemd {
            let u = uid.replace('-', "_");
            vec![
                top,
                "kubepods.slice".into(),
                "kubepods-burstable.slice".into(),
                format!("kubepods-burstable-pod{u}.slice"),
                "cri-containerd-0123.scope".into(),
            ]
        } else {
            vec![
                top,
                "kubepods".into(),
                "burstable".into(),
                format!("pod{uid}"),
                "0123abcd".into(),
            ]
        };
        let mut dirs = Vec::new();
        let mut path = PathBuf::from(CGROOT);
        for part in rel {
            path.push(part);
            std::fs::create_dir(&path).unwrap();
            dirs.push(path.clone());
        }
        std::fs::write(path.join("cgroup.procs"), child.id().to_string()).unwrap();
        FakePod { child, dirs }
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FakePod {
    fn drop(&mut self) {
        self.stop();
        for d in self.dirs.iter().rev() {
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The test's own namespace plays the host's here (pid 1 is not readable
/// in every sandbox; in a DaemonSet `CgroupResolver::new` uses pid 1's).
fn resolver() -> CgroupResolver {
    CgroupResolver::with_host_netns("/proc", "/proc/self/ns/net").unwrap()
}

fn pod(uid: &str) -> PodRef {
    PodRef {
        uid: uid.into(),
        namespace: "default".into(),
        name: "web".into(),
        host_network: false,
    }
}

fn uid(n: u32) -> String {
    format!(
        "0000{:04x}-1111-4222-8333-{:012x}",
        std::process::id() & 0xffff,
        n
    )
}

fn resolve_eventually(r: &CgroupResolver, p: &PodRef) -> Resolution {
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
