//! The generated kernel constants must match the installed UAPI headers.

#[test]
fn sys_constants_match_headers() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("python3")
        .arg(format!("{dir}/tools/gen-sys.py"))
        .output()
        .expect("run tools/gen-sys.py (needs python3 and linux-libc-dev)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(format!("{dir}/src/sys/generated.rs")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        committed,
        "src/sys/generated.rs is stale: run `python3 netfilter/tools/gen-sys.py > netfilter/src/sys/generated.rs`"
    );
}
