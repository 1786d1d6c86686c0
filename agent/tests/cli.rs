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
    assert!(
        said.contains("+ add table inet fw") && said.contains("in one transaction"),
        "{said}"
    );
    // Linx marks the table it creates; nft lists the same table otherwise.
    let want = a.nft(&["list", "table", "inet", "fw"]).unwrap();
    assert_eq!(b.ruleset(), want);

    // Applying again: nothing to do, nothing sent, nothing changed.
    let again = agent(&["apply", "--netns", &b_path, "-f", &file_path]);
    let _ = std::fs::remove_file(&file);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("nothing to do"));
    assert_eq!(b.ruleset(), want);
}

fn example(name: &str) -> String {
    format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn nft_files_apply_diff_and_pull_back_as_nft() {
    let ns = TestNetns::new();
    let oracle = TestNetns::new();
    let path = ns.path().display().to_string();
    let (v1, v2) = (example("web-pod.nft"), example("web-pod-v2.nft"));

    let first = agent(&["apply", "--netns", &path, "-f", &v1]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    oracle.load(&std::fs::read_to_string(&v1).unwrap());
    assert_eq!(
        ns.ruleset(),
        oracle.ruleset(),
        "what Linx pushed lists as what nft loads"
    );

    let same = agent(&["diff", "--netns", &path, "-f", &v1]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    assert!(same.stdout.is_empty());

    let diff = agent(&["diff", "--netns", &path, "-f", &v2]);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    let text = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(
        text.trim(),
        "+ add rule inet linx-web input position 11 ip saddr @admin_nets tcp dport 9090 accept"
            .replace(
                "position 11",
                &text
                    .split_whitespace()
                    .nth(7)
                    .map(|h| format!("position {h}"))
                    .unwrap_or_default()
            ),
        "{text}"
    );
    assert!(
        text.contains("ip saddr @admin_nets tcp dport 9090 accept"),
        "{text}"
    );

    let dry = agent(&["apply", "--netns", &path, "-f", &v2, "--dry-run", "--check"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(String::from_utf8_lossy(&dry.stdout).contains("validated by the kernel"));
    assert_eq!(ns.ruleset(), oracle.ruleset(), "a dry run changes nothing");

    let apply = agent(&["apply", "--netns", &path, "-f", &v2]);
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    oracle.nft(&["flush", "ruleset"]).unwrap();
    oracle.load(&std::fs::read_to_string(&v2).unwrap());
    assert_eq!(ns.ruleset(), oracle.ruleset());

    let printed = agent(&["pull", "--netns", &path, "--output", "nft"]);
    assert!(printed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        oracle.ruleset(),
        "printed as nft lists it"
    );
}

/// `apply` of a file whose line 3 misspells `accept` at column 16, into
/// `netns`; the output and the file's path (removed by then).
fn apply_typo(netns: &str, tag: &str) -> (std::process::Output, String) {
    let file = std::env::temp_dir().join(format!("linx-bad-{tag}-{}.nft", std::process::id()));
    std::fs::write(
        &file,
        "table inet t {\n chain c {\n  tcp dport 22 acept\n }\n}\n",
    )
    .unwrap();
    let path = file.display().to_string();
    let out = agent(&["apply", "--netns", netns, "-f", &path]);
    let _ = std::fs::remove_file(&file);
    (out, path)
}

#[test]
fn a_syntax_error_is_reported_with_its_line_and_nothing_is_applied() {
    let ns = TestNetns::new();
    let (out, file) = apply_typo(&ns.path().display().to_string(), "line");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{file}:3:16: ")), "{err}");
    assert!(
        err.contains("tcp dport 22 acept") && err.contains("^^^^^"),
        "{err}"
    );
    assert_eq!(ns.ruleset(), "");
}

#[test]
fn a_rule_the_kernel_refuses_is_shown_at_its_line_and_nothing_is_applied() {
    // Compiles, but the kernel has no helper object `ftp`: nft refuses
    // that rule alone, and so must we (the set-carrying rule went first in
    // the batch; the resend in the file's order gives the kernel's one error).
    let ns = TestNetns::new();
    let file = std::env::temp_dir().join(format!("linx-refused-{}.nft", std::process::id()));
    std::fs::write(
        &file,
        "table inet t {\n chain c {\n  tcp dport 1 accept\n  tcp dport { 2, 3 } ct helper set \"ftp\"\n  tcp dport 4 accept\n }\n}\n",
    )
    .unwrap();
    let netns = ns.path().display().to_string();
    let path = file.display().to_string();
    let out = agent(&["apply", "--netns", &netns, "-f", &path]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    // At its place in the file, as nft shows it, the whole rule underlined.
    assert!(
        err.contains(&format!(
            "{path}:4:3: the kernel refused this rule: No such file or directory"
        )),
        "{err}"
    );
    let underlined = format!(
        "\n  tcp dport {{ 2, 3 }} ct helper set \"ftp\"\n  {}\n",
        "^".repeat(38)
    );
    assert!(err.contains(&underlined), "{err}");
    assert!(
        err.contains("(add rule inet t c tcp dport { 2, 3 } ct helper set \"ftp\"): No such file or directory"),
        "{err}"
    );
    assert!(!err.contains("more failing"), "{err}");
    assert_eq!(ns.ruleset(), "");
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

/// `apply` and `diff` compile the file while another thread pulls the
/// namespace: a bad file is still reported (before a bad namespace), and
/// another program's table, pulled with the rest, is left as it was.
#[test]
fn apply_compiles_beside_the_pull_and_touches_only_its_tables() {
    let (out, file) = apply_typo("/run/netns/linx-no-such-namespace", "first");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{file}:3:16: ")),
        "the file's error first: {err}"
    );

    let ns = TestNetns::new();
    let foreign =
        "table ip other {\n\tchain c {\n\t\ttcp dport 9 counter packets 0 bytes 0 drop\n\t}\n}\n";
    ns.load(foreign);
    let path = ns.path().display().to_string();
    let file = example("web-pod.nft");
    for (cmd, code) in [("diff", 1), ("apply", 0), ("diff", 0)] {
        let out = agent(&[cmd, "--netns", &path, "-f", &file]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(ns.nft(&["list", "table", "ip", "other"]).unwrap(), foreign);
}
