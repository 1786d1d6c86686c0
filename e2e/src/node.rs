//! A node without Kubernetes, for fault tests: the built `linx-agent`
//! fed by a pods file (`run --local`), pods that are processes in
//! namespaces of the test's (in kubelet-style cgroups, so the agent's real
//! resolver finds them), a namespace standing for the node's own (the
//! real host namespace is never handed to the agent as "host"), and what
//! tests read of the agent: its reports, its descriptors, threads and
//! memory from `/proc`, and which of its descriptors live in a namespace.
//! Everything is removed on drop, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

pub use linx_agent::testing::netns_fds_of;
use linx_agent::testing::{binary, pod_uid, FakePod};
use linx_netfilter::testing::TestNetns;
use serde_json::{json, Value};

/// The `linx-agent` binary (`LINX_AGENT_BIN`, else built once).
pub fn agent_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| binary("linx-agent", "LINX_AGENT_BIN"))
        .clone()
}

/// A scratch directory (pods file, ruleset files, reports) and the
/// namespace that plays the node's own.
pub struct LocalNode {
    pub dir: PathBuf,
    pub host: TestNetns,
}

static NODES: AtomicU32 = AtomicU32::new(0);

impl LocalNode {
    pub fn new() -> LocalNode {
        let dir = std::env::temp_dir().join(format!(
            "linx-e2e-node-{}-{}",
            std::process::id(),
            NODES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the node's directory");
        LocalNode {
            dir,
            host: TestNetns::new(),
        }
    }

    /// Writes a ruleset file the pods file can name.
    pub fn write_ruleset(&self, file: &str, nft: &str) {
        std::fs::write(self.dir.join(file), nft).expect("write a ruleset file");
    }

    /// Replaces the pods file at once (write, then rename: the agent
    /// never reads half a file).
    pub fn set_pods(&self, pods: &[Value]) {
        let tmp = self.dir.join("pods.json.tmp");
        std::fs::write(&tmp, json!({ "pods": pods }).to_string()).expect("write the pods file");
        std::fs::rename(&tmp, self.dir.join("pods.json")).expect("rename the pods file");
    }

    /// The agent's per-pod reports (`--report`), empty before the first.
    pub fn reports(&self) -> Vec<Value> {
        std::fs::read(self.dir.join("report.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The report of the pod named `name`.
    pub fn report(&self, name: &str) -> Option<Value> {
        self.reports().into_iter().find(|r| r["name"] == name)
    }

    /// `linx-agent run --local` on this node, not started: the pods file
    /// polled every 50 ms, reports written, the node's namespace named.
    pub fn agent_command(&self) -> Command {
        let pods = self.dir.join("pods.json");
        self.command(&[
            "--local".as_ref(),
            pods.as_os_str(),
            "--poll-ms".as_ref(),
            "50".as_ref(),
        ])
    }

    /// `linx-agent run` on this node against the API server of
    /// `kubeconfig`, as node `node_name` (reports every second), not started.
    pub fn cluster_agent_command(&self, node_name: &str, kubeconfig: &Path) -> Command {
        let mut c = self.command(&[
            "--node-name".as_ref(),
            node_name.as_ref(),
            "--report-interval-secs".as_ref(),
            "1".as_ref(),
        ]);
        c.env("KUBECONFIG", kubeconfig);
        c
    }

    /// The agent's command; a report an earlier agent left is removed
    /// (what tests read is this agent's).
    fn command(&self, source: &[&std::ffi::OsStr]) -> Command {
        let _ = std::fs::remove_file(self.dir.join("report.json"));
        let mut c = Command::new(agent_bin());
        c.arg("run")
            .args(source)
            .arg("--report")
            .arg(self.dir.join("report.json"))
            .arg("--host-netns")
            .arg(self.host.path())
            .env(
                "RUST_LOG",
                std::env::var("LINX_E2E_AGENT_LOG").unwrap_or_else(|_| "linx_agent=warn".into()),
            )
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        c
    }

    /// Starts the agent with [`LocalNode::agent_command`].
    pub fn agent(&self) -> Agent {
        Agent::spawn(self.agent_command())
    }
}

impl Default for LocalNode {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running agent; killed on drop.
pub struct Agent(Child);

impl Agent {
    pub fn spawn(mut cmd: Command) -> Agent {
        Agent(cmd.spawn().expect("start linx-agent"))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL, and reaped: whatever it was doing stops there.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// SIGTERM; panics unless it exits cleanly.
    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let st = self.0.wait().expect("wait for linx-agent");
        assert!(st.success(), "linx-agent exited with {st}");
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// Its descriptors, threads and resident memory now.
    pub fn usage(&self) -> Usage {
        usage(self.pid())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A pod of the node: its namespace and the process that keeps it
/// "running" there, in the pod's cgroup.
pub struct NodePod {
    pub name: String,
    pub uid: String,
    pub fake: FakePod,
    pub ns: TestNetns,
}

static PODS: AtomicU32 = AtomicU32::new(0x1000);

/// A pod UID no other pod of this process has.
pub fn next_pod_uid() -> String {
    pod_uid(PODS.fetch_add(1, Ordering::Relaxed))
}

impl NodePod {
    /// A pod named `name` with a fresh namespace.
    pub fn start(name: &str) -> NodePod {
        Self::start_as(name, &next_pod_uid())
    }

    /// A pod of UID `uid` (from an API server) with a fresh namespace.
    pub fn start_as(name: &str, uid: &str) -> NodePod {
        let ns = TestNetns::new();
        let fake = FakePod::start(uid, false, Some(&ns));
        NodePod {
            name: name.to_owned(),
            uid: uid.to_owned(),
            fake,
            ns,
        }
    }

    /// Its entry in the pods file, selected by `ruleset` (a file of the
    /// node's directory) or by nothing.
    pub fn entry(&self, ruleset: Option<&str>) -> Value {
        entry(&self.uid, &self.name, false, ruleset)
    }

    /// `nft -s list table inet linx` in its namespace (`None`: no table).
    pub fn table(&self) -> Option<String> {
        self.ns.nft(&["-s", "list", "table", "inet", "linx"]).ok()
    }

    /// Panics, naming the pod and the first line that differs, unless
    /// its table lists as `want`.
    pub fn assert_table(&self, want: &str) {
        let got = self.table().unwrap_or_default();
        if got != want {
            panic!("{}: {}", self.name, first_difference(&got, want));
        }
    }
}

/// Where two listings part: the line number and both lines.
pub fn first_difference(got: &str, want: &str) -> String {
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    let i = g.iter().zip(&w).take_while(|(a, b)| a == b).count();
    format!(
        "line {}: got {:?}, want {:?} ({} vs {} lines)",
        i + 1,
        g.get(i).copied().unwrap_or("<end>"),
        w.get(i).copied().unwrap_or("<end>"),
        g.len(),
        w.len()
    )
}

/// A pods-file entry in the namespace `faults`.
pub fn entry(uid: &str, name: &str, host_network: bool, ruleset: Option<&str>) -> Value {
    let mut e = json!({"uid": uid, "namespace": "faults", "name": name,
                       "labels": {"app": name}, "hostNetwork": host_network});
    if let Some(r) = ruleset {
        e["ruleset"] = json!(r);
    }
    e
}

/// nft's own listing (`-s`) of table `inet linx` after `nft -f` of
/// `script` in a scratch namespace: the oracle to compare pods with.
pub fn linx_listing(script: &str) -> String {
    let scratch = TestNetns::new();
    scratch.load(script);
    scratch
        .nft(&["-s", "list", "table", "inet", "linx"])
        .expect("list the loaded table")
}

/// The namespace's nf_tables generation: it moves with every commit there.
pub fn generation(ns: &TestNetns) -> u32 {
    linx_netfilter::Socket::open(&ns.netns())
        .and_then(|mut s| s.generation())
        .expect("read the generation")
        .id
}

/// A process's descriptors, threads and resident memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub fds: usize,
    pub threads: usize,
    pub rss_kib: u64,
}

/// [`Usage`] of `pid`, from `/proc`.
pub fn usage(pid: u32) -> Usage {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Usage {
        fds,
        threads: field("Threads:") as usize,
        rss_kib: field("VmRSS:"),
    }
}

/// The inode of a test namespace (for [`netns_fds_of`]).
pub fn inode(ns: &TestNetns) -> u64 {
    ns.netns().inode().expect("stat the namespace").1
}

/// A process that is not a pod's: `sleep` in `ns`, in the caller's cgroup.
pub fn bystander(ns: &Path) -> Child {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["sleep", "3600"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn a process in the namespace")
}
