//! Size bounds, on the fake API server with the operator's admission
//! webhook registered: a FirewallRuleset whose `spec.nft` is exactly the
//! CRD schema's `maxLength` (`limits::NFT_LEN`, 1 MiB: about 6,600 rules)
//! is admitted and applied to a pod exactly as nft lists it; one
//! character more is refused, the message naming the field and the limit.
//! The fake server checks no schema (a real one would refuse the longer
//! text by `maxLength` first), so the refusal here is the webhook's: the
//! same verdict (`linx_crds::validate`) the operator and every agent use.
//! What is guaranteed: docs/faults.md.

use std::time::Instant;

use kube::CustomResourceExt;
use linx_crds::resource::limits::NFT_LEN;
use linx_crds::FirewallRuleset;
use linx_e2e::apiserver::FakeApiServer;
use linx_e2e::cluster::{
    listing, refused, register_webhook, try_apply, wait_ready, Flow, Proc, Scratch, TestPod,
};
use linx_e2e::free_addr;
use serde_json::json;

/// A ruleset of exactly `len` characters: one chain of distinct rules
/// (`ip saddr … tcp dport … counter accept comment "…"`), padded to the
/// length with an nft comment line.
fn huge(len: usize) -> String {
    let mut s = String::from(
        "table inet huge {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n",
    );
    let end = "\t}\n}\n";
    for i in 0usize.. {
        let line = format!(
            "\t\tip saddr 10.{}.{}.{} tcp dport {} counter accept comment \"{i:0>96}\"\n",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255,
            1024 + i % 60_000
        );
        // Room left for the padding line ('#', at least one character, '\n').
        if s.len() + line.len() + end.len() + 3 > len {
            break;
        }
        s.push_str(&line);
    }
    let pad = len - s.len() - end.len();
    s.push('#');
    s.push_str(&"x".repeat(pad - 2));
    s.push('\n');
    s.push_str(end);
    assert_eq!(s.len(), len);
    s
}

/// `spec.nft`'s `maxLength` in the generated CRD.
fn schema_max_length() -> Option<u64> {
    let crd = serde_json::to_value(FirewallRuleset::crd()).ok()?;
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["nft"]["maxLength"]
        .as_u64()
}

#[test]
fn a_ruleset_at_the_schemas_largest_is_admitted_and_applied_one_more_character_is_refused() {
    assert_eq!(schema_max_length(), Some(NFT_LEN as u64), "the CRD's limit");
    let server = FakeApiServer::start().expect("start the fake API server");
    let dir = Scratch::new("bounds");
    let kubeconfig = dir.0.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let flow = Flow::start(&kubeconfig, None, &["bounds"]);
    let ns = flow.namespaces[0].clone();
    let c = flow.client.clone();

    // The operator with its webhook, registered by URL.
    let port = free_addr().rsplit_once(':').unwrap().1.to_string();
    let listen = format!("127.0.0.1:{port}");
    let webhook = format!("linx-e2e-{}", flow.id);
    let secret = format!("linx-e2e-{}-tls", flow.id);
    let identity = format!("linx-e2e-{}", flow.id);
    let _operator = Proc::operator(
        &kubeconfig,
        &ns,
        &identity,
        &[
            "--webhook-addr",
            &listen,
            "--webhook-host",
            "127.0.0.1",
            "--webhook-configuration",
            &webhook,
            "--webhook-secret",
            &secret,
        ],
    );
    let mut agent = Proc::agent_command(&kubeconfig, &flow.node, &free_addr());
    let _agent = Proc::spawn(agent.env("RUST_LOG", "warn"));
    let url = format!("https://{listen}/validate-firewallruleset");
    let pod: TestPod = flow.rt.block_on(async {
        flow.delete_webhook_at_end(&webhook);
        register_webhook(&c, &webhook, &url, &[ns.as_str()]).await;
        flow.pod(&ns, "huge-0", "huge").await
    });

    let text = huge(NFT_LEN);
    let rules = text
        .lines()
        .filter(|l| l.contains("accept comment"))
        .count();
    let selector = json!({"matchLabels": {"app": "huge"}});
    // One character more: refused, naming the field and the limit.
    let err = flow
        .rt
        .block_on(try_apply(
            &c,
            &ns,
            "over",
            selector.clone(),
            &format!("{text}#"),
            false,
        ))
        .map(|_| ())
        .map_err(refused)
        .expect_err("one character over the limit refused");
    let want = format!(
        "spec.nft: {} characters, at most {NFT_LEN} allowed",
        NFT_LEN + 1
    );
    assert!(err.contains(&want), "{err}");
    // The largest: admitted, Ready, applied exactly.
    let t = Instant::now();
    flow.rt
        .block_on(try_apply(&c, &ns, "huge", selector, &text, false))
        .expect("the largest ruleset admitted");
    let admitted = t.elapsed();
    flow.rt.block_on(wait_ready(&c, &ns, "huge"));
    let ready = t.elapsed();
    assert_eq!(
        pod.table("inet", "huge"),
        listing(&text, "inet", "huge"),
        "the pod's table"
    );
    eprintln!(
        "{} characters, {rules} rules: admitted in {admitted:?}, Ready (applied to the pod) in {ready:?}",
        text.len()
    );
    drop(pod);
    flow.finish();
}
