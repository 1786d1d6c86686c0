//! The Argo CD health check (`helm/linx/files/argocd-health.lua`) run by
//! the real Lua interpreter (`lua5.4`, as Argo CD embeds Lua 5.x) on
//! status fixtures (`tests/argocd/*.yaml`, first line `# expect: STATUS:
//! MESSAGE`) and on statuses the operator's own `status::desired` writes;
//! and the copy in `docs/firewallruleset.md` is the chart's file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use linx_crds::{Diagnostic, PodFailure, TableConflict, Validation};
use linx_operator::aggregate::Aggregate;
use linx_operator::status::{desired, Observed};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const SCRIPT: &str = "helm/linx/files/argocd-health.lua";

/// A JSON value as a Lua literal (`null` fields are left out, as Argo CD's
/// object conversion does).
fn lua(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        Value::Array(a) => format!("{{{}}}", a.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua(&Value::String(k.clone())), lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `STATUS: MESSAGE` of the health check on `obj`; `None` without lua5.4.
fn health(obj: &Value) -> Option<String> {
    let harness = format!(
        "local obj = {}\n\
         local src = assert(io.open({:?})):read(\"a\")\n\
         local f = assert(load(src, \"health.lua\", \"t\", setmetatable({{obj = obj}}, {{__index = _G}})))\n\
         local hs = f()\n\
         io.write(hs.status, \": \", hs.message or \"\")\n",
        lua(obj),
        root().join(SCRIPT).display().to_string()
    );
    let mut child = match Command::new("lua5.4")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            println!("skipped: lua5.4 is not installed ({e}); .ci/run installs it");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(harness.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn health_of_each_status_fixture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/argocd");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut seen = std::collections::BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let want = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# expect: ")
            .unwrap();
        let obj: Value = serde_yaml::from_str(&text).unwrap();
        let Some(got) = health(&obj) else { return };
        assert_eq!(got, want, "{}", f.display());
        seen.insert(want.split(':').next().unwrap().to_string());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["Degraded", "Healthy", "Progressing"]
    );
}

/// The statuses the operator writes, case by case, read by the check.
#[test]
fn health_of_what_the_operator_writes() {
    let valid = Validation::default();
    let invalid = Validation {
        diagnostics: vec![
            Diagnostic::new("spec.nft", "expected a value after this expression").at(4, 16),
        ],
        warnings: vec![],
    };
    let agg = |matched, applied, failed, stale| Aggregate {
        nodes: 1,
        stale_nodes: stale,
        matched,
        applied,
        failed,
        failures: (failed > 0)
            .then(|| PodFailure {
                node: "node-a".into(),
                pod: "web-1".into(),
                message: "netlink: EPERM".into(),
            })
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let lost = vec![TableConflict {
        table: "inet fw".into(),
        other: "base".into(),
        owned: false,
    }];
    /// Validation, reports, conflicts, whether pods are selected, health.
    type Case<'a> = (
        &'a Validation,
        Aggregate,
        Vec<TableConflict>,
        Option<bool>,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (&valid, agg(2, 2, 0, 0), vec![], None, "Healthy: all 2 selected pods run generation 7"),
        (&valid, Aggregate::default(), vec![], Some(false), "Healthy: no pod selected; generation 7 is valid"),
        (&valid, Aggregate::default(), vec![], Some(true), "Progressing: no agent has reported generation 7 yet"),
        (&valid, agg(2, 1, 0, 1), vec![], None, "Progressing: 1 of 2 pods run generation 7; 1 node(s) have not reported it yet"),
        (&valid, agg(2, 1, 1, 0), vec![], None, "Degraded: 1 of 2 pods failed to apply generation 7; first: node-a/web-1: netlink: EPERM"),
        (&invalid, agg(2, 0, 0, 1), vec![], None, "Degraded: spec.nft, 4:16: expected a value after this expression"),
        (&valid, agg(1, 1, 0, 0), lost, None, "Degraded: table inet fw is owned by base (older); not applied from this resource"),
    ];
    let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap());
    for (validation, reports, conflicts, selects_pods, want) in cases {
        let o = Observed {
            generation: 7,
            current: None,
            validation,
            reports: &reports,
            conflicts,
            selects_pods,
        };
        let (status, _) = desired(&o, &now);
        let obj = json!({"metadata": {"name": "web", "namespace": "shop", "generation": 7},
                         "status": serde_json::to_value(&status).unwrap()});
        let Some(got) = health(&obj) else { return };
        assert_eq!(got, want);
    }
}

/// The docs show the chart's script, exactly.
#[test]
fn docs_carry_the_charts_script() {
    let script = std::fs::read_to_string(root().join(SCRIPT)).unwrap();
    let docs = std::fs::read_to_string(root().join("docs/firewallruleset.md")).unwrap();
    let indented: String = script
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("    {l}\n")
            }
        })
        .collect();
    assert!(
        docs.contains(&indented),
        "docs/firewallruleset.md must show {SCRIPT} (indented under the argocd-cm key)"
    );
}
