//! Size bounds, on the fake API server with the operator's admission
//! webhook registered: a FirewallRuleset whose `spec.nft` is exactly the
//! CRD schema's `maxLength` (`limits::NFT_LEN`, 1 MiB: about 6,600 rules)
//! is admitted and applied to a pod exactly as nft lists it; one
//! character more is refused, the message naming the field and the limit.
//! The fake server checks no schema (a real one would refuse the longer
//! text by `maxLength` first), so the refusal here is the webhook's: the
//! same verdict (`linx_crds::validate`) the operator and every agent use.
//! And a node report that the per-field caps alone would let grow past
//! the total cap (45 rulesets selecting 100 pods whose names are 253
//! characters long: about 1.3 MB uncut) is written by the agent cut under
//! `MAX_REPORT_BYTES`, its counts exact. What is guaranteed: docs/faults.md.

use std::time::Instant;

use kube::api::Api;
use kube::CustomResourceExt;
use linx_crds::report::{MAX_PODS, MAX_REPORT_BYTES};
use linx_crds::resource::limits::NFT_LEN;
use linx_crds::{FirewallNodeReport, FirewallRuleset};
use linx_e2e::cluster::{
    apply_ruleset, eventually_async, listing, on_fake_apiserver, refused, register_webhook,
    try_apply, wait_ready, Flow, Proc, TestPod,
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
    on_fake_apiserver("bounds", |kubeconfig| {
        let flow = Flow::start(kubeconfig, None, &["bounds"]);
        let ns = flow.namespaces[0].clone();
        let c = flow.client.clone();

        // The operator with its webhook, registered by URL.
        let port = free_addr().rsplit_once(':').unwrap().1.to_string();
        let listen = format!("127.0.0.1:{port}");
        let webhook = format!("linx-e2e-{}", flow.id);
        let secret = format!("linx-e2e-{}-tls", flow.id);
        let identity = format!("linx-e2e-{}", flow.id);
        let _operator = Proc::operator(
            kubeconfig,
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
        let mut agent = Proc::agent_command(kubeconfig, &flow.node, &free_addr());
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
    });
}

/// Rulesets of the report test, each selecting every pod: enough entries
/// of 100 long pod names to pass the cap uncut.
const RULESETS: usize = 45;

/// A small ruleset of its own table.
fn small(i: usize) -> String {
    format!(
        "table inet t{i} {{\n\tchain input {{\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport {} accept\n\t}}\n}}\n",
        2000 + i
    )
}

#[test]
fn a_node_report_past_its_total_cap_is_written_cut_with_exact_counts() {
    on_fake_apiserver("report-cap", |kubeconfig| {
        let flow = Flow::start(kubeconfig, None, &["report-cap"]);
        let ns = flow.namespaces[0].clone();
        let c = flow.client.clone();
        let mut agent = Proc::agent_command(kubeconfig, &flow.node, &free_addr());
        let _agent = Proc::spawn(agent.env("RUST_LOG", "warn"));
        // The most pods one entry lists, with names at their longest (253).
        let pods: Vec<TestPod> = flow.rt.block_on(async {
            let mut pods = Vec::new();
            for i in 0..MAX_PODS {
                let name = format!("p{i:03}-{}", "x".repeat(248));
                pods.push(flow.pod(&ns, &name, "all").await);
            }
            for i in 0..RULESETS {
                apply_ruleset(&c, &ns, &format!("fw-{i:02}"), json!({}), &small(i)).await;
            }
            pods
        });
        let report = flow.rt.block_on(async {
            let api: Api<FirewallNodeReport> = Api::all(c.clone());
            eventually_async(
                "every ruleset applied to every pod in the report",
                || async {
                    let r = api.get(&flow.node).await.map_err(|e| e.to_string())?;
                    let e = &r.spec.rulesets;
                    let done = e.len() == RULESETS
                        && e.iter().all(|e| {
                            e.matched_pods == MAX_PODS as i32 && e.applied_pods == MAX_PODS as i32
                        });
                    done.then_some(()).ok_or(format!("{} entries", e.len()))
                },
            )
            .await;
            api.get(&flow.node).await.expect("the report")
        });
        let size = serde_json::to_vec(&report.spec).unwrap().len();
        let cut = report.spec.truncated.expect("the report was cut");
        eprintln!("report: {size} bytes, cut: {cut:?}");
        assert!(size <= MAX_REPORT_BYTES, "{size} bytes");
        // Pod lists go first, and they were enough: no entry left out.
        assert!(cut.pod_lists > 0 && cut.rulesets == 0, "{cut:?}");
        let listed = report.spec.rulesets.iter().filter(|e| !e.pods.is_empty());
        assert_eq!(listed.count(), RULESETS - cut.pod_lists as usize);
        let want = pods[3].table("inet", "t3");
        assert_eq!(want, listing(&small(3), "inet", "t3"), "a pod's table");
        drop(pods);
        flow.finish();
    });
}
