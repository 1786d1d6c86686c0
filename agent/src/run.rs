//! `linx-agent run`: the node controller fed by a source of pods and
//! desired values, with metrics served and reports written.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tracing::{error, info};

use crate::cni::EndpointOptions;
use crate::controller::{NodeController, Options};
use crate::local::LocalLookup;
use crate::metrics::Metrics;
use crate::resolve::CgroupResolver;

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The pods file (see [`crate::local`]), polled for changes; `None`:
    /// pods and FirewallRulesets from the API server ([`crate::cluster`]).
    pub local: Option<PathBuf>,
    /// This node's name (needed without `local`).
    pub node_name: Option<String>,
    /// At most one FirewallNodeReport write per this interval.
    pub report_interval: Duration,
    pub poll: Duration,
    pub opts: Options,
    /// Where to serve Prometheus metrics.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Where to write the per-pod reports (JSON) whenever they change.
    pub report: Option<PathBuf>,
    /// The proc tree and the namespace to treat as the host's.
    pub proc_root: PathBuf,
    pub host_netns: PathBuf,
    /// The NFLOG group Audit and drop logs log to in each pod.
    pub nflog_group: u16,
    /// JSON drop-log lines per second per pod (0: no limit).
    pub drop_log_rate: u32,
    /// Serve `linx-cni` on this socket (see `docs/cni.md`).
    pub cni_socket: Option<PathBuf>,
    /// Where `linx-cni` keeps its start records.
    pub cni_state_dir: PathBuf,
    /// The longest a `linx-cni` ADD may take in the agent.
    pub cni_max_wait: Duration,
    /// Set the `netfilter.linx.dev/firewall` readiness gate condition.
    pub readiness_gate: bool,
}

/// `linx-agent run` arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Pods and their ruleset files, as JSON (polled for changes). Without
    /// it the agent watches the API server (in-cluster config or KUBECONFIG).
    #[arg(long)]
    pub local: Option<PathBuf>,
    /// This node's name, from the downward API (`spec.nodeName`).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// At most one FirewallNodeReport write per this many seconds.
    #[arg(long, default_value_t = 5)]
    pub report_interval_secs: u64,
    /// How often the pods file is checked, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Engine calls running at once across pods.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The periodic backstop reconcile, in seconds.
    #[arg(long, default_value_t = 300)]
    pub resync_secs: u64,
    /// Serve Prometheus metrics here (e.g. 0.0.0.0:9464).
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Write per-pod reports (JSON) to this file when they change.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[arg(long, default_value = "/proc")]
    pub proc_root: PathBuf,
    /// The namespace never touched (the node's). Needs hostPID.
    #[arg(long, default_value = "/proc/1/ns/net")]
    pub host_netns: PathBuf,
    /// The NFLOG group that Audit rules and drop logs log to, read by the
    /// agent in each pod whose rules use it.
    #[arg(long, default_value_t = crate::rulesets::DEFAULT_NFLOG_GROUP)]
    pub nflog_group: u16,
    /// Drop-log JSON lines per second per pod; what is held back is
    /// counted (`{"suppressed": N}` lines). 0: no limit.
    #[arg(long, default_value_t = 100)]
    pub drop_log_rate: u32,
    /// Serve linx-cni on this Unix socket (e.g. /run/linx/agent.sock).
    #[arg(long)]
    pub cni_socket: Option<PathBuf>,
    /// Where linx-cni keeps its start records (read for the node report).
    #[arg(long, default_value = linx_cni::record::DEFAULT_STATE_DIR)]
    pub cni_state_dir: PathBuf,
    /// The longest a linx-cni ADD may take here, in seconds (the plugin's
    /// own timeout is usually shorter).
    #[arg(long, default_value_t = 60)]
    pub cni_max_wait_secs: u64,
    /// Set the netfilter.linx.dev/firewall condition of pods that declare
    /// it as a readiness gate, once their firewall is in.
    #[arg(long)]
    pub readiness_gate: bool,
}

impl From<RunArgs> for RunConfig {
    fn from(a: RunArgs) -> Self {
        RunConfig {
            local: a.local,
            node_name: a.node_name,
            report_interval: Duration::from_secs(a.report_interval_secs.max(1)),
            poll: Duration::from_millis(a.poll_ms.max(10)),
            opts: Options {
                concurrency: a.concurrency,
                resync: Duration::from_secs(a.resync_secs.max(1)),
                ..Default::default()
            },
            metrics_addr: a.metrics_addr,
            report: a.report,
            proc_root: a.proc_root,
            host_netns: a.host_netns,
            nflog_group: a.nflog_group,
            drop_log_rate: a.drop_log_rate,
            cni_socket: a.cni_socket,
            cni_state_dir: a.cni_state_dir,
            cni_max_wait: Duration::from_secs(a.cni_max_wait_secs.clamp(1, 600)),
            readiness_gate: a.readiness_gate,
        }
    }
}

/// Logs to stderr (`RUST_LOG`, default `linx_agent=info`); the agent's
/// commands that run long share it.
pub(crate) fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "linx_agent=info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Logs to stderr, starts a Tokio runtime and runs the agent until SIGTERM.
pub fn main(args: RunArgs) -> Result<(), RunError> {
    init_logging();
    match raise_open_files_limit() {
        Ok((from, to)) if from != to => info!(from, to, "raised the soft limit on open files"),
        Ok(_) => {}
        Err(e) => error!(error = %e, "could not raise the soft limit on open files"),
    }
    let rt = tokio::runtime::Runtime::new().map_err(RunError::Runtime)?;
    rt.block_on(run(args.into()))
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("starting the Tokio runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Resolve(#[from] crate::resolve::ResolveError),
    #[error("metrics listener on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the node name is needed without --local (--node-name or NODE_NAME)")]
    NoNodeName,
    #[error(transparent)]
    Kube(#[from] crate::cluster::KubeError),
    #[error("linx-cni endpoint: {0}")]
    Cni(#[from] crate::cni::EndpointError),
}

/// Raises this process's soft limit on open files to its hard limit, as
/// Go's runtime does: containerd 2.x starts containers with a soft limit of
/// 1,024, and the agent holds two descriptors per pod. Returns the soft
/// limit before and after.
pub fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit, for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, lim.rlim_cur))
}

/// Runs until SIGTERM or SIGINT; tables are left as they are on exit (a
/// restarted agent adopts them).
pub async fn run(cfg: RunConfig) -> Result<(), RunError> {
    let resolver = Arc::new(CgroupResolver::with_host_netns(
        &cfg.proc_root,
        &cfg.host_netns,
    )?);
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let drop_metrics = crate::drops::DropMetrics::register(&mut registry);
    if let Some(addr) = cfg.metrics_addr {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Listen { addr, source })?;
        tokio::spawn(crate::serve::metrics(l, Arc::new(registry)));
    }
    let mut node = NodeController::new(resolver, cfg.opts.clone(), metrics);
    if let Some(path) = cfg.report.clone() {
        tokio::spawn(write_reports(node.reports(), path));
    }
    // Bound before anything else: a socket that cannot be served is an
    // error at start, not a node where no pod starts (failClosed).
    let cni = match &cfg.cni_socket {
        Some(socket) => Some(crate::cni::listen(EndpointOptions {
            socket: socket.clone(),
            max_wait: cfg.cni_max_wait,
            host_netns: cfg.host_netns.clone(),
        })?),
        None => None,
    };
    let Some(local) = cfg.local.clone() else {
        let node_name = cfg.node_name.clone().ok_or(RunError::NoNodeName)?;
        let drops = Arc::new(crate::drops::Drops::new(
            crate::drops::DropConfig {
                group: cfg.nflog_group,
                rate: cfg.drop_log_rate,
                node: node_name.clone(),
            },
            drop_metrics,
        ));
        node.read_drops(drops.clone());
        let _ticks = AbortOnDrop(tokio::spawn(drops.run_ticks()));
        let client = crate::cluster::client().await?;
        let opts = crate::cluster::KubeOptions {
            node: node_name,
            report_interval: cfg.report_interval,
            cni_state_dir: cni.as_ref().map(|_| cfg.cni_state_dir.clone()),
            readiness_gate: cfg.readiness_gate,
        };
        crate::cluster::run(client, opts, node, cni, stop_signal()).await;
        return Ok(());
    };
    let lookup = Arc::new(LocalLookup::new(&local));
    let endpoint = match cni {
        Some(listener) => Some(listener.serve(node.handle(), lookup.clone())?),
        None => None,
    };
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut last: Option<Vec<u8>> = None;
    let mut tick = tokio::time::interval(cfg.poll);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => break,
        }
        let Ok(bytes) = std::fs::read(&local) else {
            // Unreadable source: keep enforcing the last desired state.
            if last.is_some() {
                error!(path = %local.display(), "pods file unreadable: keeping the last desired state");
                last = None;
            }
            continue;
        };
        if last.as_ref() == Some(&bytes) {
            continue;
        }
        last = Some(bytes);
        match crate::local::load(&local) {
            Ok(targets) => {
                info!(pods = targets.len(), "pods file changed");
                lookup.set(targets.clone());
                node.apply(targets);
            }
            Err(e) => error!(error = %e, "keeping the last desired state"),
        }
    }
    info!("stopping: tables are left in place");
    if let Some(e) = endpoint {
        e.abort();
    }
    node.shutdown().await;
    Ok(())
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Completes on SIGTERM or SIGINT.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn write_reports(reports: Arc<crate::report::Reports>, path: PathBuf) {
    loop {
        // Wait below for a change from exactly what was written: a change
        // landing between writing and waiting must not wait for the timeout.
        let seen = reports.snapshot();
        let snapshot: Vec<_> = seen.values().collect();
        if let Ok(json) = serde_json::to_vec_pretty(&snapshot) {
            // Write then rename: readers never see half a file.
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        reports
            .wait_for(Duration::from_secs(30), |r| *r != seen)
            .await;
    }
}
