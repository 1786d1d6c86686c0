//! Test fixtures: a throwaway network namespace per test (removed on drop),
//! and `nft` run inside it as the oracle. Nothing here ever touches the
//! host namespace's firewall.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Netns;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh network namespace, `/run/netns/linx-t-PID-N`, deleted on drop.
pub struct TestNetns {
    name: String,
}

impl TestNetns {
    /// Creates the namespace (needs root and `ip` from iproute2).
    pub fn new() -> Self {
        let name = format!(
            "linx-t-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("run `ip netns add` (iproute2)");
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = TestNetns { name };
        assert_ne!(
            ns.netns().inode().expect("stat test netns"),
            Netns::Current.inode().expect("stat own netns"),
            "a test namespace must never be the host's"
        );
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
    pub fn netns(&self) -> Netns {
        Netns::Path(self.path())
    }

    /// Runs `nft ARGS` inside the namespace; `Err(stderr)` when it fails.
    pub fn nft(&self, args: &[&str]) -> Result<String, String> {
        self.nft_with_input(args, None)
    }

    /// Loads an nft script (`nft -f -`) inside the namespace.
    pub fn nft_load(&self, script: &str) -> Result<String, String> {
        self.nft_with_input(&["-f", "-"], Some(script))
    }

    /// Panicking variant of [`TestNetns::nft_load`], for test setup.
    pub fn load(&self, script: &str) {
        if let Err(e) = self.nft_load(script) {
            panic!(
                "nft -f failed in {}: {e}\n--- script ---\n{script}",
                self.name
            );
        }
    }

    /// `nft list ruleset` inside the namespace.
    pub fn ruleset(&self) -> String {
        self.nft(&["list", "ruleset"])
            .unwrap_or_else(|e| panic!("nft list ruleset: {e}"))
    }

    fn nft_with_input(&self, args: &[&str], input: Option<&str>) -> Result<String, String> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg("nft")
            .args(args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("spawn nsenter nft: {e}"))?;
        if let Some(text) = input {
            let mut stdin = child.stdin.take().expect("stdin");
            let text = text.to_owned();
            // Feed on a thread: a big script must not deadlock against stdout.
            std::thread::spawn(move || stdin.write_all(text.as_bytes()));
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("wait nft: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Default for TestNetns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `nft list ruleset` of the host namespace, read-only: tests compare it
/// before and after to prove they never wrote there.
pub fn host_ruleset() -> String {
    let out = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("run nft");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
