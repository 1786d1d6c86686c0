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

/// How many of this process's descriptors hold the namespace with this
/// inode: its nsfs files (`net:[INODE]`) and the sockets living in it.
pub fn open_netns_fds(inode: u64) -> usize {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    let want = format!("net:[{inode}]");
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            let Ok(link) = std::fs::read_link(e.path()) else {
                return false;
            };
            let link = link.to_string_lossy();
            if link == want {
                return true;
            }
            let Some(fd) = link
                .starts_with("socket:")
                .then(|| e.file_name().to_str()?.parse::<i32>().ok())
                .flatten()
            else {
                return false;
            };
            // SAFETY: SIOCGSKNS on one of our descriptors returns a new one
            // (or fails); the new one is owned and closed here.
            let ns = unsafe { libc::ioctl(fd, libc::SIOCGSKNS) };
            if ns < 0 {
                return false;
            }
            let ns = unsafe { OwnedFd::from_raw_fd(ns) };
            nix::sys::stat::fstat(ns.as_fd()).is_ok_and(|st| st.st_ino == inode)
        })
        .count()
}
