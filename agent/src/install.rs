//! `linx-agent install-cni`: the agent DaemonSet's sidecar that chains
//! `linx-cni` into the node's CNI configuration, as Istio's install-cni
//! does (the file edits themselves are `linx_cni::conflist`'s).
//!
//! It copies the plugin binary into the CNI bin directory, inserts the
//! plugin at the end of the runtime's conflist, and looks again every
//! `--interval-secs` (the cluster's CNI may rewrite its file, or write it
//! only after we start). On SIGTERM it decides whether this is an
//! uninstall: when its DaemonSet is gone, being deleted, or no longer
//! readable (the chart's RBAC removed with it), it takes the plugin out
//! and removes the binary; otherwise (a restart, an upgrade) it leaves
//! both in place, so `failClosed` keeps holding new pods until the new
//! agent answers — no pod starts unprotected during a rollout.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::api::Api;
use linx_cni::conflist::{self, Settings};
use linx_cni::plugin::FailurePolicy;
use tracing::{error, info, warn};

/// `linx-agent install-cni` arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct InstallArgs {
    /// The node's CNI configuration directory, as mounted.
    #[arg(long, default_value = "/host/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// The node's CNI plugin directory, as mounted.
    #[arg(long, default_value = "/host/opt/cni/bin")]
    pub cni_bin_dir: PathBuf,
    /// The configuration file to chain into (default: the one the runtime
    /// uses, the first `.conf`/`.conflist`/`.json` by name).
    #[arg(long)]
    pub conf_name: Option<String>,
    /// The plugin binary to copy (in the agent image).
    #[arg(long, default_value = "/usr/local/bin/linx-cni")]
    pub plugin_binary: PathBuf,
    /// The agent's socket, as the node sees it.
    #[arg(long, default_value = linx_cni::protocol::DEFAULT_SOCKET)]
    pub agent_socket: PathBuf,
    /// Where the plugin keeps its start records, as the node sees it.
    #[arg(long, default_value = linx_cni::record::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// failClosed: a pod whose firewall cannot be enforced does not start;
    /// failOpen: it starts, reported as unprotected.
    #[arg(long, value_enum, default_value_t = Policy::FailClosed)]
    pub failure_policy: Policy,
    /// How long ADD waits for the agent (1 to 60 seconds).
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
    /// Pods of these namespaces are passed through (repeatable, or
    /// comma-separated; the agent's own namespace is always added).
    #[arg(long = "exclude-namespace", value_delimiter = ',')]
    pub exclude_namespaces: Vec<String>,
    /// How often the configuration is checked again.
    #[arg(long, default_value_t = 2)]
    pub interval_secs: u64,
    /// Install once and exit (an init container) instead of staying.
    #[arg(long)]
    pub once: bool,
    /// Take the plugin out and remove the binary, then exit.
    #[arg(long)]
    pub uninstall: bool,
    /// On SIGTERM: `auto` uninstalls only when the DaemonSet is gone or
    /// being deleted; `always`; `never`.
    #[arg(long, value_enum, default_value_t = OnExit::Auto)]
    pub uninstall_on_exit: OnExit,
    /// The DaemonSet this runs in, and its namespace (downward API).
    #[arg(long, default_value = "linx-agent")]
    pub daemonset: String,
    #[arg(long, env = "POD_NAMESPACE", default_value = "linx-system")]
    pub namespace: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    #[value(name = "failClosed")]
    FailClosed,
    #[value(name = "failOpen")]
    FailOpen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnExit {
    Auto,
    Always,
    Never,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Conflist(#[from] conflist::ConflistError),
    #[error("timeout-secs: {0} is out of range (1 to 60)")]
    Timeout(u64),
    #[error("starting the Tokio runtime: {0}")]
    Runtime(std::io::Error),
}

impl InstallArgs {
    /// The plugin's entry in the conflist.
    pub fn settings(&self) -> Result<Settings, InstallError> {
        if !(1..=linx_cni::plugin::MAX_TIMEOUT.as_secs()).contains(&self.timeout_secs) {
            return Err(InstallError::Timeout(self.timeout_secs));
        }
        let mut exclude: Vec<String> = self
            .exclude_namespaces
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect();
        if !exclude.contains(&self.namespace) {
            // The agent's own pod cannot wait for the agent.
            exclude.push(self.namespace.clone());
        }
        Ok(Settings {
            agent_socket: self.agent_socket.clone(),
            state_dir: self.state_dir.clone(),
            failure_policy: match self.failure_policy {
                Policy::FailClosed => FailurePolicy::FailClosed,
                Policy::FailOpen => FailurePolicy::FailOpen,
            },
            timeout_seconds: self.timeout_secs,
            exclude_namespaces: exclude,
        })
    }

    /// Copies the binary and chains the plugin; `Ok(false)` when the
    /// runtime's configuration file does not exist yet.
    pub fn install_once(&self) -> Result<bool, InstallError> {
        let settings = self.settings()?;
        if conflist::install_binary(&self.plugin_binary, &self.cni_bin_dir)? {
            info!(dir = %self.cni_bin_dir.display(), "linx-cni binary installed");
        }
        let out = conflist::install(
            &self.cni_conf_dir,
            self.conf_name.as_deref(),
            &settings.entry(),
        )?;
        match &out.path {
            Some(p) if out.changed => info!(file = %p.display(), "linx-cni chained"),
            Some(_) => {}
            None => return Ok(false),
        }
        Ok(true)
    }

    /// Takes the plugin out of every conflist and removes the binary.
    pub fn uninstall_now(&self) -> Result<(), InstallError> {
        for p in conflist::uninstall(&self.cni_conf_dir)? {
            info!(file = %p.display(), "linx-cni taken out");
        }
        conflist::remove_binary(&self.cni_bin_dir)?;
        Ok(())
    }
}

/// Runs the installer until SIGTERM (or once).
pub fn main(args: InstallArgs) -> Result<(), InstallError> {
    crate::run::init_logging();
    if args.uninstall {
        return args.uninstall_now();
    }
    if args.once {
        if !args.install_once()? {
            warn!(dir = %args.cni_conf_dir.display(), "no CNI configuration yet: nothing chained");
        }
        return Ok(());
    }
    let rt = tokio::runtime::Runtime::new().map_err(InstallError::Runtime)?;
    rt.block_on(watch(args))
}

async fn watch(args: InstallArgs) -> Result<(), InstallError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(InstallError::Runtime)?;
    let mut tick = tokio::time::interval(Duration::from_secs(args.interval_secs.max(1)));
    let mut waiting = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
        match args.install_once() {
            Ok(true) => waiting = false,
            Ok(false) if !waiting => {
                waiting = true;
                info!(dir = %args.cni_conf_dir.display(), "waiting for the cluster's CNI configuration");
            }
            Ok(false) => {}
            // An unparseable file is left alone; we say so and try later.
            Err(e) => error!(error = %e, "linx-cni not chained"),
        }
    }
    if should_uninstall(&args).await {
        info!("uninstalling: the DaemonSet is going away");
        args.uninstall_now()?;
    } else {
        info!("restart or upgrade: linx-cni stays chained");
    }
    Ok(())
}

/// Whether stopping now is an uninstall (see the module doc).
async fn should_uninstall(args: &InstallArgs) -> bool {
    match args.uninstall_on_exit {
        OnExit::Always => return true,
        OnExit::Never => return false,
        OnExit::Auto => {}
    }
    let client = match crate::cluster::client().await {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "cannot tell an uninstall from a restart: staying chained");
            return false;
        }
    };
    let api: Api<DaemonSet> = Api::namespaced(client, &args.namespace);
    match api.get(&args.daemonset).await {
        Ok(ds) => ds.metadata.deletion_timestamp.is_some(),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => true,
        Err(e) => {
            warn!(error = %e, "cannot tell an uninstall from a restart: staying chained");
            false
        }
    }
}
