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
            remove_cgroup(d);
        }
    }
}

/// Many fake pods, made cheaply for benchmarks at 1,000 pods: each pod is
/// one `sleep` process that entered a network namespace of its own and
/// its pod cgroup before it ran (`unshare(CLONE_NEWNET)` and a write of
/// itself to `cgroup.procs` between fork and exec), so a pod costs one
/// fork and two `mkdir`s: no `ip netns add` bind mount, no `nsenter`
/// process, no window where the resolver could see it half made. Its
/// namespace lives as long as its process; nothing to delete after.
/// Pods are started on several threads at once.
///
/// For churn at a fixed rate, processes can be made ahead
/// ([`prepare`](PodFarm::prepare): the namespace, the costly part) and
/// made pods later ([`adopt`](PodFarm::adopt): a `mkdir` and a move into
/// the pod's cgroup), and pods stopped without waiting for their cgroups
/// to empty ([`retire`](PodFarm::retire)).
pub struct PodFarm {
    top: PathBuf,
    pods: Vec<FarmPod>,
    /// Made by `prepare`, in the farm's `spare` cgroup: no pod's yet.
    spare: Vec<Child>,
    /// Stopped by `retire`: killed, cleaned up on drop.
    retired: Vec<FarmPod>,
}

/// One pod of a [`PodFarm`]; killed and its cgroup removed on drop.
pub struct FarmPod {
    pub uid: String,
    child: Child,
    dir: PathBuf,
}

impl PodFarm {
    /// An empty farm (its cgroups under `CGROUP_ROOT/linx-farm-PID-N`).
    pub fn new() -> PodFarm {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let top = PathBuf::from(CGROUP_ROOT).join(format!("linx-farm-{}-{n}", std::process::id()));
        std::fs::create_dir_all(top.join("kubepods/burstable")).expect("create the farm's cgroup");
        PodFarm {
            top,
            pods: Vec::new(),
            spare: Vec::new(),
            retired: Vec::new(),
        }
    }

    /// Starts a pod for each UID, on up to 8 threads; returns their indices.
    pub fn start(&mut self, uids: &[String]) -> std::ops::Range<usize> {
        let first = self.pods.len();
        let parent = self.top.join("kubepods/burstable");
        let made = on_threads(uids, |u| FarmPod::start(&parent, u));
        self.pods.extend(made);
        first..self.pods.len()
    }

    /// Starts `n` processes ahead, each in a network namespace of its own
    /// but in no pod's cgroup, on up to 8 threads: for [`adopt`](Self::adopt).
    pub fn prepare(&mut self, n: usize) {
        let spare = self.top.join("spare");
        std::fs::create_dir_all(&spare).expect("create the farm's spare cgroup");
        let made = on_threads(&vec![(); n], |_| spawn_in(&spare));
        self.spare.extend(made);
    }

    /// Makes a prepared process the pod of `uid`: its cgroup made and the
    /// process moved into it. False when none is left.
    pub fn adopt(&mut self, uid: &str) -> bool {
        let Some(child) = self.spare.pop() else {
            return false;
        };
        let dir = self
            .top
            .join("kubepods/burstable")
            .join(format!("pod{uid}"));
        std::fs::create_dir_all(dir.join("c0")).expect("create the pod's cgroup");
        std::fs::write(dir.join("c0/cgroup.procs"), child.id().to_string())
            .expect("move a prepared process into its pod's cgroup");
        self.pods.push(FarmPod {
            uid: uid.to_string(),
            child,
            dir,
        });
        true
    }

    /// Kills the pod of `uid` (its namespace goes with its process) and
    /// leaves its cgroup's removal to the farm's drop.
    pub fn retire(&mut self, uid: &str) -> bool {
        match self.pods.iter().position(|p| p.uid == uid) {
            Some(i) => {
                let mut p = self.pods.swap_remove(i);
                let _ = p.child.kill();
                self.retired.push(p);
                true
            }
            None => false,
        }
    }

    pub fn pods(&self) -> &[FarmPod] {
        &self.pods
    }

    /// Removes the pod of `uid` (its process killed, its cgroup removed).
    pub fn stop(&mut self, uid: &str) -> bool {
        match self.pods.iter().position(|p| p.uid == uid) {
            Some(i) => {
                self.pods.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

impl Default for PodFarm {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PodFarm {
    fn drop(&mut self) {
        // Kill them all first, then wait: the cgroups empty in parallel.
        for p in &mut self.pods {
            let _ = p.child.kill();
        }
        for c in &mut self.spare {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.pods.clear();
        self.retired.clear();
        for d in [
            self.top.join("spare"),
            self.top.join("kubepods/burstable"),
            self.top.join("kubepods"),
            self.top.clone(),
        ] {
            remove_cgroup(&d);
        }
    }
}

impl FarmPod {
    fn start(parent: &std::path::Path, uid: &str) -> FarmPod {
        let dir = parent.join(format!("pod{uid}"));
        std::fs::create_dir_all(dir.join("c0")).expect("create the pod's cgroup");
        let child = spawn_in(&dir.join("c0"));
        FarmPod {
            uid: uid.to_string(),
            child,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The pod's namespace, by its process (`/proc/PID/ns/net`).
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid()))
    }

    /// `nft ARGS` inside the pod's namespace; `Err(stderr)` when it fails.
    pub fn nft(&self, args: &[&str]) -> Result<String, String> {
        linx_netfilter::testing::nft_in(&self.netns_path(), args, None)
    }
}

impl Drop for FarmPod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_cgroup(&self.dir.join("c0"));
        remove_cgroup(&self.dir);
    }
}

/// `f` of each of `items`, on up to 8 threads, in order.
fn on_threads<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let per = items.len().div_ceil(8).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|chunk| {
                let f = &f;
                s.spawn(move || chunk.iter().map(f).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("farm thread"))
            .collect()
    })
}

/// A `sleep` in a network namespace of its own, in `cgroup` before it
/// runs.
fn spawn_in(cgroup: &std::path::Path) -> Child {
    use std::os::unix::process::CommandExt;
    let procs = std::ffi::CString::new(
        cgroup
            .join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .expect("a path without NUL");
    let mut cmd = Command::new("sleep");
    cmd.arg("86400").stdin(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls
    // (unshare, open, write, close) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0": the writing process itself.
            let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            libc::close(fd);
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd.spawn().expect("start a farm pod")
}

/// Removes a cgroup directory, waiting a little for its last process to
/// be gone (a killed process leaves its cgroup shortly after `wait`).
fn remove_cgroup(d: &std::path::Path) {
    for _ in 0..50 {
        if std::fs::remove_dir(d).is_ok() || !d.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
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
/// inode (see [`netns_fds_of`]).
pub fn open_netns_fds(inode: u64) -> usize {
    netns_fds_of(std::process::id(), inode)
}

/// How many of process `pid`'s descriptors hold the namespace with this
/// inode: its nsfs files (opened from `/proc/PID/ns/net`, shown as
/// `net:[INODE]`, or from a bind mount such as `/run/netns/NAME`, or
/// received from another process) and the sockets living in it (each
/// copied here with `pidfd_getfd` and asked its namespace with
/// `SIOCGSKNS`).
pub fn netns_fds_of(pid: u32, inode: u64) -> usize {
    use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::MetadataExt;
    let want = format!("net:[{inode}]");
    // SAFETY: pidfd_open returns a new descriptor or fails; owned here.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if pidfd < 0 {
        return 0;
    }
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
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
            if !link.starts_with("socket:") {
                return !link.starts_with("anon_inode:")
                    && std::fs::metadata(e.path()).is_ok_and(|m| m.ino() == inode);
            }
            let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                return false;
            };
            // SAFETY: a copy of the process's descriptor, owned here.
            let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
            if copy < 0 {
                return false;
            }
            let copy = unsafe { OwnedFd::from_raw_fd(copy as i32) };
            // SAFETY: SIOCGSKNS returns a new descriptor (or fails), owned here.
            let ns = unsafe { libc::ioctl(copy.as_raw_fd(), libc::SIOCGSKNS) };
            if ns < 0 {
                return false;
            }
            let ns = unsafe { OwnedFd::from_raw_fd(ns) };
            nix::sys::stat::fstat(ns.as_fd()).is_ok_and(|st| st.st_ino == inode)
        })
        .count()
}

/// A workspace binary: the path in the environment variable `env` if set,
/// else built here with the running test's profile (cheap when fresh:
/// cargo finds it up to date).
///
/// Always the whole workspace, never `-p PACKAGE`: one package alone
/// resolves other features of the shared crates than the workspace does,
/// so building the agent, then the operator, then running the next test
/// binary rebuilt the engine each time (minutes per e2e test in CI). In
/// the dev profile `--all-targets` resolves exactly as `cargo test
/// --workspace` does, so after that command this build is a no-op.
pub fn binary(bin: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return p.into();
    }
    // target/PROFILE/deps/TEST-HASH → target/PROFILE/BIN
    let exe = std::env::current_exe().expect("test binary path");
    let mut dir = exe.parent().expect("target dir");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target/PROFILE");
    }
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // What cargo sets for the running test is not the caller's environment:
    // a build script that tracks one of these (ring tracks
    // CARGO_MANIFEST_DIR) would see it change and rebuild itself and all
    // above it, here and again in the next `cargo test`.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || key.starts_with("CARGO_MANIFEST_")
            || matches!(
                key,
                "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            )
        {
            cmd.env_remove(key);
        }
    }
    cmd.args(["build", "-q", "--workspace"]);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {
            cmd.arg("--all-targets");
        }
        Some(profile) => {
            cmd.args(["--bins", "--profile", profile]);
        }
    }
    let st = cmd.status().expect("run cargo build");
    assert!(st.success(), "building {bin} failed");
    dir.join(bin)
}

/// The `linx-cni` binary (`LINX_CNI_BIN`, else built).
pub fn cni_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| binary("linx-cni", "LINX_CNI_BIN"))
        .clone()
}

/// Where Debian's `containernetworking-plugins` puts the plugins.
pub const CNI_PLUGINS: &str = "/usr/lib/cni";

/// A CNI plugin chain run as a container runtime runs it (libcni's
/// order, environment and stdin: `cniVersion` and `name` of the list in
/// each plugin's configuration, `prevResult` chained on `ADD`, reverse
/// order on `DEL`), every plugin inside a throwaway "node" namespace so
/// that the bridge, the veth ends and the IPAM state never touch the
/// host. The chain is Debian's `bridge` + `host-local`, optionally
/// followed by `linx-cni` talking to an agent at [`CniChain::socket`].
pub struct CniChain {
    /// The node's namespace: the bridge lives here, and a listener here
    /// is a peer of every pod.
    pub node: TestNetns,
    /// Temporary directory: plugin path, IPAM data, start records, socket.
    pub dir: PathBuf,
    pub list: serde_json::Value,
    /// The results of each sandbox's `ADD`, for `CHECK` and `DEL`.
    results: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

/// What one plugin or chain invocation printed and exited with.
#[derive(Clone, Debug)]
pub struct CniOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl CniOutput {
    pub fn ok(&self) -> bool {
        self.status == 0
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout).unwrap_or(serde_json::Value::Null)
    }
}

/// The pod a sandbox is for, as `CNI_ARGS` names it.
pub fn cni_args(pod: &crate::Pod, container_id: &str) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID={}",
        pod.namespace, pod.name, pod.uid
    )
}

impl CniChain {
    /// A chain on subnet `10.<octet>.0.0/16`: `bridge` + `host-local`,
    /// then `linx-cni` with `linx` (its settings) unless `None`.
    pub fn new(octet: u8, linx: Option<linx_cni::conflist::Settings>) -> CniChain {
        let node = TestNetns::new();
        let dir = std::env::temp_dir().join(format!("linx-cni-chain-{}", node.name()));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("create the chain's directory");
        for p in ["bridge", "host-local", "ptp", "loopback"] {
            std::os::unix::fs::symlink(format!("{CNI_PLUGINS}/{p}"), bin.join(p))
                .expect("link a CNI plugin");
        }
        std::os::unix::fs::symlink(cni_binary(), bin.join("linx-cni")).expect("link linx-cni");
        let mut plugins = vec![serde_json::json!({
            "type": "bridge",
            "bridge": "linx-br0",
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "subnet": format!("10.{octet}.0.0/16"),
                "dataDir": dir.join("ipam"),
            }
        })];
        if let Some(mut s) = linx {
            s.agent_socket = dir.join("agent.sock");
            s.state_dir = dir.join("state");
            plugins.push(s.entry());
        }
        let list = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": format!("linx-test-{octet}"),
            "plugins": plugins,
        });
        CniChain {
            node,
            dir,
            list,
            results: Default::default(),
        }
    }

    /// Where `linx-cni` expects the agent.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }

    /// Where `linx-cni` keeps its start records.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The gateway address (the bridge's, in the node namespace).
    pub fn gateway(&self) -> String {
        let subnet = self.list["plugins"][0]["ipam"]["subnet"]
            .as_str()
            .expect("subnet");
        subnet.replace(".0.0/16", ".0.1")
    }

    /// Runs one plugin of the list (its configuration completed as libcni
    /// does) with the spec's environment.
    pub fn plugin(
        &self,
        index: usize,
        command: &str,
        netns: &std::path::Path,
        container_id: &str,
        args: &str,
        prev: Option<&[u8]>,
    ) -> CniOutput {
        let mut conf = self.list["plugins"][index].clone();
        conf["cniVersion"] = self.list["cniVersion"].clone();
        conf["name"] = self.list["name"].clone();
        if let Some(p) = prev {
            conf["prevResult"] = serde_json::from_slice(p).expect("previous result is JSON");
        }
        let ty = conf["type"].as_str().expect("plugin type").to_owned();
        self.exec(&ty, command, netns, container_id, args, &conf.to_string())
    }

    /// Runs the plugin binary `ty` in the node namespace.
    pub fn exec(
        &self,
        ty: &str,
        command: &str,
        netns: &std::path::Path,
        container_id: &str,
        args: &str,
        stdin: &str,
    ) -> CniOutput {
        use std::io::Write as _;
        let bin = self.dir.join("bin");
        let mut child = Command::new("nsenter")
            .arg(format!("--net={}", self.node.path().display()))
            .arg(bin.join(ty))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", container_id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", args)
            .env("CNI_PATH", &bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run a CNI plugin");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.as_bytes())
            .expect("write the configuration");
        drop(input);
        let out = child.wait_with_output().expect("wait for a CNI plugin");
        CniOutput {
            status: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `ADD` through the whole list; stops at the first failure. On
    /// success `outputs` holds each plugin's output, the last being the
    /// chain's result.
    pub fn add(&self, netns: &std::path::Path, container_id: &str, args: &str) -> Vec<CniOutput> {
        let n = self.list["plugins"].as_array().map_or(0, Vec::len);
        let mut outs: Vec<CniOutput> = Vec::with_capacity(n);
        for i in 0..n {
            let prev = outs.last().map(|o| o.stdout.clone());
            let out = self.plugin(i, "ADD", netns, container_id, args, prev.as_deref());
            let ok = out.ok();
            outs.push(out);
            if !ok {
                return outs;
            }
        }
        if let Some(last) = outs.last() {
            self.results
                .lock()
                .unwrap()
                .insert(container_id.to_owned(), last.stdout.clone());
        }
        outs
    }

    /// The chain's result of a sandbox's last successful `ADD`.
    pub fn add_result(&self, container_id: &str) -> Option<Vec<u8>> {
        self.results.lock().unwrap().get(container_id).cloned()
    }

    /// `CHECK` through the list, in order, with the `ADD` result.
    pub fn check(&self, netns: &std::path::Path, container_id: &str, args: &str) -> CniOutput {
        self.along(false, "CHECK", netns, container_id, args)
    }

    /// `DEL` through the list, in reverse, with the `ADD` result if any.
    pub fn del(&self, netns: &std::path::Path, container_id: &str, args: &str) -> CniOutput {
        let out = self.along(true, "DEL", netns, container_id, args);
        self.results.lock().unwrap().remove(container_id);
        out
    }

    fn along(
        &self,
        reverse: bool,
        command: &str,
        netns: &std::path::Path,
        container_id: &str,
        args: &str,
    ) -> CniOutput {
        let prev = self.results.lock().unwrap().get(container_id).cloned();
        let n = self.list["plugins"].as_array().map_or(0, Vec::len);
        let order: Vec<usize> = if reverse {
            (0..n).rev().collect()
        } else {
            (0..n).collect()
        };
        let mut last = CniOutput {
            status: 0,
            stdout: Vec::new(),
            stderr: String::new(),
        };
        for i in order {
            last = self.plugin(i, command, netns, container_id, args, prev.as_deref());
            if !last.ok() {
                break;
            }
        }
        last
    }
}

impl Drop for CniChain {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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
