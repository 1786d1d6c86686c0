//! `linx-cni` in the real chain, as a container runtime runs it: Debian's
//! `bridge` + `host-local` then `linx-cni`, every plugin a process with the
//! spec's environment and stdin, inside a throwaway "node" namespace
//! (`testing::CniChain`), against the agent's endpoint serving in this
//! process. Pods are fresh network namespaces (and, where the normal path
//! must find them, a process in the pod's cgroup).

use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use linx_agent::cni::{Endpoint, EndpointOptions};
use linx_agent::local::{self, LocalLookup};
use linx_agent::testing::{cni_args, open_netns_fds, pod_uid, resolver, CniChain, FakePod};
use linx_agent::{NodeController, Options, Pod, PodState};
use linx_cni::conflist::Settings;
use linx_cni::plugin::{code, FailurePolicy};
use linx_cni::record;
use linx_netfilter::testing::TestNetns;
use linx_netfilter::Netns;

static NEXT: AtomicU32 = AtomicU32::new(1);

/// Drops UDP to port 9999 on the way out, counting it; lets the rest pass.
const FW: &str = "table inet linx {\n\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n\t\tudp dport 9999 counter packets 0 bytes 0 drop\n\t}\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 22 drop\n\t}\n}\n";

fn settings(policy: FailurePolicy, timeout: u64) -> Settings {
    Settings {
        failure_policy: policy,
        timeout_seconds: timeout,
        exclude_namespaces: vec!["kube-system".into()],
        ..Settings::default()
    }
}

fn new_pod() -> Pod {
    let uid = pod_uid(1000 + NEXT.fetch_add(1, Ordering::Relaxed));
    Pod {
        name: format!("web-{}", &uid[uid.len() - 4..]),
        namespace: "shop".into(),
        uid,
        ..Default::default()
    }
}

fn container_id(pod: &Pod) -> String {
    format!("c0ffee{}", pod.uid.replace('-', ""))
}

/// The pods file selecting `pods` with [`FW`] (and `others` with nothing).
fn pods_file(chain: &CniChain, pods: &[&Pod], others: &[&Pod]) -> PathBuf {
    std::fs::write(chain.dir.join("fw.nft"), FW).unwrap();
    let entry = |p: &Pod, fw: bool| {
        let mut e = serde_json::json!({"uid": p.uid, "namespace": p.namespace, "name": p.name});
        if fw {
            e["ruleset"] = "fw.nft".into();
        }
        e
    };
    let list: Vec<serde_json::Value> = pods
        .iter()
        .map(|p| entry(p, true))
        .chain(others.iter().map(|p| entry(p, false)))
        .collect();
    let path = chain.dir.join("pods.json");
    std::fs::write(&path, serde_json::json!({ "pods": list }).to_string()).unwrap();
    path
}

/// nft's listing of [`FW`] in a scratch namespace: what a pod must hold.
fn expected_listing() -> String {
    let scratch = TestNetns::new();
    scratch.load(FW);
    scratch.ruleset()
}

/// The node agent of these tests: controller and endpoint in this process.
struct Agent {
    node: NodeController,
    endpoint: tokio::task::JoinHandle<()>,
}

impl Agent {
    fn start(chain: &CniChain, pods: &Path) -> Agent {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("linx_agent=debug")
            .try_init();
        let node = NodeController::new(
            Arc::new(resolver()),
            Options {
                retry: Duration::from_millis(100),
                ..Options::default()
            },
            linx_agent::metrics::Metrics::default(),
        );
        let endpoint = linx_agent::cni::listen(EndpointOptions {
            socket: chain.socket(),
            max_wait: Duration::from_secs(30),
            host_netns: "/proc/self/ns/net".into(),
        })
        .unwrap()
        .serve(node.handle(), Arc::new(LocalLookup::new(pods)))
        .unwrap();
        Agent { node, endpoint }
    }

    async fn stop(self) {
        self.endpoint.abort();
        let _ = self.endpoint.await;
        self.node.shutdown().await;
    }
}

/// Runs blocking chain work off the runtime's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// A UDP socket bound in `ns` (made on a short-lived thread that joins the
/// namespace; the socket stays there, the thread ends).
fn udp_listener(ns: &TestNetns, port: u16) -> UdpSocket {
    let path = ns.path();
    std::thread::spawn(move || {
        let f = std::fs::File::open(path).unwrap();
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = UdpSocket::bind(("0.0.0.0", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        s
    })
    .join()
    .unwrap()
}

/// A new process in the pod's namespace sends one datagram, `first\n`;
/// whether the kernel let it leave (a drop on output fails the write).
fn send_first_packet(pod_ns: &Path, to: &str) -> bool {
    std::process::Command::new("nsenter")
        .arg(format!("--net={}", pod_ns.display()))
        .args([
            "bash",
            "-c",
            &format!("echo first 2>/dev/null > /dev/udp/{to}/9999"),
        ])
        .status()
        .unwrap()
        .success()
}

fn received(l: &UdpSocket) -> Option<String> {
    let mut buf = [0u8; 64];
    l.recv(&mut buf)
        .ok()
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_returns_with_the_firewall_in_and_the_result_unchanged() {
    let chain = Arc::new(CniChain::new(
        91,
        Some(settings(FailurePolicy::FailClosed, 10)),
    ));
    let (pod, quiet) = (new_pod(), new_pod());
    let pods = pods_file(&chain, &[&pod], &[&quiet]);
    let agent = Agent::start(&chain, &pods);
    let want = expected_listing();
    let ns = Arc::new(TestNetns::new());
    let cid = container_id(&pod);
    let args = cni_args(&pod, &cid);

    let (c, n, id, a) = (chain.clone(), ns.clone(), cid.clone(), args.clone());
    let (outs, listing) = blocking(move || {
        let outs = c.add(&n.path(), &id, &a);
        // The instant ADD returns: the kernel already holds the firewall.
        (outs, n.ruleset())
    })
    .await;
    assert!(
        outs.iter().all(|o| o.ok()),
        "{:?}",
        outs.iter().map(|o| &o.stderr).collect::<Vec<_>>()
    );
    assert_eq!(listing, want);
    // prevResult passed through byte for byte (as the runtime gave it:
    // bridge's result, serialized again), so the chain's result is bridge's.
    let (bridge, linx) = (&outs[0], &outs[1]);
    assert_eq!(linx.stdout, serde_json::to_vec(&bridge.json()).unwrap());
    assert_eq!(linx.json(), bridge.json());
    let result = linx.json();
    assert_eq!(result["cniVersion"], "1.0.0");
    let eth0 = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0")
        .expect("eth0 in the result");
    assert_eq!(eth0["sandbox"], ns.path().display().to_string());
    assert!(result["ips"][0]["address"]
        .as_str()
        .unwrap()
        .starts_with("10.91."));
    let rep = agent.node.reports().get(&pod.uid).unwrap();
    assert_eq!(
        (rep.state, rep.sandbox.as_deref()),
        (PodState::Applied, Some(cid.as_str()))
    );
    let recs = record::read_all(&chain.state_dir());
    assert_eq!(recs.len(), 1);
    assert!(recs[0].protected && recs[0].pod.uid.as_deref() == Some(pod.uid.as_str()));

    // A pod selected by nothing is answered at once, and gets no table.
    let qns = Arc::new(TestNetns::new());
    let qid = container_id(&quiet);
    let (c, n, qa) = (chain.clone(), qns.clone(), cni_args(&quiet, &qid));
    let (outs, listing) = blocking(move || {
        let outs = c.add(&n.path(), &qid, &qa);
        (outs, n.ruleset())
    })
    .await;
    assert!(outs.iter().all(|o| o.ok()));
    assert_eq!(listing, "");

    // CHECK: the chain passes; a namespace without the firewall does not.
    let (c, n, id, a) = (chain.clone(), ns.clone(), cid.clone(), args.clone());
    let (check, bare) = blocking(move || {
        let check = c.check(&n.path(), &id, &a);
        let empty = TestNetns::new();
        let prev = c.add_result(&id);
        let bare = c.plugin(1, "CHECK", &empty.path(), &id, &a, prev.as_deref());
        (check, bare)
    })
    .await;
    assert!(check.ok(), "{}", check.stderr);
    assert_eq!(bare.status, 1);
    assert_eq!(bare.json()["code"], code::CHECK_FAILED);
    let msg = bare.json()["msg"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("shop/") && msg.contains("not as it should be"),
        "{msg}"
    );

    // DEL: through the chain in reverse; the agent lets go of the
    // namespace; again, and for a sandbox nobody knows, still success.
    let inode = ns.netns().inode().unwrap().1;
    assert!(
        open_netns_fds(inode) > 0,
        "the agent holds the sandbox's namespace"
    );
    let (c, n, id, a) = (chain.clone(), ns.clone(), cid.clone(), args.clone());
    let dels = blocking(move || {
        vec![
            c.del(&n.path(), &id, &a),
            c.del(&n.path(), &id, &a),
            c.del(Path::new(""), "unknown-sandbox", &a),
        ]
    })
    .await;
    for d in &dels {
        assert!(d.ok() && d.stdout.is_empty(), "{}", d.stderr);
    }
    let t = Instant::now();
    while open_netns_fds(inode) > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "namespace still held after DEL"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(record::read_all(&chain.state_dir())
        .iter()
        .all(|r| r.container_id != cid));

    // VERSION lists what is supported.
    let c = chain.clone();
    let v = blocking(move || {
        c.exec(
            "linx-cni",
            "VERSION",
            Path::new(""),
            "",
            "",
            r#"{"cniVersion":"1.0.0"}"#,
        )
    })
    .await;
    assert_eq!(
        v.json(),
        serde_json::json!({"cniVersion": "1.1.0",
            "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
    agent.stop().await;
}

/// The first packet of a process started the instant ADD returns is
/// dropped (and counted) with `linx-cni` in the chain, and gets through
/// without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_packet_is_filtered() {
    for with_plugin in [true, false] {
        let octet = if with_plugin { 92 } else { 93 };
        let linx = with_plugin.then(|| settings(FailurePolicy::FailClosed, 10));
        let chain = Arc::new(CniChain::new(octet, linx));
        let pod = new_pod();
        let pods = pods_file(&chain, &[&pod], &[]);
        let agent = Agent::start(&chain, &pods);
        let listener = udp_listener(&chain.node, 9999);
        let ns = Arc::new(TestNetns::new());
        let (cid, gateway) = (container_id(&pod), chain.gateway());
        let (c, n, a) = (chain.clone(), ns.clone(), cni_args(&pod, &cid));
        let (outs, sent) = blocking(move || {
            let outs = c.add(&n.path(), &cid, &a);
            let sent = outs.iter().all(|o| o.ok()) && send_first_packet(&n.path(), &gateway);
            (outs, sent)
        })
        .await;
        assert!(outs.iter().all(|o| o.ok()));
        let got = received(&listener);
        assert_eq!(
            sent, !with_plugin,
            "the sender sees the drop (EPERM) or not"
        );
        if with_plugin {
            assert_eq!(got, None, "the first packet got through");
            let want = expected_listing().replace(
                "counter packets 0 bytes 0 drop",
                "counter packets 1 bytes 34 drop",
            );
            assert_eq!(ns.ruleset(), want, "the drop rule counts the first packet");
        } else {
            assert_eq!(
                got.as_deref(),
                Some("first\n"),
                "without linx-cni the packet arrives"
            );
            assert_eq!(ns.ruleset(), "", "and nothing filtered it");
        }
        agent.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_are_served_in_parallel() {
    let chain = Arc::new(CniChain::new(
        94,
        Some(settings(FailurePolicy::FailClosed, 20)),
    ));
    let pods: Vec<Pod> = (0..6).map(|_| new_pod()).collect();
    let file = pods_file(&chain, &pods.iter().collect::<Vec<_>>(), &[]);
    let agent = Agent::start(&chain, &file);
    let want = expected_listing();
    let mut tasks = Vec::new();
    for pod in &pods {
        let (c, pod) = (chain.clone(), pod.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let ns = TestNetns::new();
            let cid = container_id(&pod);
            let outs = c.add(&ns.path(), &cid, &cni_args(&pod, &cid));
            let ok = outs.iter().all(|o| o.ok());
            (ok, ns.ruleset(), ns)
        }));
    }
    for t in tasks {
        let (ok, listing, _ns) = t.await.unwrap();
        assert!(ok);
        assert_eq!(listing, want);
    }
    agent.stop().await;
}

/// With the agent stopped: `failClosed` refuses the sandbox within the
/// timeout, naming the pod (agent gone, and agent hung); `failOpen`
/// admits it unprotected and records that; when the agent returns, the
/// pod converges through the normal path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_stopped_fail_closed_then_fail_open_then_convergence() {
    let timeout = 2;
    let closed = Arc::new(CniChain::new(
        95,
        Some(settings(FailurePolicy::FailClosed, timeout)),
    ));
    let pod = new_pod();
    let ns = Arc::new(TestNetns::new());
    let cid = container_id(&pod);
    let args = cni_args(&pod, &cid);

    // Nobody listens: refused at once.
    let (c, n, id, a) = (closed.clone(), ns.clone(), cid.clone(), args.clone());
    let (outs, took) = blocking(move || {
        let t = Instant::now();
        (c.add(&n.path(), &id, &a), t.elapsed())
    })
    .await;
    let last = outs.last().unwrap();
    assert_eq!((outs.len(), last.status), (2, 1));
    let err = last.json();
    assert_eq!(err["code"], code::TRY_AGAIN_LATER);
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.contains(&format!("pod shop/{}", pod.name)) && msg.contains("not reachable"),
        "{msg}"
    );
    assert!(took < Duration::from_secs(timeout), "{took:?}");
    // The runtime cleans up with DEL, which succeeds.
    let (c, n, id, a) = (closed.clone(), ns.clone(), cid.clone(), args.clone());
    assert!(blocking(move || c.del(&n.path(), &id, &a)).await.ok());
    assert_eq!(ns.ruleset(), "");

    // A hung agent (listening, never answering): refused within the timeout.
    let hung = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::SeqPacket,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    nix::sys::socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&hung),
        &nix::sys::socket::UnixAddr::new(&closed.socket()).unwrap(),
    )
    .unwrap();
    nix::sys::socket::listen(&hung, nix::sys::socket::Backlog::new(8).unwrap()).unwrap();
    let (c, n, id, a) = (closed.clone(), ns.clone(), cid.clone(), args.clone());
    let (outs, took) = blocking(move || {
        let t = Instant::now();
        (c.add(&n.path(), &id, &a), t.elapsed())
    })
    .await;
    let err = outs.last().unwrap().json();
    assert_eq!(err["code"], code::TRY_AGAIN_LATER);
    assert!(
        err["msg"].as_str().unwrap().contains("did not answer"),
        "{err}"
    );
    let bound = Duration::from_secs(timeout);
    assert!(
        took >= bound && took < bound + Duration::from_secs(1),
        "{took:?}"
    );
    drop(hung);
    let (c, n, id, a) = (closed.clone(), ns.clone(), cid.clone(), args.clone());
    assert!(blocking(move || c.del(&n.path(), &id, &a)).await.ok());

    // failOpen: admitted, result unchanged, recorded as unprotected.
    let open = Arc::new(CniChain::new(
        96,
        Some(settings(FailurePolicy::FailOpen, timeout)),
    ));
    let (c, n, id, a) = (open.clone(), ns.clone(), cid.clone(), args.clone());
    let outs = blocking(move || c.add(&n.path(), &id, &a)).await;
    assert!(outs.iter().all(|o| o.ok()));
    assert_eq!(outs[1].stdout, serde_json::to_vec(&outs[0].json()).unwrap());
    assert!(
        outs[1].stderr.contains("WITHOUT its firewall"),
        "{}",
        outs[1].stderr
    );
    assert_eq!(ns.ruleset(), "", "unprotected while the agent is away");
    let recs = record::read_all(&open.state_dir());
    assert_eq!(recs.len(), 1);
    assert!(!recs[0].protected);
    assert!(recs[0].reason.as_deref().unwrap().contains("not reachable"));

    // The agent returns: the pod's container runs, the normal path finds
    // it by its cgroup and converges.
    let _container = FakePod::start(&pod.uid, false, Some(&ns));
    let pods = pods_file(&open, &[&pod], &[]);
    let mut agent = Agent::start(&open, &pods);
    agent.node.apply(local::load(&pods).unwrap());
    let ok = agent
        .node
        .reports()
        .wait_for(Duration::from_secs(20), |r| {
            r.get(&pod.uid)
                .is_some_and(|r| r.state == PodState::Applied)
        })
        .await;
    assert!(ok, "{:#?}", agent.node.reports().snapshot());
    assert_eq!(ns.ruleset(), expected_listing());
    assert_eq!(
        agent.node.reports().get(&pod.uid).unwrap().sandbox,
        None,
        "found through its process, not a sandbox"
    );
    agent.stop().await;
}

#[test]
fn the_node_namespace_is_never_a_sandbox() {
    // The endpoint refuses the namespace it was told is the node's.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let chain = CniChain::new(97, Some(settings(FailurePolicy::FailClosed, 5)));
        let pod = new_pod();
        let pods = pods_file(&chain, &[&pod], &[]);
        let node = NodeController::new(
            Arc::new(resolver()),
            Options::default(),
            linx_agent::metrics::Metrics::default(),
        );
        let ep = Endpoint::new(
            node.handle(),
            Arc::new(LocalLookup::new(&pods)),
            EndpointOptions {
                socket: chain.socket(),
                max_wait: Duration::from_secs(5),
                host_netns: chain.node.path(),
            },
        )
        .unwrap();
        let fd = Netns::Path(chain.node.path()).open().unwrap().unwrap();
        let resp = ep
            .handle(
                linx_cni::protocol::Request::Add {
                    pod: linx_cni::protocol::PodRef {
                        namespace: pod.namespace.clone(),
                        name: pod.name.clone(),
                        uid: Some(pod.uid.clone()),
                    },
                    container_id: "c1".into(),
                    timeout_ms: 5000,
                },
                Some(fd),
            )
            .await;
        match resp {
            linx_cni::protocol::Response::Failed { message } => {
                assert!(message.contains("node's own"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(chain.node.ruleset(), "");
        node.shutdown().await;
    });
}
