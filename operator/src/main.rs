//! `linx-operator`: validates FirewallRulesets and writes their status.

use std::sync::Arc;

use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use linx_operator::leader::{run_as_leader, LeaseConfig};
use linx_operator::{controller, http, publish, Metrics};
use prometheus_client::registry::Registry;
use tracing::{error, info};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Validates FirewallRulesets and aggregates node agents' reports into their status"
)]
struct Args {
    /// Address of the /metrics and /healthz endpoint.
    #[arg(long, env = "LINX_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: String,
    /// Namespace of the leader election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "linx-system")]
    lease_namespace: String,
    /// Name of the leader election Lease.
    #[arg(long, env = "LINX_LEASE_NAME", default_value = "linx-operator")]
    lease_name: String,
    /// This replica's identity in the Lease (its pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
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
    let listener = tokio::net::TcpListener::bind(&args.metrics_addr).await?;
    tokio::spawn(http::serve(listener, Arc::new(registry)));

    let client = Client::try_default().await?;
    let identity = args
        .identity
        .unwrap_or_else(|| format!("linx-operator-{}", std::process::id()));
    let cfg = LeaseConfig::new(&args.lease_name, &args.lease_namespace, &identity);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &args.lease_namespace);
    info!(identity = %identity, "waiting for leadership");
    match run_as_leader(
        leases,
        cfg,
        &metrics,
        // Status and published address sets: both written by the leader
        // only; the publisher stops with the controller (on a signal).
        {
            let (client, metrics) = (client.clone(), metrics.clone());
            async move {
                tokio::select! {
                    _ = controller::run(client.clone(), metrics) => {}
                    _ = publish::run(client) => {}
                }
            }
        },
    )
    .await
    {
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
