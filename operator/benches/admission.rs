//! Admission latency: a FirewallRuleset of 10, 1,000 and 10,000 rules
//! (`spec.nft`, chains of 1,000 rules reached by jumps) answered by the
//! webhook — the handler alone (parse the AdmissionReview, the one
//! verdict, the answer), and the whole HTTPS round trip on loopback over a
//! kept-alive TLS connection — beside `nft -c -f` of the same text in a
//! throwaway namespace (nft's own check, which also asks the kernel).
//! Cluster warnings (pods, other resources) are left out: they cost what
//! the API server takes, bounded by the webhook's budget.
//!
//! `cargo bench -p linx-operator --bench admission [quick]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use linx_netfilter::testing::TestNetns;
use linx_operator::certs::{CertStore, Lifetimes, Material, Step};
use linx_operator::http::{serve_tls, Routes};
use linx_operator::webhook::{Webhook, PATH};
use linx_operator::Metrics;
use prometheus_client::registry::Registry;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A pod firewall of `n` rules: a base chain jumping to chains of at most
/// 1,000 rules `ip saddr A tcp dport P counter accept`.
fn ruleset(n: usize) -> String {
    let mut s = String::from("table inet fw {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n");
    let chains = n.div_ceil(1000);
    for c in 0..chains {
        s.push_str(&format!("\t\tjump c{c}\n"));
    }
    s.push_str("\t}\n");
    for c in 0..chains {
        s.push_str(&format!("\tchain c{c} {{\n"));
        for i in c * 1000..((c + 1) * 1000).min(n) {
            s.push_str(&format!(
                "\t\tip saddr 10.{}.{}.{} tcp dport {} counter accept\n",
                i >> 16,
                (i >> 8) & 255,
                i & 255,
                1024 + i % 60000
            ));
        }
        s.push_str("\t}\n");
    }
    s.push_str("}\n");
    s
}

fn review(nft: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "kind": {"group": "netfilter.linx.dev", "version": "v1alpha1", "kind": "FirewallRuleset"},
            "resource": {"group": "netfilter.linx.dev", "version": "v1alpha1", "resource": "firewallrulesets"},
            "name": "web", "namespace": "shop", "operation": "UPDATE", "userInfo": {},
            "object": {"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"podSelector": {}, "nft": nft}},
            "oldObject": {"apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"podSelector": {}, "nft": nft}},
            "dryRun": false}
    }))
    .unwrap()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A TLS client on one kept-alive connection to the webhook.
struct Client {
    r: BufReader<tokio::io::ReadHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>,
    w: tokio::io::WriteHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr, bundle: &str) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(bundle.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        // As the API server's client: no Nagle delay.
        tcp.set_nodelay(true).unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (r, w) = tokio::io::split(tls);
        Client {
            r: BufReader::new(r),
            w,
        }
    }

    async fn post(&mut self, body: &[u8]) -> Vec<u8> {
        let head = format!("POST {PATH} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.w.write_all(&req).await.unwrap();
        self.w.flush().await.unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut length = 0;
        loop {
            let mut h = String::new();
            self.r.read_line(&mut h).await.unwrap();
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut out = vec![0; length];
        self.r.read_exact(&mut out).await.unwrap();
        out
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let sizes: &[(usize, usize)] = if quick {
        &[(10, 50), (1000, 20)]
    } else {
        &[(10, 500), (1000, 100), (10_000, 20)]
    };
    let webhook = Arc::new(Webhook {
        client: None,
        cluster_budget: Duration::from_secs(2),
        metrics: Metrics::default(),
    });
    // The HTTPS server, as in the operator.
    let names = vec!["localhost".to_string()];
    let m = Material::apply(
        None,
        Step::Create,
        &names,
        jiff::Timestamp::now().as_second(),
        &Lifetimes::DEFAULT,
    )
    .unwrap();
    let store = Arc::new(CertStore::default());
    store
        .load(m.cert_pem.as_bytes(), m.key_pem.as_bytes())
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = Arc::new(Routes {
        registry: Arc::new(Registry::default()),
        webhook: Some(webhook.clone()),
        certs: Some(store.clone()),
    });
    tokio::spawn(serve_tls(
        listener,
        tokio_rustls::TlsAcceptor::from(store.server_config().unwrap()),
        routes,
    ));
    let mut client = Client::connect(addr, &m.bundle()).await;

    println!("| rules | review size | handler p50 | handler p99 | HTTPS p50 | HTTPS p99 | `nft -c -f` p50 | HTTPS p99 / nft p50 |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &(n, runs) in sizes {
        let text = ruleset(n);
        let body = review(&text);
        let answer: serde_json::Value =
            serde_json::from_slice(&webhook.review(&body).await.unwrap()).unwrap();
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        let mut handler = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            std::hint::black_box(webhook.review(&body).await.unwrap());
            handler.push(t.elapsed());
        }
        let mut https = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            std::hint::black_box(client.post(&body).await);
            https.push(t.elapsed());
        }
        let ns = TestNetns::new();
        let file =
            std::env::temp_dir().join(format!("linx-admission-{}-{n}.nft", std::process::id()));
        std::fs::write(&file, &text).unwrap();
        let nft_runs = runs.min(10);
        let mut nft = Vec::with_capacity(nft_runs);
        for _ in 0..nft_runs {
            let t = Instant::now();
            ns.nft(&["-c", "-f", file.to_str().unwrap()]).unwrap();
            nft.push(t.elapsed());
        }
        let _ = std::fs::remove_file(&file);
        let nft50 = percentile(&mut nft, 0.5);
        let h99 = percentile(&mut https, 0.99);
        println!(
            "| {n} | {} KiB | {} | {} | {} | {} | {} | {:.2} |",
            body.len() / 1024,
            ms(percentile(&mut handler, 0.5)),
            ms(percentile(&mut handler, 0.99)),
            ms(percentile(&mut https, 0.5)),
            ms(h99),
            ms(nft50),
            h99.as_secs_f64() / nft50.as_secs_f64()
        );
    }
}
