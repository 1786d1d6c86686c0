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

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

    fn candidates(&self, pod_uid: &str) -> Result<Vec<u32>, ResolveError> {
        let dir = std::fs::read_dir(&self.proc_root).map_err(|source| ResolveError::Proc {
            path: self.proc_root.clone(),
            source,
        })?;
        let mut pids: Vec<u32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|pid| self.in_pod(*pid, pod_uid))
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }
}

impl NetnsResolver for CgroupResolver {
    fn resolve(&self, pod: &Pod) -> Result<Resolution, ResolveError> {
        if pod.never_touched().is_some() {
            return Ok(Resolution::HostNetwork);
        }
        for pid in self.candidates(&pod.uid)? {
            let Some(before) = self.start_time(pid) else {
                continue;
            };
            let Ok(file) = std::fs::File::open(self.proc_root.join(format!("{pid}/ns/net"))) else {
                continue;
            };
            let fd: OwnedFd = file.into();
            // The pid may have died and been reused between the scan and
            // the open: only trust the descriptor if it is still the same
            // process, still in the pod.
            if self.start_time(pid) != Some(before) || !self.in_pod(pid, &pod.uid) {
                continue;
            }
            let Ok(st) = nix::sys::stat::fstat(fd.as_fd()) else {
                continue;
            };
            let inode = (st.st_dev, st.st_ino);
            if inode == self.host_netns {
                continue; // a process of the pod living in the host namespace
            }
            return Ok(Resolution::Found(PodNetns {
                netns: Netns::Fd(Arc::new(fd)),
                pid,
                start_time: before,
                inode,
            }));
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
    if pod_uid.is_empty() {
        return false;
    }
    let plain = format!("pod{pod_uid}");
    let systemd = format!("pod{}.slice", pod_uid.replace('-', "_"));
    cgroup
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .any(|path| {
            path.split('/')
                .any(|c| c == plain || c == systemd || c.ends_with(&format!("-{systemd}")))
        })
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
    }
}
