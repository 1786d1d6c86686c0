//! The generated CRDs: committed YAML equals what the code generates (drift
//! test), the schema carries descriptions and bounds, and the CEL rules
//! (`x-kubernetes-validations`) compile, stay within the API server's cost
//! budget, accept good objects and reject bad ones — evaluated here with
//! kube's client-side CEL engine.

use std::path::Path;

use kube::core::cel::{compile_schema, estimate_rule_cost, Validator, WarningKind};
use kube::CustomResourceExt;
use linx_crds::{FirewallAddressSet, FirewallNodeReport, FirewallRuleset};
use serde_json::{json, Value};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn committed_crd_yaml_matches_the_code() {
    let want = linx_crds::crds_yaml();
    for rel in linx_crds::CRD_PATHS {
        let have = std::fs::read_to_string(root().join(rel)).unwrap_or_default();
        assert!(
            have == want,
            "{rel} is out of date: run `cargo run -p linx-crds --bin crdgen` and commit the result"
        );
    }
}

fn schema(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// Walks a schema, calling `f(path, node)` on every node.
fn walk(path: &str, node: &Value, f: &mut dyn FnMut(&str, &Value)) {
    f(path, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(&format!("{path}.{k}"), v, f);
        }
    }
    if let Some(items) = node.get("items") {
        walk(&format!("{path}[]"), items, f);
    }
}

#[test]
fn spec_fields_are_described_and_bounded() {
    let s = schema(&FirewallRuleset::crd());
    let spec = &s["properties"]["spec"];
    let mut problems = Vec::new();
    walk("spec", spec, &mut |path, node| {
        // Label selector internals come from Kubernetes' own types.
        let selector = ["Selector.", ".selector.", ".namespaces[]."];
        if selector.iter().any(|s| path.contains(s)) {
            return;
        }
        if node.get("description").is_none() && !path.ends_with("[]") {
            problems.push(format!("{path}: no description"));
        }
        match node.get("type").and_then(Value::as_str) {
            Some("string") if node.get("maxLength").is_none() && node.get("enum").is_none() => {
                problems.push(format!("{path}: string without maxLength"))
            }
            Some("array") if node.get("maxItems").is_none() => {
                problems.push(format!("{path}: array without maxItems"))
            }
            _ => {}
        }
    });
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn cel_rules_compile_and_fit_the_cost_budget() {
    for crd in [FirewallRuleset::crd(), FirewallNodeReport::crd()] {
        let s = schema(&crd);
        let compiled = compile_schema(&s);
        let mut rules = Vec::new();
        walk("", &s, &mut |_, node| {
            for r in node
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                rules.push(r["rule"].as_str().unwrap().to_string());
            }
        });
        assert!(
            rules.len() >= 5 || crd.spec.names.kind == "FirewallNodeReport",
            "{rules:?}"
        );
        for r in &rules {
            let warnings = estimate_rule_cost(r, &compiled);
            assert!(
                !warnings.iter().any(|w| w.kind == WarningKind::CostExceeded),
                "{r}: {warnings:?}"
            );
        }
    }
}

fn check(spec: Value) -> Result<(), Vec<String>> {
    let s = schema(&FirewallRuleset::crd());
    let obj = json!({
        "apiVersion": "netfilter.linx.dev/v1alpha1",
        "kind": "FirewallRuleset",
        "metadata": {"name": "x", "namespace": "y"},
        "spec": spec,
    });
    Validator::new()
        .validate(&s, &obj, None)
        .map_err(|errs| errs.iter().map(|e| e.to_string()).collect())
}

#[test]
fn cel_accepts_well_formed_specs() {
    let ok = [
        json!({"tables": [{"name": "fw", "family": "inet", "chains": [
            {"name": "input", "type": "filter", "hook": "input", "priority": 0, "policy": "drop", "rules": ["accept"]},
            {"name": "helper", "rules": ["drop"]}]}]}),
        json!({"nft": "table inet fw { }"}),
        json!({"tables": [{"name": "nd", "family": "netdev", "chains": [
            {"name": "in", "type": "filter", "hook": "ingress", "devices": ["eth0"]}]}]}),
        json!({"tables": [{"name": "r", "family": "ip", "chains": [{"name": "o", "type": "route", "hook": "output"}]}]}),
        json!({"tables": [{"name": "t", "family": "inet",
            "sets": [{"name": "s", "type": "ipv4_addr"}],
            "maps": [{"name": "m", "typeof": "tcp dport", "valueType": "verdict"}],
            "objects": [{"name": "c", "type": "counter"}, {"name": "q", "type": "quota", "definition": "over 1 mbytes"}]}]}),
    ];
    for spec in ok {
        assert_eq!(check(spec.clone()), Ok(()), "{spec}");
    }
}

#[test]
fn cel_rejects_what_the_structure_forbids() {
    let bad = [
        (json!({}), "give exactly one of spec.tables and spec.nft"),
        (
            json!({"nft": "x", "tables": [{"name": "a", "family": "inet"}]}),
            "give exactly one of spec.tables and spec.nft",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet", "chains": [{"name": "c", "hook": "input"}]}]}),
            "a base chain needs both type and hook",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet", "chains": [{"name": "c", "type": "filter"}]}]}),
            "a base chain needs both type and hook",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet", "chains": [{"name": "c", "policy": "drop"}]}]}),
            "policy is only for base chains (set hook)",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet", "chains": [{"name": "c", "priority": 5}]}]}),
            "priority is only for base chains (set hook)",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet", "chains": [{"name": "c", "type": "filter", "hook": "input", "devices": ["eth0"]}]}]}),
            "devices are only for ingress and egress chains",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "netdev", "chains": [{"name": "c", "type": "filter", "hook": "input"}]}]}),
            "netdev base chains hook ingress or egress",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "arp", "chains": [{"name": "c", "type": "filter", "hook": "forward"}]}]}),
            "arp base chains hook input or output",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet", "chains": [{"name": "c", "type": "filter", "hook": "egress", "devices": ["e"]}]}]}),
            "only netdev base chains hook egress",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "bridge", "chains": [{"name": "c", "type": "nat", "hook": "prerouting"}]}]}),
            "nat chains exist only in the ip, ip6 and inet families",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "ip", "chains": [{"name": "c", "type": "route", "hook": "input"}]}]}),
            "route chains hook output in the ip, ip6 or inet family",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet", "sets": [{"name": "s"}]}]}),
            "give exactly one of type and typeof",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet", "sets": [{"name": "s", "type": "ipv4_addr", "typeof": "ip saddr"}]}]}),
            "give exactly one of type and typeof",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet", "maps": [{"name": "m", "valueType": "verdict"}]}]}),
            "give exactly one of type and typeof",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet", "objects": [{"name": "q", "type": "quota"}]}]}),
            "only counters may omit the definition",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet", "sets": [{"name": "s", "type": "ipv4_addr", "source": {}}]}]}),
            "a source selects pods, services or namespaces",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet", "sets": [{"name": "s", "type": "ipv4_addr",
                   "source": {"services": [{"name": "db", "selector": {}}]}}]}]}),
            "give exactly one of name and selector",
        ),
        (
            json!({"tables": [{"name": "fw", "family": "inet"}],
                   "sources": [{"family": "inet", "table": "fw", "set": "s", "source": {"namespaces": [{}]}}]}),
            "spec.sources names sets of spec.nft",
        ),
    ];
    for (spec, msg) in bad {
        let errs = check(spec.clone()).expect_err(&spec.to_string());
        assert!(
            errs.iter().any(|e| e.contains(msg)),
            "{spec}: want {msg:?}, got {errs:?}"
        );
    }
}

#[test]
fn report_node_name_is_immutable() {
    let s = schema(&FirewallNodeReport::crd());
    let obj = |node: &str| {
        json!({"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallNodeReport",
        "metadata": {"name": "n1"}, "spec": {"nodeName": node}})
    };
    assert!(Validator::new()
        .validate(&s, &obj("n1"), Some(&obj("n1")))
        .is_ok());
    let errs = Validator::new()
        .validate(&s, &obj("n2"), Some(&obj("n1")))
        .unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.to_string().contains("nodeName is immutable")),
        "{errs:?}"
    );
}

#[test]
fn printer_columns_and_subresources() {
    let crd = FirewallRuleset::crd();
    let v = &crd.spec.versions[0];
    let cols: Vec<&str> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        cols,
        ["Ready", "Valid", "Matched", "Applied", "Failed", "Age"]
    );
    assert!(v.subresources.as_ref().unwrap().status.is_some());
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(FirewallNodeReport::crd().spec.scope, "Cluster");
}

/// Every resource in `examples/*.yaml` is well-formed and valid: rulesets
/// pass `validate`, traces' matches the engine's compiler.
#[test]
fn examples_are_valid_resources() {
    let mut seen = Vec::new();
    for e in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_yaml::from_str(&text).unwrap();
        let kind = v["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "FirewallRuleset" => {
                let r: FirewallRuleset = serde_json::from_value(v).unwrap();
                let out = linx_crds::validate(&r.spec);
                assert!(out.is_valid(), "{}: {:?}", path.display(), out.diagnostics);
            }
            "FirewallTrace" => {
                let t: linx_crds::FirewallTrace = serde_json::from_value(v).unwrap();
                t.spec.check_match().unwrap();
            }
            other => panic!("{}: unexpected kind {other}", path.display()),
        }
        seen.push(kind);
    }
    assert!(seen.iter().any(|k| k == "FirewallTrace"), "{seen:?}");
}

#[test]
fn an_address_set_chunk_is_within_its_count() {
    let s = schema(&FirewallAddressSet::crd());
    let obj = |chunk: u32, chunks: u32| {
        json!({"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallAddressSet",
        "metadata": {"name": "db-0", "namespace": "shop"},
        "spec": {"ruleset": "db", "rulesetUid": "u", "family": "inet", "table": "fw",
                 "set": "api", "chunk": chunk, "chunks": chunks, "elements": ["10.0.0.1"]}})
    };
    assert!(Validator::new().validate(&s, &obj(1, 2), None).is_ok());
    let errs = Validator::new().validate(&s, &obj(2, 2), None).unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.to_string().contains("chunk counts from 0 to chunks - 1")),
        "{errs:?}"
    );
}
