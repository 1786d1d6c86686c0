//! Test fixtures (feature `testing`): a process standing in for a pod's
//! container, in a network namespace of the test's choosing and in the
//! cgroup a kubelet would give the pod, so the real resolver finds it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use linx_netfilter::testing::TestNetns;

use crate::resolve::CgroupResolver;

/// Where test cgroups are made (cgroup v2 hierarchy of this machine).
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup/unified";

/// A fake pod's process; killed and its cgroups removed on drop.
pub struct FakePod {
    child: Child,
    dirs: Vec<PathBuf>,
}

impl FakePod {
    /// Starts `sleep` inside `netns` (or the caller's namespace when None),
    /// in the pod cgroup of `uid` (systemd or cgroupfs driver layout).
    pub fn start(uid: &str, systemd: bool, netns: Option<&TestNetns>) -> FakePod {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.path().display()))
                    .args(["sleep", "3600"]);
                c
            }
            None => {
                let mut c = Command::new("sleep");
                c.arg("3600");
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn fake pod process");
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
        let mut fake = FakePod {
            child,
            dirs: Vec::new(),
        };
        let mut path = PathBuf::from(CGROUP_ROOT);
        for part in rel {
            path.push(part);
            std::fs::create_dir(&path).expect("create test cgroup");
            fake.dirs.push(path.clone());
        }
        std::fs::write(path.join("cgroup.procs"), fake.pid().to_string())
            .expect("move fake pod into its cgroup");
        fake
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (the pod's container exits).
    pub fn stop(&mut self) {
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

/// The resolver tests use: the test's own namespace plays the host's (pid 1
/// is not readable in every sandbox; in a DaemonSet `CgroupResolver::new`
/// uses pid 1's).
pub fn resolver() -> CgroupResolver {
    CgroupResolver::with_host_netns("/proc", "/proc/self/ns/net").expect("stat own netns")
}

/// A pod UID unique to this process and `n`.
pub fn pod_uid(n: u32) -> String {
    format!(
        "0000{:04x}-1111-4222-8333-{:012x}",
        std::process::id() & 0xffff,
        n
    )
}

/// How many of this process's descriptors refer to the namespace with this
/// inode (held netns files and sockets' namespaces are not counted: only
/// nsfs files, `net:[INODE]`).
pub fn open_netns_fds(inode: u64) -> usize {
    let want = format!("net:[{inode}]");
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .map(|l| l.to_string_lossy() == want)
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

/// Runs `f` on a throwaway thread that entered `ns` (sockets it makes stay
/// there); the calling thread never moves.
pub fn in_netns<T: Send>(ns: &TestNetns, f: impl FnOnce() -> T + Send) -> T {
    let path = ns.path();
    std::thread::scope(|s| {
        s.spawn(move || {
            let file = std::fs::File::open(&path).expect("open the test namespace");
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("enter the test namespace");
            f()
        })
        .join()
        .expect("thread in the test namespace")
    })
}

/// Runs `ip ARGS`, panicking with its output when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A veth pair between two test namespaces, `a_addr` (CIDR) on `a`'s end
/// named `a_dev` and `b_addr` on `b`'s; loopback up on both. The pair goes
/// with the namespaces.
pub fn veth(a: &TestNetns, a_dev: &str, a_addr: &str, b: &TestNetns, b_dev: &str, b_addr: &str) {
    ip(&[
        "link",
        "add",
        a_dev,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_dev,
        "netns",
        b.name(),
    ]);
    for (ns, dev, addr) in [(a, a_dev, a_addr), (b, b_dev, b_addr)] {
        ip(&["-n", ns.name(), "addr", "add", addr, "dev", dev]);
        ip(&["-n", ns.name(), "link", "set", dev, "up"]);
        ip(&["-n", ns.name(), "link", "set", "lo", "up"]);
    }
}

/// A TCP listener on `addr` inside `ns`, accepting (and dropping)
/// connections on its own thread until the process ends.
pub fn listen(ns: &TestNetns, addr: &str) {
    let addr: std::net::SocketAddr = addr.parse().expect("a socket address");
    let l = in_netns(ns, move || {
        std::net::TcpListener::bind(addr).expect("bind in the namespace")
    });
    std::thread::spawn(move || for _ in l.incoming() {});
}

/// Whether a TCP connection from inside `ns` to `to` is accepted within
/// `timeout` (a firewall that drops the SYN makes it time out).
pub fn connects(ns: &TestNetns, to: &str, timeout: Duration) -> bool {
    let to: std::net::SocketAddr = to.parse().expect("a socket address");
    in_netns(ns, move || {
        std::net::TcpStream::connect_timeout(&to, timeout).is_ok()
    })
}
