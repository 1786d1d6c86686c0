//! Finding a pod's network namespace on this node.
//!
//! With `hostPID`, every process of the node is visible. A pod's processes
//! sit in cgroups whose path carries the pod UID — `…/pod<uid>/…` with the
//! cgroupfs driver, `…-pod<uid_with_underscores>.slice/…` with systemd —
//! whatever the runtime (containerd, CRI-O). We open `/proc/PID/ns/net` of
//! such a process and keep the descriptor for the pod's lifetime, so the
//! namespace can never be swapped under us. Between finding the pid and
//! opening its namespace the pid could die and be reused by another pod, so
//! the process start time and cgroup are checked again after the open.
//! A namespace equal to the host's (`/proc/1/ns/net`) is never returned.
//!
//! Finding candidates must not cost a read of every process's cgroup per
//! pod (1,000 pods on a node of 1,100 processes made that 1.1 million
//! reads to converge): one index of pid → pods is kept, and a scan reads
//! only the cgroups of processes it has not seen (see [`Index`]).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use linx_netfilter::Netns;

use crate::pod::Pod;

/// A pod's network namespace, held open.
#[derive(Clone, Debug)]
pub struct PodNetns {
    /// The open namespace: use it for `Socket::open`.
    pub netns: Netns,
    /// The process it was taken from, and that process's start time
    /// (clock ticks since boot), to tell a reused pid from the original.
    pub pid: u32,
    pub start_time: u64,
    /// Device and inode of the namespace.
    pub inode: (u64, u64),
}

/// A pod's sandbox namespace, handed over by `linx-cni` at `ADD` (the
/// descriptor the plugin opened from `CNI_NETNS`): held for as long as
/// the sandbox lives, until its `DEL`. No process is involved, so nothing
/// can be reused under it.
#[derive(Debug)]
pub struct Sandbox {
    /// The sandbox's container ID (`CNI_CONTAINERID`).
    pub container_id: String,
    /// The namespace, held open.
    pub netns: Netns,
    /// Device and inode of the namespace.
    pub inode: (u64, u64),
}

/// The outcome of resolving one pod.
#[derive(Clone, Debug)]
pub enum Resolution {
    Found(PodNetns),
    /// The pod shares the node's namespace: never touched.
    HostNetwork,
    /// No process of the pod is running (yet, or any more).
    NotRunning,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("reading {path}: {source}")]
    Proc {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Resolves pods to namespaces; a CRI-based implementation can be added
/// beside the cgroup one.
pub trait NetnsResolver: Send + Sync {
    fn resolve(&self, pod: &Pod) -> Result<Resolution, ResolveError>;
    /// Whether a namespace resolved earlier still belongs to the pod's
    /// original process (false once the process is gone or its pid reused).
    fn still_valid(&self, held: &PodNetns) -> bool;
}

/// The resolver that scans `/proc/*/cgroup`.
pub struct CgroupResolver {
    proc_root: PathBuf,
    host_netns: (u64, u64),
    index: Mutex<Index>,
}

/// What the last scan of the proc tree found: the pods each process is
/// in, by pid. A process is known by its pid and the inode of its
/// `/proc/PID` entry (given by the directory listing itself: procfs
/// makes a fresh inode for each new process), so a reused pid is read
/// again; a process whose entry is unchanged is not, unless it was in no
/// pod (a process moved into a pod's cgroup after it started is found).
/// Candidates are only hints: each is checked again before it is trusted.
#[derive(Default)]
struct Index {
    scanned: Option<Instant>,
    procs: HashMap<u32, (u64, Vec<String>)>,
    pods: HashMap<String, Vec<u32>>,
}

impl CgroupResolver {
    /// Uses `/proc`; the host namespace is pid 1's (needs `hostPID`). If it
    /// cannot be read, this fails: without it the host could not be told
    /// apart from a pod.
    pub fn new() -> Result<Self, ResolveError> {
        Self::with_host_netns("/proc", "/proc/1/ns/net")
    }

    /// Uses another proc tree, and names the namespace to treat as the
    /// host's (never returned for a pod).
    pub fn with_host_netns(
        root: impl Into<PathBuf>,
        host_netns: impl AsRef<Path>,
    ) -> Result<Self, ResolveError> {
        Ok(CgroupResolver {
            proc_root: root.into(),
            host_netns: stat_id(host_netns.as_ref())?,
            index: Mutex::default(),
        })
    }

    fn start_time(&self, pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(self.proc_root.join(format!("{pid}/stat"))).ok()?;
        // Field 22, counted after the command name, which may hold spaces.
        let after = &stat[stat.rfind(')')? + 1..];
        after.split_whitespace().nth(19)?.parse().ok()
    }

    fn in_pod(&self, pid: u32, pod_uid: &str) -> bool {
        std::fs::read_to_string(self.proc_root.join(format!("{pid}/cgroup")))
            .map(|c| cgroup_names_pod(&c, pod_uid))
            .unwrap_or(false)
    }

    /// The namespace of process `pid` if it is still in the pod and not
    /// in the host's namespace.
    fn open(&self, pid: u32, pod_uid: &str) -> Option<PodNetns> {
        let before = self.start_time(pid)?;
        let file = std::fs::File::open(self.proc_root.join(format!("{pid}/ns/net"))).ok()?;
        let fd: OwnedFd = file.into();
        // The pid may have died and been reused between the scan and
        // the open: only trust the descriptor if it is still the same
        // process, still in the pod.
        if self.start_time(pid) != Some(before) || !self.in_pod(pid, pod_uid) {
            return None;
        }
        let st = nix::sys::stat::fstat(fd.as_fd()).ok()?;
        let inode = (st.st_dev, st.st_ino);
        if inode == self.host_netns {
            return None; // a process of the pod living in the host namespace
        }
        Some(PodNetns {
            netns: Netns::Fd(Arc::new(fd)),
            pid,
            start_time: before,
            inode,
        })
    }

    /// The pids the index places in the pod; the proc tree is scanned
    /// again unless a scan began after `asked` (concurrent callers share
    /// one scan) or `fresh` is false and the index knows the pod.
    fn candidates(
        &self,
        pod_uid: &str,
        asked: Instant,
        fresh: bool,
    ) -> Result<Vec<u32>, ResolveError> {
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        let known = index.pods.contains_key(pod_uid);
        if (fresh || !known) && index.scanned.is_none_or(|s| s < asked) {
            self.scan(&mut index)?;
        }
        let mut pids = index.pods.get(pod_uid).cloned().unwrap_or_default();
        pids.sort_unstable();
        Ok(pids)
    }

    fn scan(&self, index: &mut Index) -> Result<(), ResolveError> {
        let started = Instant::now();
        let dir = std::fs::read_dir(&self.proc_root).map_err(|source| ResolveError::Proc {
            path: self.proc_root.clone(),
            source,
        })?;
        let mut procs = HashMap::with_capacity(index.procs.len());
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let ino = e.ino();
            let pods = match index.procs.remove(&pid) {
                Some((i, pods)) if i == ino && !pods.is_empty() => pods,
                _ => std::fs::read_to_string(self.proc_root.join(format!("{pid}/cgroup")))
                    .map(|c| pods_named(&c))
                    .unwrap_or_default(),
            };
            procs.insert(pid, (ino, pods));
        }
        let mut pods: HashMap<String, Vec<u32>> = HashMap::new();
        for (pid, (_, uids)) in &procs {
            for uid in uids {
                pods.entry(uid.clone()).or_default().push(*pid);
            }
        }
        *index = Index {
            scanned: Some(started),
            procs,
            pods,
        };
        Ok(())
    }
}

impl NetnsResolver for CgroupResolver {
    fn resolve(&self, pod: &Pod) -> Result<Resolution, ResolveError> {
        if pod.never_touched().is_some() {
            return Ok(Resolution::HostNetwork);
        }
        // What the index knows first; if none of it holds, a fresh scan.
        let asked = Instant::now();
        let mut tried = Vec::new();
        for fresh in [false, true] {
            for pid in self.candidates(&pod.uid, asked, fresh)? {
                if tried.contains(&pid) {
                    continue;
                }
                tried.push(pid);
                if let Some(found) = self.open(pid, &pod.uid) {
                    return Ok(Resolution::Found(found));
                }
            }
        }
        Ok(Resolution::NotRunning)
    }

    fn still_valid(&self, held: &PodNetns) -> bool {
        self.start_time(held.pid) == Some(held.start_time)
            && stat_id(&self.proc_root.join(format!("{}/ns/net", held.pid))).ok()
                == Some(held.inode)
    }
}

/// Whether a `/proc/PID/cgroup` text places the process in the pod: a path
/// component `pod<uid>` (cgroupfs driver) or `…pod<uid_>.slice` (systemd).
pub fn cgroup_names_pod(cgroup: &str, pod_uid: &str) -> bool {
    !pod_uid.is_empty() && pods_named(cgroup).iter().any(|u| u == pod_uid)
}

/// The pod UIDs a `/proc/PID/cgroup` text names (see [`cgroup_names_pod`]),
/// in the API's spelling (dashes).
fn pods_named(cgroup: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in cgroup.lines().filter_map(|l| l.splitn(3, ':').nth(2)) {
        for c in path.split('/') {
            let uid = if let Some(s) = c.strip_suffix(".slice") {
                // `pod<uid_>.slice` or `…-pod<uid_>.slice`.
                let tail = s.rsplit('-').next().unwrap_or(s);
                tail.strip_prefix("pod").map(|u| u.replace('_', "-"))
            } else {
                c.strip_prefix("pod").map(String::from)
            };
            if let Some(u) = uid.filter(|u| !u.is_empty() && !out.contains(u)) {
                out.push(u);
            }
        }
    }
    out
}

fn stat_id(path: &Path) -> Result<(u64, u64), ResolveError> {
    let st = nix::sys::stat::stat(path).map_err(|e| ResolveError::Proc {
        path: path.to_owned(),
        source: e.into(),
    })?;
    Ok((st.st_dev, st.st_ino))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_both_cgroup_drivers() {
        let uid = "1f2e3d4c-0000-4111-8222-abcdefabcdef";
        let cgroupfs = "0::/kubepods/burstable/pod1f2e3d4c-0000-4111-8222-abcdefabcdef/0123abcd\n";
        let systemd = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1f2e3d4c_0000_4111_8222_abcdefabcdef.slice/cri-containerd-0123.scope\n";
        let guaranteed = "12:memory:/kubepods.slice/kubepods-pod1f2e3d4c_0000_4111_8222_abcdefabcdef.slice/crio-77.scope\n";
        assert!(cgroup_names_pod(cgroupfs, uid));
        assert!(cgroup_names_pod(systemd, uid));
        assert!(cgroup_names_pod(guaranteed, uid));
        assert!(!cgroup_names_pod(
            cgroupfs,
            "1f2e3d4c-0000-4111-8222-abcdefabcdee"
        ));
        assert!(!cgroup_names_pod(
            "0::/kubepods/burstable/pod1f2e3d4c-0000-4111-8222-abcdefabcdef0/x\n",
            uid
        ));
        assert!(!cgroup_names_pod(cgroupfs, ""));
        // The index's reading: one UID per pod named, in the API's spelling.
        for text in [cgroupfs, systemd, guaranteed] {
            assert_eq!(pods_named(text), vec![uid.to_string()]);
        }
        assert!(pods_named("0::/system.slice/containerd.service\n").is_empty());
    }
}
