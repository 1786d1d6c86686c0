//! An agent's API requests do not grow with the cluster's pods (#21): it
//! watches the FirewallAddressSets the operator publishes, never the pods
//! of the cluster. The built `linx-operator` and `linx-agent` against the
//! fake API server; one database pod on the agent's node whose set is fed
//! by `app=api` pods elsewhere in the cluster. The same address changes are
//! made twice, with 20 and then CLUSTER `app=api` pods in the cluster
//! (`LINX_E2E_CLUSTER_PODS`, default 100: the fake API server and the
//! debug operator take minutes for a few hundred), and the requests the agent made
//! in each phase (told by their `User-Agent`) are compared: counts, not
//! times. Its node report is written at most once a second whatever the
//! cluster's size, so those requests (and the read of its Node for the
//! report's owner) are counted apart: they grow with how long a phase
//! takes, not with the pods.

use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use linx_crds::FirewallRuleset;
use linx_e2e::apiserver::FakeApiServer;
use linx_e2e::cluster::{apply_spec, eventually_async, set_pod_ip, Flow, Proc, Scratch, TestPod};
use linx_e2e::free_addr;
use serde_json::json;

const DB: &str = "table inet linx {\n\tset api {\n\t\ttype ipv4_addr\n\t}\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tip saddr @api tcp dport 5432 accept\n\t}\n}\n";
/// Pods of the first phase.
const SMALL: usize = 20;
/// Address changes made in each phase.
const CHANGES: usize = 5;

/// The addresses in the database pod's set, as nft lists them.
fn listed(db: &TestPod) -> Vec<String> {
    db.netns
        .nft(&["list", "set", "inet", "linx", "api"])
        .unwrap_or_default()
        .split(|c: char| c.is_whitespace() || c == ',' || c == '{' || c == '}')
        .filter(|t| t.parse::<std::net::Ipv4Addr>().is_ok())
        .map(String::from)
        .collect()
}

fn address(i: usize, generation: usize) -> String {
    format!("10.{}.{}.{}", 80 + generation, i / 250, i % 250 + 1)
}

/// What the agent asked in one phase.
struct Phase {
    pods: usize,
    secs: f64,
    /// Its node report's requests.
    report_writes: Vec<String>,
    other: Vec<String>,
}

#[test]
fn agent_requests_do_not_grow_with_the_clusters_pods_on_fake_apiserver() {
    let big: usize = std::env::var("LINX_E2E_CLUSTER_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .max(SMALL + 1);
    let server = FakeApiServer::start().expect("start the fake API server");
    let dir = Scratch::new("fake-selector-requests");
    let kubeconfig = dir.0.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).unwrap();
    let f = Flow::start(&kubeconfig, None, &["db", "app"]);
    let (rt, c) = (&f.rt, f.client.clone());
    let [ns_db, ns_app] = [0, 1].map(|i| f.namespaces[i].clone());
    let db = rt.block_on(f.pod(&ns_db, "db-0", "db"));
    let identity = format!("linx-e2e-{}", f.id);
    let _operator = Proc::operator(&kubeconfig, &ns_db, &identity, &["--webhook-addr", ""]);
    let _agent = Proc::spawn(&mut Proc::agent_command(&kubeconfig, &f.node, &free_addr()));
    let peer = json!([{"family": "inet", "table": "linx", "set": "api", "source": {"pods": [
        {"podSelector": {"matchLabels": {"app": "api"}}, "namespaceSelector": f.team_selector()}]}}]);
    let phases = rt.block_on(async {
        set_pod_ip(&c, &ns_db, "db-0", "10.79.0.1").await;
        let spec =
            json!({"podSelector": {"matchLabels": {"app": "db"}}, "nft": DB, "sources": peer});
        apply_spec(&c, &ns_db, "db", spec).await;
        f.delete_at_end::<FirewallRuleset>(&ns_db, "db");
        let pods: Api<Pod> = Api::namespaced(c.clone(), &ns_app);
        let mut phases = Vec::new();
        let mut made = 0;
        for (n, size) in [SMALL, big].into_iter().enumerate() {
            // The cluster grows: pods on other nodes (the fake API server
            // goes with the test, and them with it).
            let grown = Instant::now();
            while made < size {
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("api-{made}"), "labels": {"app": "api"}},
                    "spec": {"nodeName": "elsewhere", "containers": [{"name": "c", "image": "x"}]},
                }))
                .unwrap();
                pods.create(&PostParams::default(), &pod).await.unwrap();
                set_pod_ip(&c, &ns_app, &format!("api-{made}"), &address(made, 0)).await;
                made += 1;
            }
            eprintln!("{size} pods made in {:?}", grown.elapsed());
            eventually_async("every api pod's address in the set", || async {
                let have = listed(&db).len();
                (have == size)
                    .then_some(())
                    .ok_or(format!("{have} of {size}"))
            })
            .await;
            eprintln!("{size} pods in the set after {:?}", grown.elapsed());
            // The same changes in each phase, from here.
            let mark = server.requests_by().len();
            let t = Instant::now();
            let moved: Vec<String> = (0..CHANGES).map(|k| address(k, n + 1)).collect();
            for (k, ip) in moved.iter().enumerate() {
                set_pod_ip(&c, &ns_app, &format!("api-{k}"), ip).await;
            }
            eventually_async("the moved pods' addresses in the set", || async {
                let have = listed(&db);
                (moved.iter().all(|ip| have.contains(ip)) && have.len() == size)
                    .then_some(())
                    .ok_or(format!("{} listed", have.len()))
            })
            .await;
            let secs = t.elapsed().as_secs_f64();
            let (report_writes, other) = server.requests_by()[mark..]
                .iter()
                .filter(|(agent, _)| agent.starts_with("linx-agent/"))
                .map(|(_, r)| r.clone())
                .partition(|r| r.contains("/firewallnodereports/") || r.contains("/api/v1/nodes/"));
            phases.push(Phase {
                pods: size,
                secs,
                report_writes,
                other,
            });
        }
        phases
    });
    for p in &phases {
        eprintln!(
            "{} app=api pods, {CHANGES} address changes: the agent made {} requests \
             besides {} node report writes, in {:.1} s: {:?}",
            p.pods,
            p.other.len(),
            p.report_writes.len(),
            p.secs,
            p.other
        );
    }
    let (small, large) = (&phases[0], &phases[1]);
    assert!(
        large.other.len() <= small.other.len(),
        "more requests with more pods in the cluster: {:?} vs {:?}",
        large.other,
        small.other
    );
    assert!(
        large.other.iter().all(|r| !r.contains(&ns_app)),
        "the agent asked about the app namespace's pods: {:?}",
        large.other
    );
    // Over the whole run, watches opened before either phase included: the
    // agent never lists or watches pods beyond its own node's.
    let pod_requests: Vec<String> = server
        .requests_by()
        .into_iter()
        .filter(|(agent, r)| agent.starts_with("linx-agent/") && r.contains("/pods"))
        .map(|(_, r)| r)
        .collect();
    assert!(
        !pod_requests.is_empty(),
        "the agent never watched its node's pods"
    );
    assert!(
        pod_requests.iter().all(|r| r.contains("spec.nodeName")),
        "the agent asked for pods beyond its node: {pod_requests:?}"
    );
    drop(_agent);
    drop(_operator);
    drop(db);
    f.finish();
}
