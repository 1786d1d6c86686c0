//! The built `linx-agent` binary against namespaces this test creates, fed
//! by a pods file (no Kubernetes). The cluster flows: `cluster.rs`,
//! `selectors.rs`, `observe.rs`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use linx_agent::testing::{pod_uid, FakePod};
use linx_e2e::cluster::agent_bin;
use linx_e2e::{eventually, free_addr, scrape};
use linx_netfilter::testing::TestNetns;

struct Agent(Child);

impl Agent {
    fn start(dir: &Path, metrics: &str) -> Agent {
        let child = Command::new(agent_bin())
            .args(["run", "--local"])
            .arg(dir.join("pods.json"))
            .args(["--poll-ms", "100", "--metrics-addr", metrics, "--report"])
            .arg(dir.join("report.json"))
            // The test's namespace plays the node's (pid 1 is not readable here).
            .args(["--host-netns", "/proc/self/ns/net"])
            .env("RUST_LOG", "linx_agent=debug")
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start linx-agent");
        Agent(child)
    }
    fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let st = self.0.wait().unwrap();
        assert!(st.success(), "agent exited with {st}");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn listing_of(script: &str) -> String {
    let scratch = TestNetns::new();
    scratch.load(script);
    scratch.ruleset()
}

fn reports(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read(dir.join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn report_of(dir: &Path, name: &str) -> Option<serde_json::Value> {
    reports(dir).into_iter().find(|r| r["name"] == name)
}

// (No anonymous sets here: `syntax::compile` leaves out the set userdata
// and size nft sends, so a pulled value differs and a restart rewrites
// those rules; reported to the compiler's owner.)
const WEB: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\ttcp dport 80 accept\n\t\ttcp dport 443 accept\n\t}\n}\n";
const WEB2: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\ttcp dport 80 accept\n\t\ttcp dport 443 accept\n\t\ttcp dport 8080 counter accept\n\t}\n}\n";
const DB: &str = "table inet linx {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tip saddr 10.0.0.0/8 tcp dport 5432 accept\n\t}\n}\n";

#[test]
fn the_agent_binary_keeps_pod_namespaces_exact() {
    let host_before = linx_netfilter::testing::host_ruleset();
    let dir = std::env::temp_dir().join(format!("linx-e2e-agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("web.nft"), WEB).unwrap();
    std::fs::write(dir.join("web2.nft"), WEB2).unwrap();
    std::fs::write(dir.join("db.nft"), DB).unwrap();
    let (web_ns, db_ns) = (TestNetns::new(), TestNetns::new());
    let (web_uid, db_uid, host_uid) = (pod_uid(9001), pod_uid(9002), pod_uid(9003));
    let _web = FakePod::start(&web_uid, false, Some(&web_ns));
    let _db = FakePod::start(&db_uid, true, Some(&db_ns));
    let _host = FakePod::start(&host_uid, false, None);
    db_ns.load("table ip mesh {\n\tchain out {\n\t\ttype nat hook output priority -100; policy accept;\n\t}\n}\n");
    let mesh = db_ns.ruleset();
    let pods = |web: &str, db: Option<&str>| {
        let db = db
            .map(|d| format!(", \"ruleset\": \"{d}\""))
            .unwrap_or_default();
        let json = format!(
            r#"{{"pods": [
  {{"uid": "{web_uid}", "namespace": "shop", "name": "web", "labels": {{"app": "web"}}, "ruleset": "{web}"}},
  {{"uid": "{db_uid}", "namespace": "shop", "name": "db"{db}}},
  {{"uid": "{host_uid}", "namespace": "kube-system", "name": "exporter", "hostNetwork": true, "ruleset": "web.nft"}}
]}}"#
        );
        std::fs::write(dir.join("pods.json.tmp"), json).unwrap();
        std::fs::rename(dir.join("pods.json.tmp"), dir.join("pods.json")).unwrap();
    };
    pods("web.nft", Some("db.nft"));
    let (web_text, web2_text, db_text) = (listing_of(WEB), listing_of(WEB2), listing_of(DB));
    let metrics = free_addr();
    let t = Instant::now();
    let mut agent = Agent::start(&dir, &metrics);

    let s = Duration::from_secs(20);
    eventually("web converged", s, || web_ns.ruleset() == web_text);
    eventually("db converged", s, || {
        db_ns.ruleset() == format!("{mesh}{db_text}")
    });
    eprintln!("binary converged 2 pods in {:?}", t.elapsed());
    eventually("hostNetwork pod reported skipped", s, || {
        report_of(&dir, "exporter")
            .is_some_and(|r| r["state"] == "Skipped" && r["reason"] == "hostNetwork")
    });
    let m = scrape(&metrics);
    assert!(m.contains("linx_agent_pods_managed 2"), "{m}");
    assert!(m.contains("linx_agent_pods_skipped 1"), "{m}");

    // Someone flushes the pod's chain: repaired.
    web_ns
        .nft(&["flush", "chain", "inet", "linx", "input"])
        .unwrap();
    eventually("repair", Duration::from_secs(2), || {
        web_ns.ruleset() == web_text
    });

    // A new value for web; db no longer selected: its table goes, mesh stays.
    pods("web2.nft", None);
    eventually("web re-converged", s, || web_ns.ruleset() == web2_text);
    eventually("db cleaned", s, || db_ns.ruleset() == mesh);

    // Restart: the agent adopts its tables; the counter of the kept rule
    // shows nothing was recreated.
    web_ns.nft(&["reset", "counters"]).ok();
    agent.stop();
    assert_eq!(
        web_ns.ruleset(),
        web2_text,
        "tables stay when the agent stops"
    );
    let handles = web_ns.nft(&["-a", "list", "ruleset"]).unwrap();
    let mut agent = Agent::start(&dir, &free_addr());
    eventually("restarted agent reports web applied", s, || {
        report_of(&dir, "web").is_some_and(|r| r["state"] == "Applied" && r["patchOps"] == 0)
    });
    assert_eq!(web_ns.nft(&["-a", "list", "ruleset"]).unwrap(), handles);
    agent.stop();
    assert_eq!(
        linx_netfilter::testing::host_ruleset(),
        host_before,
        "host namespace untouched"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
