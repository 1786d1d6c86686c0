//! `linx-operator`: validates FirewallRulesets, writes their status, and
//! serves the validating admission webhook.

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use linx_operator::certs::{watch_secret, CertConfig, CertManager, CertStore, Lifetimes};
use linx_operator::leader::{run_as_leader, LeaseConfig};
use linx_operator::webhook::Webhook;
use linx_operator::{controller, http, publish, Metrics};
use prometheus_client::registry::Registry;
use tracing::{error, info};

/// Who makes the webhook's serving certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Certs {
    /// The operator: CA and certificate in the Secret, `caBundle` kept current.
    Operator,
    /// Someone else (cert-manager): the operator only reads the Secret.
    External,
}

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Validates FirewallRulesets, aggregates node agents' reports into their status, and serves the admission webhook"
)]
struct Args {
    /// Address of the /metrics, /healthz and /readyz endpoint (plain HTTP).
    #[arg(long, env = "LINX_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: String,
    /// Namespace of the leader election Lease and the webhook's Secret (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "linx-system")]
    lease_namespace: String,
    /// Name of the leader election Lease.
    #[arg(long, env = "LINX_LEASE_NAME", default_value = "linx-operator")]
    lease_name: String,
    /// This replica's identity in the Lease (its pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Address of the admission webhook (HTTPS); empty: no webhook.
    #[arg(long, env = "LINX_WEBHOOK_ADDR", default_value = "0.0.0.0:8443")]
    webhook_addr: String,
    /// Who makes the serving certificate.
    #[arg(long, value_enum, default_value = "operator")]
    webhook_certs: Certs,
    /// The Secret holding the webhook's certificates (in the operator's namespace).
    #[arg(long, default_value = "linx-operator-webhook-tls")]
    webhook_secret: String,
    /// The ValidatingWebhookConfiguration whose caBundle the operator keeps current.
    #[arg(long, default_value = "linx-operator")]
    webhook_configuration: String,
    /// The Service in front of the webhook (its DNS names go in the certificate).
    #[arg(long, default_value = "linx-operator")]
    webhook_service: String,
    /// More names or IP addresses for the certificate (e.g. the host of a
    /// `clientConfig.url` when the operator runs outside the cluster).
    #[arg(long)]
    webhook_host: Vec<String>,
}

// Arguments first, with no runtime, logger or client yet: `--version` and
// `--help` return at once, and a bad flag fails before anything starts.
fn main() {
    let args = Args::parse();
    let done = tokio::runtime::Runtime::new()
        .map_err(Into::into)
        .and_then(|rt| rt.block_on(run(args)));
    if let Err(e) = done {
        eprintln!("linx-operator: error: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow_free::Result {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let mut registry = Registry::default();
    let metrics = Metrics::default().register(&mut registry);
    let registry = Arc::new(registry);
    // Named, so audit logs (and the benchmarks) tell it from the agents.
    let mut cfg = kube::Config::infer().await?;
    cfg.headers.push((
        ::http::header::USER_AGENT,
        ::http::HeaderValue::from_static(concat!("linx-operator/", env!("CARGO_PKG_VERSION"))),
    ));
    let client = Client::try_from(cfg)?;
    let ns = args.lease_namespace.clone();

    let webhook_on = !args.webhook_addr.is_empty();
    let certs = webhook_on.then(|| Arc::new(CertStore::default()));
    let listener = tokio::net::TcpListener::bind(&args.metrics_addr).await?;
    let plain = Arc::new(http::Routes {
        registry: registry.clone(),
        webhook: None,
        certs: certs.clone(),
    });
    tokio::spawn(http::serve(listener, plain));

    let mut cert_manager = None;
    if let Some(store) = &certs {
        // Every replica serves and reloads; the leader writes.
        let secrets = Api::namespaced(client.clone(), &ns);
        tokio::spawn(watch_secret(
            secrets,
            args.webhook_secret.clone(),
            store.clone(),
            metrics.clone(),
        ));
        let webhook = Arc::new(Webhook {
            client: Some(client.clone()),
            cluster_budget: Duration::from_secs(2),
            metrics: metrics.clone(),
        });
        let routes = Arc::new(http::Routes {
            registry: registry.clone(),
            webhook: Some(webhook),
            certs: certs.clone(),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(store.server_config()?);
        let listener = tokio::net::TcpListener::bind(&args.webhook_addr).await?;
        info!(addr = %args.webhook_addr, "admission webhook listening");
        tokio::spawn(http::serve_tls(listener, acceptor, routes));
        if args.webhook_certs == Certs::Operator {
            let svc = &args.webhook_service;
            let mut names = vec![
                format!("{svc}.{ns}.svc"),
                format!("{svc}.{ns}.svc.cluster.local"),
            ];
            names.extend(args.webhook_host.iter().cloned());
            cert_manager = Some(CertManager {
                secrets: Api::namespaced(client.clone(), &ns),
                configurations: Api::all(client.clone()),
                config: CertConfig {
                    secret: args.webhook_secret.clone(),
                    webhook_configuration: args.webhook_configuration.clone(),
                    names,
                },
                namespace: ns.clone(),
                lifetimes: Lifetimes::DEFAULT,
            });
        }
    }

    let identity = args
        .identity
        .unwrap_or_else(|| format!("linx-operator-{}", std::process::id()));
    let cfg = LeaseConfig::new(&args.lease_name, &ns, &identity);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    info!(identity = %identity, "waiting for leadership");
    let lease_metrics = metrics.clone();
    let leading = async move {
        let certs = async {
            match cert_manager {
                Some(cm) => cm.run(metrics.clone()).await,
                None => std::future::pending().await,
            }
        };
        // Status and published address sets are written by the leader
        // only. The controller ends on shutdown signals, and the publisher
        // with it; the certificate writer never does.
        tokio::select! {
            _ = controller::run(client.clone(), metrics.clone()) => {}
            _ = publish::run(client) => {}
            _ = certs => {}
        }
    };
    match run_as_leader(leases, cfg, &lease_metrics, leading).await {
        Ok(()) => Ok(()),
        Err(e) => {
            // Exit so the replica restarts as a follower; nothing more is written.
            error!(error = %e, "stopping");
            std::process::exit(1);
        }
    }
}

/// `main`'s error type without an extra dependency.
mod anyhow_free {
    pub type Result = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;
}
