//! Resolution and publishing against a mock API server (tower-test): the
//! publisher's watches are served from a small model of the cluster, each
//! change is delivered as a watch event, and every FirewallAddressSet it
//! writes is checked: the exact request, and the published lists equal to
//! a reference computed here from the model, independently of the
//! operator's index.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Reply = tower_test::mock::SendResponse<Response<Body>>;

const PODS: &str = "/api/v1/pods";
const NAMESPACES: &str = "/api/v1/namespaces";
const SERVICES: &str = "/api/v1/services";
const RULESETS: &str = "/apis/netfilter.linx.dev/v1alpha1/firewallrulesets";
const ADDRESS_SETS: &str = "/apis/netfilter.linx.dev/v1alpha1/firewalladdresssets";

/// The cluster as the mock serves it.
#[derive(Default)]
struct Model {
    /// Collection path → object key (`ns/name`) → object.
    objects: BTreeMap<&'static str, BTreeMap<String, Value>>,
    rv: u64,
}

fn key(o: &Value) -> String {
    format!(
        "{}/{}",
        o["metadata"]["namespace"].as_str().unwrap_or_default(),
        o["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// A write the publisher made.
#[derive(Debug)]
enum Written {
    Apply { path: String, body: Value },
    Delete { path: String },
}

struct Mock {
    handle: Handle,
    model: Model,
    /// Events not yet delivered, and a held watch per collection.
    pending: BTreeMap<&'static str, VecDeque<Value>>,
    held: BTreeMap<&'static str, Reply>,
    writes: Vec<Written>,
    pod_queries: Vec<String>,
}

fn collection(path: &str) -> Option<&'static str> {
    [PODS, NAMESPACES, SERVICES, RULESETS, ADDRESS_SETS]
        .into_iter()
        .find(|c| *c == path)
}

fn reply(send: Reply, body: &Value) {
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

impl Mock {
    fn put(&mut self, coll: &'static str, mut obj: Value, kind: &str) {
        self.model.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.model.rv.to_string());
        let k = key(&obj);
        let objects = self.model.objects.entry(coll).or_default();
        if kind == "DELETED" {
            objects.remove(&k);
        } else {
            objects.insert(k, obj.clone());
        }
        self.pending
            .entry(coll)
            .or_default()
            .push_back(json!({"type": kind, "object": obj}));
        self.flush(coll);
    }

    /// Delivers pending events to a held watch (which then ends: the
    /// watcher watches again from the last resourceVersion).
    fn flush(&mut self, coll: &'static str) {
        let events = self.pending.entry(coll).or_default();
        if events.is_empty() {
            return;
        }
        let Some(send) = self.held.remove(coll) else {
            return;
        };
        let mut body = Vec::new();
        for e in events.drain(..) {
            body.extend(serde_json::to_vec(&e).unwrap());
            body.push(b'\n');
        }
        send.send_response(Response::builder().body(Body::from(body)).unwrap());
    }

    /// Serves one request.
    async fn serve_one(&mut self, wait: Duration) -> bool {
        let Ok(Some((req, send))) = tokio::time::timeout(wait, self.handle.next_request()).await
        else {
            return false;
        };
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let method = req.method().clone();
        if method == Method::GET {
            let coll = collection(&path).unwrap_or_else(|| panic!("unexpected GET {path}"));
            if coll == PODS {
                self.pod_queries.push(query.clone());
            }
            if query.contains("watch=true") {
                self.held.insert(coll, send);
                self.flush(coll);
            } else {
                let items: Vec<Value> = self
                    .model
                    .objects
                    .get(coll)
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default();
                reply(
                    send,
                    &json!({"apiVersion": "v1", "kind": "List",
                            "metadata": {"resourceVersion": self.model.rv.to_string()},
                            "items": items}),
                );
            }
            return true;
        }
        assert!(
            path.starts_with("/apis/netfilter.linx.dev/v1alpha1/namespaces/")
                && path.contains("/firewalladdresssets/"),
            "unexpected {method} {path}"
        );
        if method == Method::PATCH {
            assert_eq!(query, "&force=true&fieldManager=linx-operator");
            assert_eq!(
                req.headers()["content-type"],
                "application/apply-patch+yaml"
            );
            let body: Value =
                serde_json::from_slice(&req.into_body().collect_bytes().await.unwrap()).unwrap();
            let mut stored = body.clone();
            self.model.rv += 1;
            stored["metadata"]["resourceVersion"] = json!(self.model.rv.to_string());
            self.model
                .objects
                .entry(ADDRESS_SETS)
                .or_default()
                .insert(key(&stored), stored.clone());
            reply(send, &stored);
            self.writes.push(Written::Apply { path, body });
        } else {
            assert_eq!(method, Method::DELETE, "{path}");
            let name = path.rsplit('/').next().unwrap().to_string();
            let ns = path.split('/').nth(5).unwrap().to_string();
            self.model
                .objects
                .entry(ADDRESS_SETS)
                .or_default()
                .remove(&format!("{ns}/{name}"));
            reply(
                send,
                &json!({"apiVersion": "v1", "kind": "Status", "status": "Success"}),
            );
            self.writes.push(Written::Delete { path });
        }
        true
    }

    /// Serves requests until the published lists equal `want`, then until
    /// nothing more comes for a moment (no extra writes).
    async fn until_published(&mut self, want: &BTreeMap<String, Vec<String>>, what: &str) {
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        while published(&self.model) != *want {
            assert!(
                tokio::time::Instant::now() < until,
                "{what}: published {:#?}, want {want:#?}",
                published(&self.model)
            );
            self.serve_one(Duration::from_millis(100)).await;
        }
        while self.serve_one(Duration::from_millis(300)).await {}
        assert_eq!(published(&self.model), *want, "{what}: after settling");
    }
}

/// The published lists by `namespace/ruleset set` (chunks joined).
fn published(m: &Model) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for o in m
        .objects
        .get(ADDRESS_SETS)
        .into_iter()
        .flat_map(|x| x.values())
    {
        let s = &o["spec"];
        let k = format!(
            "{}/{} {}",
            o["metadata"]["namespace"].as_str().unwrap(),
            s["ruleset"].as_str().unwrap(),
            s["set"].as_str().unwrap()
        );
        let list = out.entry(k).or_default();
        list.extend(
            s["elements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_string()),
        );
        list.sort();
    }
    out
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn pod(ns: &str, name: &str, app: &str, ips: &[&str]) -> Value {
    let ips: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
           "spec": {"containers": []},
           "status": {"phase": "Running", "podIPs": ips}})
}

fn service(ns: &str, name: &str, labels: Value, ips: &[&str], ports: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": ns, "labels": labels},
           "spec": {"clusterIPs": ips, "ports": ports}})
}

fn db_ruleset() -> Value {
    let app_api = json!({"matchLabels": {"app": "api"}});
    let team = json!({"matchLabels": {"team": "shop"}});
    json!({"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
    "metadata": {"name": "db", "namespace": "shop", "uid": "uid-db", "generation": 1},
    "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "tables": [{
        "name": "fw", "family": "inet", "sets": [
            {"name": "api", "type": "ipv4_addr", "source": {"pods": [{"podSelector": app_api, "namespaceSelector": team}]}},
            {"name": "local", "type": "ipv4_addr", "source": {"pods": [{"podSelector": app_api}]}},
            {"name": "v6", "type": "ipv6_addr", "source": {"pods": [{"podSelector": app_api, "namespaceSelector": {}}]}},
            {"name": "svc", "type": "ipv4_addr . inet_service", "source": {"services": [{"name": "db"}]}},
            {"name": "caches", "type": "ipv4_addr", "source": {"services": [{"selector": {"matchLabels": {"tier": "cache"}}, "namespaceSelector": {}}]}},
            {"name": "teams", "type": "ipv4_addr", "source": {"namespaces": [team]}},
        ]}]}})
}

/// What the db ruleset's sets must hold, computed from the model by
/// hand: the pods, services and namespaces each set's source names.
fn reference(m: &Model) -> BTreeMap<String, Vec<String>> {
    let objs = |c: &str| -> Vec<Value> {
        m.objects
            .get(c)
            .map(|x| x.values().cloned().collect())
            .unwrap_or_default()
    };
    let team_shop: BTreeSet<String> = objs(NAMESPACES)
        .iter()
        .filter(|n| n["metadata"]["labels"]["team"] == "shop")
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    // Pods that give addresses: not host-network, not finished.
    let live: Vec<Value> = objs(PODS)
        .into_iter()
        .filter(|p| p["spec"]["hostNetwork"] != true)
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .collect();
    let ips = |p: &Value, v6: bool| -> Vec<String> {
        p["status"]["podIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| i["ip"].as_str().unwrap().to_string())
            .filter(|ip| ip.contains(':') == v6)
            .collect()
    };
    let ns_of = |o: &Value| o["metadata"]["namespace"].as_str().unwrap().to_string();
    let api = |p: &&Value| p["metadata"]["labels"]["app"] == "api";
    let mut sets: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for p in live.iter().filter(api) {
        if team_shop.contains(&ns_of(p)) {
            sets.entry("api").or_default().extend(ips(p, false));
        }
        if ns_of(p) == "shop" {
            sets.entry("local").or_default().extend(ips(p, false));
        }
        sets.entry("v6").or_default().extend(ips(p, true));
    }
    for p in &live {
        if team_shop.contains(&ns_of(p)) {
            sets.entry("teams").or_default().extend(ips(p, false));
        }
    }
    for s in objs(SERVICES) {
        let cluster_ips: Vec<String> = s["spec"]["clusterIPs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i.as_str())
            .filter(|i| i.parse::<std::net::Ipv4Addr>().is_ok())
            .map(String::from)
            .collect();
        if ns_of(&s) == "shop" && s["metadata"]["name"] == "db" {
            for ip in &cluster_ips {
                for port in s["spec"]["ports"].as_array().unwrap() {
                    sets.entry("svc")
                        .or_default()
                        .insert(format!("{ip} . {}", port["port"]));
                }
            }
        }
        if s["metadata"]["labels"]["tier"] == "cache" {
            sets.entry("caches").or_default().extend(cluster_ips);
        }
    }
    ["api", "local", "v6", "svc", "caches", "teams"]
        .iter()
        .map(|s| {
            (
                format!("shop/db {s}"),
                sets.remove(s).unwrap_or_default().into_iter().collect(),
            )
        })
        .collect()
}

fn start() -> Mock {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    tokio::spawn(linx_operator::publish::run(client));
    let mut model = Model::default();
    let mut add = |c: &'static str, o: Value| {
        model.objects.entry(c).or_default().insert(key(&o), o);
    };
    add(NAMESPACES, namespace("shop", json!({"team": "shop"})));
    add(NAMESPACES, namespace("other", json!({"team": "shop"})));
    add(NAMESPACES, namespace("misc", json!({})));
    add(PODS, pod("shop", "api-0", "api", &["10.0.0.1"]));
    add(PODS, pod("other", "api-1", "api", &["10.0.1.1", "fd00::1"]));
    add(PODS, pod("misc", "api-2", "api", &["10.0.2.1"]));
    add(PODS, pod("shop", "web-0", "web", &["10.0.0.9"]));
    add(PODS, pod("shop", "api-new", "api", &[]));
    let mut done = pod("shop", "api-done", "api", &["10.0.0.200"]);
    done["status"]["phase"] = json!("Succeeded");
    add(PODS, done);
    let cache = json!({"tier": "cache"});
    add(
        SERVICES,
        service(
            "shop",
            "db",
            json!({}),
            &["10.96.0.5"],
            json!([{"port": 5432}]),
        ),
    );
    add(
        SERVICES,
        service(
            "shop",
            "cache",
            cache.clone(),
            &["10.96.0.6"],
            json!([{"port": 6379}]),
        ),
    );
    add(
        SERVICES,
        service(
            "other",
            "cache",
            cache.clone(),
            &["10.96.1.6", "fd00::96"],
            json!([{"port": 6379}]),
        ),
    );
    add(
        SERVICES,
        service("shop", "headless", cache, &["None"], json!([{"port": 1}])),
    );
    add(RULESETS, db_ruleset());
    Mock {
        handle,
        model,
        pending: BTreeMap::new(),
        held: BTreeMap::new(),
        writes: Vec::new(),
        pod_queries: Vec::new(),
    }
}

#[tokio::test]
async fn published_lists_follow_pods_namespaces_and_services() {
    let mut m = start();
    let want = reference(&m.model);
    assert_eq!(
        want["shop/db api"],
        ["10.0.0.1", "10.0.1.1"],
        "the reference itself"
    );
    m.until_published(&want, "initial lists").await;
    // Host-network pods are not even listed.
    assert!(!m.pod_queries.is_empty());
    assert!(
        m.pod_queries
            .iter()
            .all(|q| q.contains("fieldSelector=spec.hostNetwork%21%3Dtrue")),
        "{:?}",
        m.pod_queries
    );
    // The exact object of one set: owned by its ruleset, found by label.
    let api_write = m
        .writes
        .iter()
        .find(|w| matches!(w, Written::Apply { body, .. } if body["spec"]["set"] == "api"))
        .unwrap();
    let Written::Apply { path, body } = api_write else {
        unreachable!()
    };
    let name = body["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        *path,
        format!("/apis/netfilter.linx.dev/v1alpha1/namespaces/shop/firewalladdresssets/{name}")
    );
    assert!(name.starts_with("db-") && name.ends_with("-0"), "{name}");
    assert_eq!(
        *body,
        json!({"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallAddressSet",
               "metadata": {"name": name, "namespace": "shop",
                            "labels": {"netfilter.linx.dev/ruleset": "db"},
                            "ownerReferences": [{"apiVersion": "netfilter.linx.dev/v1alpha1",
                                "kind": "FirewallRuleset", "name": "db", "uid": "uid-db",
                                "controller": true}]},
               "spec": {"ruleset": "db", "rulesetUid": "uid-db", "family": "inet", "table": "fw",
                        "set": "api", "chunk": 0, "chunks": 1,
                        "elements": ["10.0.0.1", "10.0.1.1"]}})
    );
    assert_eq!(m.writes.len(), 6, "one write per set: {:#?}", m.writes);

    // Each change, then the lists as the reference computes them.
    let steps: Vec<(&str, &'static str, &str, Value)> = vec![
        (
            "an IP assigned",
            PODS,
            "MODIFIED",
            pod("shop", "api-new", "api", &["10.0.0.2"]),
        ),
        (
            "a pod relabelled",
            PODS,
            "MODIFIED",
            pod("shop", "web-0", "api", &["10.0.0.9"]),
        ),
        (
            "a namespace labelled",
            NAMESPACES,
            "MODIFIED",
            namespace("misc", json!({"team": "shop"})),
        ),
        (
            "a pod deleted",
            PODS,
            "DELETED",
            pod("other", "api-1", "api", &["10.0.1.1", "fd00::1"]),
        ),
        (
            "an IP changed",
            PODS,
            "MODIFIED",
            pod("misc", "api-2", "api", &["10.0.2.7"]),
        ),
        (
            "a service port added",
            SERVICES,
            "MODIFIED",
            service(
                "shop",
                "db",
                json!({}),
                &["10.96.0.5"],
                json!([{"port": 5432}, {"port": 6432}]),
            ),
        ),
        (
            "a service relabelled",
            SERVICES,
            "MODIFIED",
            service(
                "other",
                "cache",
                json!({}),
                &["10.96.1.6"],
                json!([{"port": 6379}]),
            ),
        ),
    ];
    for (what, coll, kind, obj) in steps {
        let before = m.writes.len();
        m.put(coll, obj, kind);
        let want = reference(&m.model);
        m.until_published(&want, what).await;
        assert!(m.writes.len() > before, "{what}: nothing written");
    }

    // Terminating pods keep their address; finished ones lose it.
    let mut leaving = pod("shop", "api-0", "api", &["10.0.0.1"]);
    leaving["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let before = m.writes.len();
    m.put(PODS, leaving.clone(), "MODIFIED");
    m.until_published(&reference(&m.model), "terminating").await;
    assert_eq!(m.writes.len(), before, "a terminating pod changes nothing");
    assert!(published(&m.model)["shop/db api"].contains(&"10.0.0.1".to_string()));
    leaving["status"]["phase"] = json!("Failed");
    m.put(PODS, leaving, "MODIFIED");
    m.until_published(&reference(&m.model), "failed").await;
    assert!(!published(&m.model)["shop/db api"].contains(&"10.0.0.1".to_string()));

    // A change no source can see writes nothing.
    let before = m.writes.len();
    m.put(NAMESPACES, namespace("quiet", json!({})), "ADDED");
    m.put(PODS, pod("quiet", "x", "web", &["10.0.9.9"]), "ADDED");
    m.until_published(&reference(&m.model), "unrelated").await;
    assert_eq!(m.writes.len(), before);

    // The ruleset deleted: its address sets go.
    m.put(RULESETS, db_ruleset(), "DELETED");
    m.until_published(&BTreeMap::new(), "ruleset deleted").await;
    assert!(m
        .writes
        .iter()
        .rev()
        .take(6)
        .all(|w| matches!(w, Written::Delete { path }
            if path.starts_with("/apis/netfilter.linx.dev/v1alpha1/namespaces/")
                && path.contains("/firewalladdresssets/"))));
}
