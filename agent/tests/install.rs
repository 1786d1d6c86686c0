//! `linx-agent install-cni`, the built binary on a throwaway node layout
//! (a CNI configuration directory holding Calico's conflist, and a bin
//! directory): chained once, chained again after the cluster's CNI
//! rewrites its file, and on SIGTERM left in place (a restart) or taken
//! out with the binary (an uninstall).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Node {
    root: PathBuf,
}

impl Node {
    fn new(tag: &str) -> Node {
        let root = std::env::temp_dir().join(format!("linx-install-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["net.d", "bin"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy(calico(), root.join("net.d/10-calico.conflist")).unwrap();
        std::fs::write(root.join("linx-cni"), b"\x7fELF not really\n").unwrap();
        Node { root }
    }

    fn conflist(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.root.join("net.d/10-calico.conflist")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn types(&self) -> Vec<String> {
        self.conflist()["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap().to_owned())
            .collect()
    }

    fn cmd(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_linx-agent"));
        c.arg("install-cni")
            .arg("--cni-conf-dir")
            .arg(self.root.join("net.d"))
            .arg("--cni-bin-dir")
            .arg(self.root.join("bin"))
            .arg("--plugin-binary")
            .arg(self.root.join("linx-cni"))
            .args([
                "--exclude-namespace",
                "kube-system",
                "--namespace",
                "linx-system",
            ])
            .args(extra)
            .env("KUBECONFIG", self.root.join("no-such-kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST");
        c
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn calico() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cni/tests/conflists/calico.conflist")
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn term(mut child: Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "install-cni exited with {st}");
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "install-cni did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn once_chains_the_plugin_with_its_settings() {
    let node = Node::new("once");
    let st = node
        .cmd(&[
            "--once",
            "--failure-policy",
            "failOpen",
            "--timeout-secs",
            "5",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(node.types(), ["calico", "portmap", "bandwidth", "linx-cni"]);
    let ours = node.conflist()["plugins"][3].clone();
    assert_eq!(
        ours,
        serde_json::json!({"type": "linx-cni", "agentSocket": "/run/linx/agent.sock",
            "stateDir": "/run/linx/cni", "failurePolicy": "failOpen", "timeoutSeconds": 5,
            "excludeNamespaces": ["kube-system", "linx-system"]})
    );
    assert_eq!(
        std::fs::read(node.root.join("bin/linx-cni")).unwrap(),
        b"\x7fELF not really\n"
    );
    let bad = node
        .cmd(&["--once", "--timeout-secs", "600"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("timeout-secs: 600"));
    // --uninstall: the original file again, and no binary.
    assert!(node.cmd(&["--uninstall"]).status().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(node.root.join("net.d/10-calico.conflist")).unwrap(),
        std::fs::read_to_string(calico()).unwrap()
    );
    assert!(!node.root.join("bin/linx-cni").exists());
}

#[test]
fn the_sidecar_keeps_the_plugin_chained_and_stays_on_restart() {
    let node = Node::new("restart");
    // `auto` without a cluster to ask: it cannot tell, so it stays.
    let child = node.cmd(&["--interval-secs", "1"]).spawn().unwrap();
    eventually("linx-cni chained", || {
        node.types().last().map(String::as_str) == Some("linx-cni")
    });
    // The cluster's CNI rewrites its file: chained again.
    std::fs::copy(calico(), node.root.join("net.d/10-calico.conflist")).unwrap();
    assert_eq!(node.types(), ["calico", "portmap", "bandwidth"]);
    eventually("linx-cni chained again", || node.types().len() == 4);
    term(child);
    assert_eq!(node.types(), ["calico", "portmap", "bandwidth", "linx-cni"]);
    assert!(node.root.join("bin/linx-cni").exists());
}

#[test]
fn the_sidecar_uninstalls_when_told_the_daemonset_goes() {
    let node = Node::new("uninstall");
    let child = node
        .cmd(&["--interval-secs", "1", "--uninstall-on-exit", "always"])
        .spawn()
        .unwrap();
    eventually("linx-cni chained", || node.types().len() == 4);
    term(child);
    assert_eq!(
        std::fs::read_to_string(node.root.join("net.d/10-calico.conflist")).unwrap(),
        std::fs::read_to_string(calico()).unwrap()
    );
    assert!(!node.root.join("bin/linx-cni").exists());
}
