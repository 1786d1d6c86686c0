//! `linx-agent pull` and `apply` against real namespaces.

use std::process::Command;

use linx_netfilter::testing::TestNetns;
use linx_netfilter::Ruleset;

const RULESET: &str = "table inet fw {
	set blocked {
		type ipv4_addr
		flags interval
		elements = { 10.0.0.0/8, 192.168.1.1 }
	}

	chain input {
		type filter hook input priority filter; policy drop;
		ip saddr @blocked drop
		tcp dport { 22, 443 } accept comment \"admin\"
	}
}
table ip other {
	chain c {
	}
}
";

fn agent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_linx-agent"))
        .args(args)
        .output()
        .expect("run linx-agent")
}

#[test]
fn pull_then_apply_reproduces_the_ruleset() {
    let a = TestNetns::new();
    a.load(RULESET);
    let path = a.path().display().to_string();

    let json = agent(&["pull", "--netns", &path, "--output", "json"]);
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let value: Ruleset = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value.tables.len(), 2);

    let only = agent(&["pull", "--netns", &path, "--table", "inet:fw"]);
    assert!(
        only.status.success(),
        "{}",
        String::from_utf8_lossy(&only.stderr)
    );
    let file = std::env::temp_dir().join(format!("linx-cli-{}.yaml", std::process::id()));
    std::fs::write(&file, &only.stdout).unwrap();

    let b = TestNetns::new();
    let (b_path, file_path) = (b.path().display().to_string(), file.display().to_string());
    let out = agent(&["apply", "--netns", &b_path, "-f", &file_path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 tables, 1 chains, 2 rules"), "{said}");
    let want = a.nft(&["list", "table", "inet", "fw"]).unwrap();
    assert_eq!(b.ruleset(), want);

    // Applying again: the table exists, the kernel refuses, nothing changes.
    let again = agent(&["apply", "--netns", &b_path, "-f", &file_path]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(again.status.code(), Some(2));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("add table inet fw") && err.contains("File exists"),
        "{err}"
    );
    assert_eq!(b.ruleset(), want);
}

#[test]
fn errors_go_to_stderr_with_exit_code_2() {
    let out = agent(&["pull", "--netns", "/run/netns/linx-no-such-namespace"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("linx-no-such-namespace"), "{err}");

    let bad = agent(&["pull", "--netns", "pid:1", "--table", "nofamily:x"]);
    assert_eq!(bad.status.code(), Some(2));
}
