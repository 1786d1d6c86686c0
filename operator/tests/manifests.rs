//! Deployment artefacts stay in sync with the code: `deploy/linx.yaml`
//! equals what `manifests` generates, and the Helm chart rendered with its
//! default values yields the same objects (a small renderer below covers
//! the template constructs the chart uses: values, `default`, `quote`,
//! `toYaml | nindent`, `if`, `with`). Both CRD copies are checked by
//! linx-crds' own drift test.

use std::path::{Path, PathBuf};

use linx_operator::manifests::{self, deploy_yaml, DEPLOY_PATH, NAMESPACE};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn deploy_manifests_match_the_code() {
    let have = std::fs::read_to_string(root().join(DEPLOY_PATH)).unwrap_or_default();
    assert!(
        have == deploy_yaml(),
        "{DEPLOY_PATH} is out of date: run `cargo run -p linx-operator --bin manifests`"
    );
}

#[test]
fn deploy_manifests_are_valid_kubernetes_objects() {
    use k8s_openapi::api::{
        apps::v1::{DaemonSet, Deployment},
        rbac::v1::ClusterRole,
    };
    for o in manifests::objects() {
        match o["kind"].as_str().unwrap() {
            "Deployment" => {
                let _: Deployment = serde_json::from_value(o.clone()).unwrap();
                let c = &o["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(c["ports"][0]["containerPort"], manifests::METRICS_PORT);
            }
            "DaemonSet" => {
                let d: DaemonSet = serde_json::from_value(o.clone()).unwrap();
                let pod = d.spec.template.spec.unwrap();
                // Sees pods' processes, never joins the node's network.
                assert_eq!((pod.host_pid, pod.host_network), (Some(true), None));
                let c = &pod.containers[0];
                let sc = c.security_context.as_ref().unwrap();
                assert_eq!(sc.read_only_root_filesystem, Some(true));
                assert_eq!(sc.privileged, None);
                let caps = sc.capabilities.as_ref().unwrap();
                assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
                let env = c.env.as_ref().unwrap();
                let node = env.iter().find(|e| e.name == "NODE_NAME").unwrap();
                let field = node
                    .value_from
                    .as_ref()
                    .unwrap()
                    .field_ref
                    .as_ref()
                    .unwrap();
                assert_eq!(field.field_path, "spec.nodeName");
                assert_eq!(pod.service_account_name.as_deref(), Some(manifests::AGENT));
            }
            "ClusterRole" => {
                let r: ClusterRole = serde_json::from_value(o.clone()).unwrap();
                // Least privilege: only traces (finished ones by the
                // operator, their own by users) and stale address sets may
                // be deleted, and only reports, status, traces and address
                // sets are written.
                for rule in r.rules.unwrap() {
                    let res = rule.resources.clone().unwrap_or_default();
                    assert!(!rule
                        .verbs
                        .iter()
                        .any(|v| v == "*" || v == "deletecollection"));
                    if rule.verbs.iter().any(|v| v == "delete") {
                        assert!(
                            res == ["firewalltraces"] || res == ["firewalladdresssets"],
                            "{res:?}"
                        );
                    }
                    if rule
                        .verbs
                        .iter()
                        .any(|v| v == "create" || v == "patch" || v == "update")
                    {
                        let res = rule.resources.clone().unwrap_or_default();
                        // The webhook configuration: only the operator's own, by name.
                        let own_webhook = res == ["validatingwebhookconfigurations"]
                            && rule.resource_names.as_deref()
                                == Some(&[manifests::OPERATOR.to_string()][..]);
                        assert!(
                            own_webhook
                                || res.iter().all(|r| [
                                    "firewallnodereports",
                                    "firewallrulesets/status",
                                    "firewalladdresssets",
                                    "events",
                                    "firewalltraces",
                                    "firewalltraces/status"
                                ]
                                .contains(&r.as_str())),
                            "{res:?}"
                        );
                    }
                    // No cluster-wide access to Secrets.
                    assert!(!rule
                        .resources
                        .unwrap_or_default()
                        .iter()
                        .any(|r| r == "secrets"));
                }
            }
            "Role" => {
                // Secrets: only the webhook's, in the operator's namespace
                // (create cannot be limited by name: a new name is unknown).
                let r: k8s_openapi::api::rbac::v1::Role =
                    serde_json::from_value(o.clone()).unwrap();
                assert_eq!(r.metadata.namespace.as_deref(), Some(NAMESPACE));
                for rule in r.rules.unwrap() {
                    if rule.resources.as_deref() == Some(&["secrets".to_string()][..]) {
                        let named = rule.resource_names.as_deref()
                            == Some(&[manifests::WEBHOOK_SECRET.to_string()][..]);
                        assert!(named || rule.verbs == ["create"], "{rule:?}");
                    }
                }
            }
            "ValidatingWebhookConfiguration" => {
                use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
                let v: ValidatingWebhookConfiguration = serde_json::from_value(o.clone()).unwrap();
                let w = &v.webhooks.unwrap()[0];
                assert_eq!(w.failure_policy.as_deref(), Some("Ignore"));
                assert_eq!(w.side_effects, "None");
                assert!(w.timeout_seconds.is_some_and(|t| (1..=10).contains(&t)));
                let sel = w.namespace_selector.as_ref().unwrap();
                let e = &sel.match_expressions.as_ref().unwrap()[0];
                assert_eq!(
                    (e.key.as_str(), e.operator.as_str(), e.values.as_deref()),
                    (
                        "kubernetes.io/metadata.name",
                        "NotIn",
                        Some(&[NAMESPACE.to_string()][..])
                    )
                );
                let svc = w.client_config.service.as_ref().unwrap();
                assert_eq!(svc.path.as_deref(), Some(linx_operator::webhook::PATH));
            }
            _ => {}
        }
    }
}

/// Looks up a dotted path (`.Values.operator.replicas`) in the render scope.
fn lookup<'a>(scope: &'a Value, dot: Option<&'a Value>, path: &str) -> Option<&'a Value> {
    if path == "." {
        return dot;
    }
    let mut cur = scope;
    for part in path.trim_start_matches('.').split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => true,
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Evaluates one `{{ ... }}` pipeline to text.
fn eval(expr: &str, scope: &Value, dot: Option<&Value>) -> String {
    let mut stages = expr.split('|').map(str::trim);
    let first = stages.next().unwrap();
    let mut val: Option<Value> = lookup(scope, dot, first).cloned();
    let mut out = None;
    for stage in stages {
        let mut words = stage.split_whitespace();
        match words.next() {
            Some("default") => {
                if !truthy(val.as_ref()) {
                    val = lookup(scope, dot, words.next().unwrap()).cloned();
                }
            }
            Some("quote") => out = Some(format!("{:?}", scalar(val.as_ref().unwrap()))),
            other => panic!("unsupported template function {other:?}"),
        }
    }
    out.unwrap_or_else(|| {
        scalar(
            val.as_ref()
                .unwrap_or_else(|| panic!("no value for {first}")),
        )
    })
}

/// Renders a chart template with `scope` (`Values`, `Release`, `Chart`).
fn render(template: &str, scope: &Value) -> String {
    let mut out = String::new();
    // Each open block: (active, the value `.` is bound to by `with`).
    let mut blocks: Vec<(bool, Option<Value>)> = Vec::new();
    for line in template.lines() {
        let t = line.trim();
        let active = blocks.iter().all(|(a, _)| *a);
        let dot = blocks.iter().rev().find_map(|(_, d)| d.clone());
        if let Some(inner) = t.strip_prefix("{{").and_then(|s| s.strip_suffix("}}")) {
            let inner = inner.trim_matches('-').trim();
            if inner.starts_with("/*") {
                continue;
            }
            let mut words = inner.splitn(2, ' ');
            match (words.next(), words.next()) {
                (Some("if"), Some(path)) => {
                    blocks.push((truthy(lookup(scope, dot.as_ref(), path)), None));
                    continue;
                }
                (Some("with"), Some(path)) => {
                    let v = lookup(scope, dot.as_ref(), path).cloned();
                    blocks.push((truthy(v.as_ref()), v));
                    continue;
                }
                (Some("end"), None) => {
                    blocks.pop();
                    continue;
                }
                (Some("toYaml"), Some(rest)) => {
                    if active {
                        let (path, indent) = rest.split_once("| nindent").unwrap();
                        let v = lookup(scope, dot.as_ref(), path.trim()).unwrap();
                        let pad = " ".repeat(indent.trim().parse().unwrap());
                        for l in serde_yaml::to_string(v).unwrap().lines() {
                            out.push_str(&format!("{pad}{l}\n"));
                        }
                    }
                    continue;
                }
                _ => {}
            }
        }
        if !active {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").unwrap() + start;
            out.push_str(&eval(
                rest[start + 2..end].trim_matches('-').trim(),
                scope,
                dot.as_ref(),
            ));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    assert!(blocks.is_empty(), "unbalanced blocks");
    out
}

fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// Every object the chart renders with `values` (changed by `edit`).
fn render_chart(edit: impl FnOnce(&mut Value)) -> Vec<Value> {
    let chart = root().join("helm/linx");
    let mut values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap()).unwrap();
    edit(&mut values);
    let meta: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart.join("Chart.yaml")).unwrap()).unwrap();
    let scope = serde_json::json!({
        "Values": values,
        "Release": {"Namespace": NAMESPACE, "Name": "linx", "Service": "Helm"},
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"]},
    });
    let mut rendered = Vec::new();
    let mut templates: Vec<PathBuf> = std::fs::read_dir(chart.join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    templates.sort();
    for t in templates
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        rendered.extend(docs(&render(&std::fs::read_to_string(t).unwrap(), &scope)));
    }
    rendered
}

/// With cert-manager: its Issuer and Certificate write the same Secret,
/// its CA injector fills `caBundle`, the operator only reads; and the
/// failure policy is a value.
#[test]
fn helm_chart_switches_to_cert_manager_and_fail() {
    let objs = render_chart(|v| {
        v["webhook"]["certManager"]["enabled"] = true.into();
        v["webhook"]["failurePolicy"] = "Fail".into();
    });
    let find = |kind: &str| objs.iter().find(|o| o["kind"] == kind).unwrap();
    let cert = find("Certificate");
    assert_eq!(cert["spec"]["secretName"], manifests::WEBHOOK_SECRET);
    assert_eq!(
        cert["spec"]["dnsNames"][0],
        format!("linx-operator.{NAMESPACE}.svc")
    );
    assert_eq!(
        find("Issuer")["spec"],
        serde_json::json!({"selfSigned": {}})
    );
    let vwc = find("ValidatingWebhookConfiguration");
    assert_eq!(
        vwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        format!("{NAMESPACE}/linx-operator-webhook")
    );
    assert_eq!(vwc["webhooks"][0]["failurePolicy"], "Fail");
    let args = &find("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"];
    let args: Vec<&str> = args
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w == ["--webhook-certs", "external"]),
        "{args:?}"
    );
}

#[test]
fn helm_chart_with_default_values_renders_the_deploy_objects() {
    let mut rendered = render_chart(|_| {});
    let key = |v: &Value| {
        format!(
            "{}/{}",
            v["kind"].as_str().unwrap(),
            v["metadata"]["name"].as_str().unwrap()
        )
    };
    let mut want: Vec<Value> = manifests::objects()
        .into_iter()
        .filter(|o| o["kind"] != "Namespace")
        .collect();
    want.sort_by_key(key);
    rendered.sort_by_key(key);
    assert_eq!(
        rendered.iter().map(key).collect::<Vec<_>>(),
        want.iter().map(key).collect::<Vec<_>>()
    );
    for (r, w) in rendered.iter().zip(&want) {
        assert_eq!(r, w, "{} differs between the chart and deploy/", key(w));
    }
}
