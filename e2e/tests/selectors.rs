//! Sets fed by a pod selector across namespaces (#21), in the cluster:
//! the built `linx-operator` resolves the selector and publishes
//! FirewallAddressSets, the built `linx-agent` keeps the pods' sets equal
//! to them; real TCP connections over veth pairs between the pods'
//! namespaces show what the set lets through. The pods' `status.podIPs`
//! are written through the status subresource, so these flows always bind
//! pods to a Node object of their own (a kubelet would overwrite the
//! status). Setup shared with the other cluster flows: `linx_e2e::cluster`.
//!
//! * `selectors_flow`: against `LINX_E2E_KUBECONFIG` (skipped, with a
//!   printed reason, when unset).
//! * `selectors_flow_on_fake_apiserver`: against the fake API server.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use linx_agent::testing::{connects, listen, veth};
use linx_crds::FirewallRuleset;
use linx_e2e::cluster::{
    apply_spec, assert_pod_requests, eventually_async, on_fake_apiserver, real_cluster, set_pod_ip,
    Flow, Proc, TestPod, WAIT,
};
use linx_e2e::free_addr;
use serde_json::json;

#[test]
fn selectors_flow() {
    if let Some(kubeconfig) = real_cluster() {
        sources_flow(&kubeconfig);
    }
}

#[test]
fn selectors_flow_on_fake_apiserver() {
    let server = on_fake_apiserver("fake-selectors", sources_flow);
    assert_pod_requests(&server);
}

/// The database's firewall: port 5432 only from the addresses in `@api`.
const DB: &str = "table inet linx {\n\tset api {\n\t\ttype ipv4_addr\n\t}\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t\tip saddr @api tcp dport 5432 counter accept\n\t}\n}\n";
/// A ruleset of the app namespace naming the database's pods as addresses.
const SNEAKY: &str = "table inet sneaky {\n\tset db {\n\t\ttype ipv4_addr\n\t}\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tip daddr @db counter\n\t}\n}\n";

fn sources_flow(kubeconfig: &Path) {
    // Always a Node of its own: the pods' status is written here, which a
    // kubelet would overwrite.
    let f = Flow::start(kubeconfig, None, &["db", "app"]);
    let (rt, c) = (&f.rt, f.client.clone());
    let [ns_db, ns_app] = [0, 1].map(|i| f.namespaces[i].clone());
    let pods = rt.block_on(async {
        vec![
            f.pod(&ns_db, "db-0", "db").await,
            f.pod(&ns_db, "web-0", "web").await,
            f.pod(&ns_app, "api-0", "api").await,
            f.pod(&ns_app, "other-0", "web").await,
        ]
    });
    let (db, web, api, other) = (&pods[0], &pods[1], &pods[2], &pods[3]);
    // The database reaches each client over its own link.
    veth(
        &db.netns,
        "to-api",
        "10.77.1.1/24",
        &api.netns,
        "eth0",
        "10.77.1.2/24",
    );
    veth(
        &db.netns,
        "to-other",
        "10.77.2.1/24",
        &other.netns,
        "eth0",
        "10.77.2.2/24",
    );
    listen(&db.netns, "0.0.0.0:5432");
    let refused = Duration::from_millis(500);
    let (from_api, from_other) = ("10.77.1.1:5432", "10.77.2.1:5432");
    assert!(
        connects(&api.netns, from_api, WAIT),
        "no firewall yet: open"
    );

    // This flow is about set sources: no webhook (the cluster flow has one).
    let identity = format!("linx-e2e-{}", f.id);
    let _operator = Proc::operator(kubeconfig, &ns_db, &identity, &["--webhook-addr", ""]);
    let _agent = Proc::spawn(&mut Proc::agent_command(kubeconfig, &f.node, &free_addr()));
    let team = f.team_selector();
    let api_peer = json!([{"family": "inet", "table": "linx", "set": "api", "source": {"pods": [
        {"podSelector": {"matchLabels": {"app": "api"}}, "namespaceSelector": team}]}}]);
    let set_has = |p: &TestPod, set: &str, table: &str, ip: &str| {
        p.netns
            .nft(&["list", "set", "inet", table, set])
            .is_ok_and(|l| {
                l.contains(&format!("elements = {{ {ip}")) || l.contains(&format!(", {ip}"))
            })
    };
    let rules = |p: &TestPod| {
        p.netns
            .nft(&["-a", "list", "chain", "inet", "linx", "input"])
            .unwrap_or_default()
    };
    rt.block_on(async {
        for (p, ip) in [
            (db, "10.77.1.1"),
            (web, "10.77.3.1"),
            (api, "10.77.1.2"),
            (other, "10.77.2.2"),
        ] {
            set_pod_ip(&c, &p.namespace, &p.name, ip).await;
        }
        let db_spec = json!({"podSelector": {"matchLabels": {"app": "db"}}, "nft": DB,
            "sources": api_peer});
        apply_spec(&c, &ns_db, "db", db_spec).await;
        // A ruleset of the app namespace naming the database's pods: only
        // addresses in its own pods' sets, no hold on the database's pod.
        let db_peer = json!([{"family": "inet", "table": "sneaky", "set": "db", "source": {"pods": [
            {"podSelector": {"matchLabels": {"app": "db"}}, "namespaceSelector": team}]}}]);
        let sneaky = json!({"podSelector": {}, "nft": SNEAKY, "sources": db_peer});
        apply_spec(&c, &ns_app, "sneaky", sneaky).await;
        f.delete_at_end::<FirewallRuleset>(&ns_db, "db");
        f.delete_at_end::<FirewallRuleset>(&ns_app, "sneaky");

        eventually_async("the api pod's address in the database's set", || async {
            set_has(db, "api", "linx", "10.77.1.2")
                .then_some(())
                .ok_or(db.netns.ruleset())
        })
        .await;
        eventually_async("the database's address in the app pods' sets", || async {
            (set_has(api, "db", "sneaky", "10.77.1.1")
                && set_has(other, "db", "sneaky", "10.77.1.1"))
            .then_some(())
            .ok_or(api.netns.ruleset())
        })
        .await;
        let db_tables = db.netns.nft(&["list", "tables"]).unwrap();
        assert_eq!(
            db_tables, "table inet linx\n",
            "only its own namespace's ruleset"
        );
        assert_eq!(
            web.netns.ruleset(),
            "",
            "a pod nothing selects is not touched"
        );
        assert!(!set_has(db, "api", "linx", "10.77.2.2"));
        assert!(
            connects(&api.netns, from_api, WAIT),
            "from an app=api pod: allowed"
        );
        assert!(
            !connects(&other.netns, from_other, refused),
            "from another pod: refused"
        );
        eventually_async("the set's count in the status", || async {
            let r = Api::<FirewallRuleset>::namespaced(c.clone(), &ns_db)
                .get("db")
                .await
                .map_err(|e| e.to_string())?;
            let sets = r.status.map(|s| s.address_sets).unwrap_or_default();
            (sets.len() == 1
                && sets[0].table == "inet linx"
                && sets[0].set == "api"
                && sets[0].elements == 1)
                .then_some(())
                .ok_or(format!("{sets:?}"))
        })
        .await;

        // Relabelled: allowed, by an element added, no rule touched.
        let before = rules(db);
        assert!(before.contains("counter packets"), "{before}");
        let pods_api: Api<Pod> = Api::namespaced(c.clone(), &ns_app);
        let relabel = json!({"metadata": {"labels": {"app": "api"}}});
        let t = std::time::Instant::now();
        pods_api
            .patch("other-0", &PatchParams::default(), &Patch::Merge(&relabel))
            .await
            .unwrap();
        eventually_async("the relabelled pod's address in the set", || async {
            set_has(db, "api", "linx", "10.77.2.2")
                .then_some(())
                .ok_or(db.netns.ruleset())
        })
        .await;
        eprintln!("relabel to kernel: {:?}", t.elapsed());
        assert_eq!(
            rules(db),
            before,
            "handles and counters unchanged: an element delta only"
        );
        assert!(
            connects(&other.netns, from_other, WAIT),
            "relabelled: allowed"
        );
    });
    drop(_agent);
    drop(_operator);
    f.finish();
}
