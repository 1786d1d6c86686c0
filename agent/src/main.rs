//! `linx-agent`: the node agent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use linx_agent::run::{run, RunConfig};
use linx_agent::Options;

#[derive(Parser)]
#[command(
    name = "linx-agent",
    version,
    about = "Keeps each pod's firewall equal to its FirewallRulesets"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Keep every pod of this node reconciled until SIGTERM.
    Run {
        /// Pods and their ruleset files, as JSON (polled for changes).
        #[arg(long)]
        local: PathBuf,
        /// How often the pods file is checked, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        poll_ms: u64,
        /// Engine calls running at once across pods.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// The periodic backstop reconcile, in seconds.
        #[arg(long, default_value_t = 300)]
        resync_secs: u64,
        /// Serve Prometheus metrics here (e.g. 0.0.0.0:9464).
        #[arg(long)]
        metrics_addr: Option<SocketAddr>,
        /// Write per-pod reports (JSON) to this file when they change.
        #[arg(long)]
        report: Option<PathBuf>,
        #[arg(long, default_value = "/proc")]
        proc_root: PathBuf,
        /// The namespace never touched (the node's). Needs hostPID.
        #[arg(long, default_value = "/proc/1/ns/net")]
        host_netns: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "linx_agent=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let Cli { cmd } = Cli::parse();
    match cmd {
        Cmd::Run {
            local,
            poll_ms,
            concurrency,
            resync_secs,
            metrics_addr,
            report,
            proc_root,
            host_netns,
        } => {
            let cfg = RunConfig {
                local,
                poll: Duration::from_millis(poll_ms.max(10)),
                opts: Options {
                    concurrency,
                    resync: Duration::from_secs(resync_secs.max(1)),
                    ..Default::default()
                },
                metrics_addr,
                report,
                proc_root,
                host_netns,
            };
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("linx-agent: tokio runtime: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(cfg)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("linx-agent: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
