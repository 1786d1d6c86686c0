//! The plugin itself: one CNI operation, from the environment and the
//! network configuration on stdin to the result on stdout and an exit
//! status (CNI spec 1.0 and 1.1; older versions with a `prevResult` too).
//!
//! `linx-cni` is only ever chained after the cluster's own CNI: it makes no
//! interface and no address, and passes the previous plugin's result
//! through byte for byte. On `ADD` it asks the node agent to enforce the
//! pod's firewall in `CNI_NETNS` and returns only once the agent says the
//! kernel has it, so no container of the pod runs before its firewall.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::protocol::{self, CallError, PodRef, Request, Response};
use crate::record::{self, StartRecord};

/// The spec versions this plugin speaks (the ones with chaining).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The newest of them.
pub const LATEST_VERSION: &str = "1.1.0";
/// The plugin's `type` in a conflist: the binary's name.
pub const PLUGIN_TYPE: &str = "linx-cni";
/// How long `ADD` waits for the agent unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds of `timeoutSeconds`: the whole chain must finish well within
/// the kubelet's runtime request timeout (2 minutes).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// `DEL` and `GC` never wait long: they succeed whatever the agent does.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(2);

/// CNI's well-known error codes we use; 100 and up are ours.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// The agent answered: the pod's firewall could not be enforced.
    pub const NOT_ENFORCED: u32 = 100;
    /// `CHECK`: the namespace does not hold the pod's firewall.
    pub const CHECK_FAILED: u32 = 101;
}

/// What to do when the agent cannot enforce a pod's firewall in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailurePolicy {
    /// `ADD` fails; the runtime retries the sandbox. No pod ever runs
    /// without its firewall.
    #[default]
    FailClosed,
    /// `ADD` succeeds; the pod starts unprotected, is recorded as such
    /// (node report, Event) and gets its firewall when the agent can.
    FailOpen,
}

/// The CNI environment of one invocation.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
}

impl Env {
    /// The process's own `CNI_*` variables.
    pub fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        Env {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: var("CNI_ARGS"),
        }
    }

    /// The pod named by `CNI_ARGS` (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`,
    /// `K8S_POD_UID`); `None` when the sandbox is not a Kubernetes pod's.
    pub fn pod(&self) -> Option<PodRef> {
        let mut pod = PodRef::default();
        for (k, v) in self.args.split(';').filter_map(|kv| kv.split_once('=')) {
            match k {
                "K8S_POD_NAMESPACE" => pod.namespace = v.to_owned(),
                "K8S_POD_NAME" => pod.name = v.to_owned(),
                "K8S_POD_UID" if !v.is_empty() => pod.uid = Some(v.to_owned()),
                _ => {}
            }
        }
        (!pod.namespace.is_empty() && !pod.name.is_empty()).then_some(pod)
    }
}

/// The plugin's entry of the network configuration (the runtime adds
/// `cniVersion`, `name` and, when chained, `prevResult`). Unknown keys
/// (`args`, `runtimeConfig`, `capabilities`) are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf<'a> {
    #[serde(default)]
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(borrow, default)]
    pub prev_result: Option<&'a RawValue>,
    /// The agent's socket on the node.
    #[serde(default = "default_socket")]
    pub agent_socket: PathBuf,
    /// Where start records are kept (see [`crate::record`]).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// How long `ADD` waits for the agent, 1 to 60.
    pub timeout_seconds: Option<u64>,
    /// Pods of these namespaces are passed through untouched (the agent's
    /// own namespace must be one: its pod cannot wait for itself).
    #[serde(default)]
    pub exclude_namespaces: Vec<String>,
    /// CNI 1.1 `GC`: the attachments still in use.
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// One attachment still in use, as `GC` lists it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
}

fn default_socket() -> PathBuf {
    protocol::DEFAULT_SOCKET.into()
}

fn default_state_dir() -> PathBuf {
    record::DEFAULT_STATE_DIR.into()
}

impl NetConf<'_> {
    /// The configured `ADD` timeout, checked against its bounds.
    pub fn timeout(&self) -> Result<Duration, Failure> {
        match self.timeout_seconds {
            None => Ok(DEFAULT_TIMEOUT),
            Some(s) if (1..=MAX_TIMEOUT.as_secs()).contains(&s) => Ok(Duration::from_secs(s)),
            Some(s) => Err(Failure::new(
                code::INVALID_CONFIG,
                format!(
                    "timeoutSeconds: {s} is out of range (1 to {})",
                    MAX_TIMEOUT.as_secs()
                ),
            )),
        }
    }
}

/// A CNI error result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub code: u32,
    pub msg: String,
    pub details: Option<String>,
}

impl Failure {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Failure {
            code,
            msg: msg.into(),
            details: None,
        }
    }

    fn details(mut self, d: impl Into<String>) -> Self {
        self.details = Some(d.into());
        self
    }
}

/// What one invocation prints and exits with.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub status: i32,
}

/// Runs one CNI operation. Logs (one line per notable event) go to `log`.
pub fn run(env: &Env, stdin: &[u8], log: &mut dyn Write) -> Outcome {
    let version = peek_version(stdin);
    let result = match env.command.as_str() {
        "VERSION" => Ok(version_result(&version)),
        "ADD" | "DEL" | "CHECK" | "STATUS" | "GC" => operate(env, stdin, log),
        "" => Err(Failure::new(
            code::INVALID_ENVIRONMENT,
            "CNI_COMMAND is not set: linx-cni is a CNI plugin, run by the container runtime",
        )),
        other => Err(Failure::new(
            code::INVALID_ENVIRONMENT,
            format!("CNI_COMMAND {other:?} is not a CNI operation"),
        )),
    };
    match result {
        Ok(stdout) => Outcome { stdout, status: 0 },
        Err(f) => {
            let v = if version.is_empty() {
                LATEST_VERSION
            } else {
                &version
            };
            let _ = writeln!(
                log,
                "linx-cni: {} {}: {}",
                env.command, env.container_id, f.msg
            );
            Outcome {
                stdout: error_result(v, &f),
                status: 1,
            }
        }
    }
}

/// The `cniVersion` of the input, if it has one (for error results).
fn peek_version(stdin: &[u8]) -> String {
    #[derive(Deserialize)]
    struct V {
        #[serde(rename = "cniVersion", default)]
        v: String,
    }
    serde_json::from_slice::<V>(stdin)
        .map(|v| v.v)
        .unwrap_or_default()
}

fn version_result(_requested: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "cniVersion": LATEST_VERSION,
        "supportedVersions": SUPPORTED_VERSIONS,
    }))
    .expect("serializes")
}

fn error_result(version: &str, f: &Failure) -> Vec<u8> {
    let mut v = serde_json::json!({"cniVersion": version, "code": f.code, "msg": f.msg});
    if let Some(d) = &f.details {
        v["details"] = d.clone().into();
    }
    serde_json::to_vec(&v).expect("serializes")
}

fn operate(env: &Env, stdin: &[u8], log: &mut dyn Write) -> Result<Vec<u8>, Failure> {
    let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
        Failure::new(
            code::DECODING_FAILURE,
            "the network configuration is not valid JSON for linx-cni",
        )
        .details(e.to_string())
    })?;
    if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
        return Err(Failure::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "cniVersion {:?} is not supported (supported: {})",
                conf.cni_version,
                SUPPORTED_VERSIONS.join(", ")
            ),
        ));
    }
    let timeout = conf.timeout()?;
    match env.command.as_str() {
        // Ready whenever the configuration is: reporting "not ready" while
        // the agent is away would keep the agent's own pod from starting.
        "STATUS" => Ok(Vec::new()),
        "GC" => {
            gc(&conf, log);
            Ok(Vec::new())
        }
        "DEL" => {
            del(env, &conf, log);
            Ok(Vec::new())
        }
        cmd => {
            check_container_id(&env.container_id)?;
            let pod = env
                .pod()
                .filter(|p| !conf.exclude_namespaces.contains(&p.namespace));
            if cmd == "ADD" {
                if let Some(pod) = pod {
                    add(env, &conf, pod, timeout, log)?;
                }
                Ok(pass_through(&conf))
            } else {
                if let Some(pod) = pod {
                    check(env, &conf, pod, timeout)?;
                }
                Ok(Vec::new())
            }
        }
    }
}

/// The previous plugin's result, unchanged; an empty result of the
/// configuration's version when there is none.
fn pass_through(conf: &NetConf) -> Vec<u8> {
    match conf.prev_result {
        Some(raw) => raw.get().as_bytes().to_vec(),
        None => serde_json::to_vec(&serde_json::json!({"cniVersion": conf.cni_version}))
            .expect("serializes"),
    }
}

/// CNI requires container IDs of `[A-Za-z0-9][A-Za-z0-9_.-]*`; ours become
/// file names, so they are checked.
fn check_container_id(id: &str) -> Result<(), Failure> {
    let ok = id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Failure::new(
            code::INVALID_ENVIRONMENT,
            format!("CNI_CONTAINERID {id:?} is not a valid container ID"),
        ))
    }
}

fn open_netns(env: &Env) -> Result<OwnedFd, String> {
    if env.netns.is_empty() {
        return Err("CNI_NETNS is not set".into());
    }
    std::fs::File::open(&env.netns)
        .map(OwnedFd::from)
        .map_err(|e| format!("opening CNI_NETNS {}: {e}", env.netns))
}

fn add(
    env: &Env,
    conf: &NetConf,
    pod: PodRef,
    timeout: Duration,
    log: &mut dyn Write,
) -> Result<(), Failure> {
    let answer = open_netns(env)
        .map_err(|m| (code::IO_FAILURE, m))
        .and_then(|ns| {
            let req = Request::Add {
                pod: pod.clone(),
                container_id: env.container_id.clone(),
                // The agent answers before we give up, with its own reason.
                timeout_ms: timeout
                    .saturating_sub(Duration::from_millis(250))
                    .as_millis() as u64,
            };
            protocol::call(&conf.agent_socket, &req, Some(ns.as_fd()), timeout)
                .map_err(|e| (code::TRY_AGAIN_LATER, describe(&e)))
        });
    let refused = match answer {
        Ok(Response::Applied { .. } | Response::Unselected) => None,
        Ok(Response::Failed { message }) => Some((code::NOT_ENFORCED, message)),
        Ok(other) => Some((
            code::NOT_ENFORCED,
            format!("unexpected answer from the agent: {other:?}"),
        )),
        Err(e) => Some(e),
    };
    let protected = refused.is_none();
    let reason = refused.map(|(code, reason)| {
        if conf.failure_policy == FailurePolicy::FailClosed {
            return Err(Failure::new(
                code,
                format!("pod {pod}: firewall not enforced, the sandbox is refused (failClosed): {reason}"),
            ));
        }
        Ok(reason)
    });
    let reason = reason.transpose()?;
    if let Some(reason) = &reason {
        let _ = writeln!(
            log,
            "linx-cni: ADD {}: pod {pod} starts WITHOUT its firewall (failOpen): {reason}",
            env.container_id
        );
    }
    let rec = StartRecord {
        pod,
        container_id: env.container_id.clone(),
        protected,
        reason,
        at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    if let Err(e) = record::write(&conf.state_dir, &rec) {
        // The pod is protected (or admitted by policy) either way; only
        // the report would miss it.
        let _ = writeln!(
            log,
            "linx-cni: ADD {}: start record not written: {e}",
            env.container_id
        );
    }
    Ok(())
}

/// The reason, in words the runtime's log and `kubectl describe` show.
fn describe(e: &CallError) -> String {
    match e {
        CallError::Unreachable { .. } => format!("{e} (is linx-agent running on this node?)"),
        e => e.to_string(),
    }
}

fn check(env: &Env, conf: &NetConf, pod: PodRef, timeout: Duration) -> Result<(), Failure> {
    let ns = open_netns(env).map_err(|m| Failure::new(code::IO_FAILURE, m))?;
    let req = Request::Check {
        pod: pod.clone(),
        container_id: env.container_id.clone(),
    };
    match protocol::call(&conf.agent_socket, &req, Some(ns.as_fd()), timeout) {
        Ok(Response::Done | Response::Unselected | Response::Applied { .. }) => Ok(()),
        Ok(Response::Failed { message }) => Err(Failure::new(
            code::CHECK_FAILED,
            format!("pod {pod}: the firewall is not as it should be: {message}"),
        )),
        // Nobody to ask: the same choice as for ADD.
        Err(_) if conf.failure_policy == FailurePolicy::FailOpen => Ok(()),
        Err(e) => Err(Failure::new(
            code::TRY_AGAIN_LATER,
            format!("pod {pod}: cannot check the firewall: {}", describe(&e)),
        )),
    }
}

/// Never fails: the sandbox goes whatever the agent knows of it.
fn del(env: &Env, conf: &NetConf, log: &mut dyn Write) {
    if check_container_id(&env.container_id).is_err() {
        return;
    }
    let _ = record::remove(&conf.state_dir, &env.container_id);
    let req = Request::Del {
        pod: env.pod(),
        container_id: env.container_id.clone(),
    };
    if let Err(e) = protocol::call(&conf.agent_socket, &req, None, CLEANUP_TIMEOUT) {
        // The agent lets go of a namespace by itself when its pod goes.
        let _ = writeln!(
            log,
            "linx-cni: DEL {}: agent not told: {e}",
            env.container_id
        );
    }
}

fn gc(conf: &NetConf, log: &mut dyn Write) {
    let valid: Vec<String> = conf
        .valid_attachments
        .iter()
        .flatten()
        .map(|a| a.container_id.clone())
        .collect();
    let _ = record::retain(&conf.state_dir, &valid);
    if let Err(e) = protocol::call(
        &conf.agent_socket,
        &Request::Gc { valid },
        None,
        CLEANUP_TIMEOUT,
    ) {
        let _ = writeln!(log, "linx-cni: GC: agent not told: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(cmd: &str) -> Env {
        Env {
            command: cmd.into(),
            container_id: "c0ffee".into(),
            netns: "/proc/self/ns/net".into(),
            ifname: "eth0".into(),
            args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=u-1".into(),
        }
    }

    fn conf(extra: &str, dir: &Path) -> Vec<u8> {
        format!(
            r#"{{"cniVersion":"1.0.0","name":"k8s","type":"linx-cni","agentSocket":"{}/none.sock","stateDir":"{}"{extra},
              "prevResult":{{"cniVersion":"1.0.0","interfaces":[{{"name":"eth0","sandbox":"/x"}}],"ips":[{{"address":"10.1.0.5/24","interface":0}}]}}}}"#,
            dir.display(),
            dir.display()
        )
        .into_bytes()
    }

    use std::path::Path;

    fn tmp(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("linx-cni-plugin-{tag}-{}", std::process::id()))
    }

    #[test]
    fn pod_identity_comes_from_cni_args() {
        let pod = env("ADD").pod().unwrap();
        assert_eq!(
            pod,
            PodRef {
                namespace: "shop".into(),
                name: "web-0".into(),
                uid: Some("u-1".into())
            }
        );
        let e = Env {
            args: "IgnoreUnknown=1".into(),
            ..env("ADD")
        };
        assert_eq!(e.pod(), None);
    }

    #[test]
    fn version_lists_what_is_supported() {
        let out = run(
            &env("VERSION"),
            br#"{"cniVersion":"1.0.0"}"#,
            &mut Vec::new(),
        );
        assert_eq!(out.status, 0);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion": "1.1.0",
                "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
        );
    }

    #[test]
    fn fail_closed_refuses_the_sandbox_naming_the_pod() {
        let dir = tmp("closed");
        let mut log = Vec::new();
        let out = run(&env("ADD"), &conf("", &dir), &mut log);
        assert_eq!(out.status, 1);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["code"], code::TRY_AGAIN_LATER);
        let msg = v["msg"].as_str().unwrap();
        assert!(
            msg.starts_with("pod shop/web-0: firewall not enforced"),
            "{msg}"
        );
        assert!(msg.contains("not reachable"), "{msg}");
        assert!(record::read_all(&dir).is_empty());
    }

    #[test]
    fn fail_open_passes_the_result_through_and_records_the_pod() {
        let dir = tmp("open");
        let input = conf(r#","failurePolicy":"failOpen""#, &dir);
        let out = run(&env("ADD"), &input, &mut Vec::new());
        assert_eq!(out.status, 0, "{}", String::from_utf8_lossy(&out.stdout));
        let conf: NetConf = serde_json::from_slice(&input).unwrap();
        assert_eq!(out.stdout, conf.prev_result.unwrap().get().as_bytes());
        let recs = record::read_all(&dir);
        assert_eq!(recs.len(), 1);
        assert!(!recs[0].protected);
        assert!(recs[0].reason.as_deref().unwrap().contains("not reachable"));
        // DEL never fails, and forgets the sandbox.
        let out = run(&env("DEL"), &input, &mut Vec::new());
        assert_eq!((out.status, out.stdout.len()), (0, 0));
        assert!(record::read_all(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn excluded_and_non_kubernetes_sandboxes_pass_through() {
        let dir = tmp("excluded");
        let input = conf(r#","excludeNamespaces":["shop"]"#, &dir);
        let out = run(&env("ADD"), &input, &mut Vec::new());
        assert_eq!(out.status, 0);
        let bare = Env {
            args: String::new(),
            ..env("ADD")
        };
        let out = run(&bare, &conf("", &dir), &mut Vec::new());
        assert_eq!(out.status, 0);
        assert!(record::read_all(&dir).is_empty());
    }

    #[test]
    fn bad_input_gets_the_spec_codes() {
        let dir = tmp("bad");
        let code_of = |out: Outcome| {
            assert_eq!(out.status, 1);
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["code"].clone()
        };
        assert_eq!(
            code_of(run(&env("ADD"), b"{", &mut Vec::new())),
            code::DECODING_FAILURE
        );
        let old = br#"{"cniVersion":"0.2.0","name":"k8s","type":"linx-cni"}"#;
        assert_eq!(
            code_of(run(&env("ADD"), old, &mut Vec::new())),
            code::INCOMPATIBLE_VERSION
        );
        let slow = conf(r#","timeoutSeconds":600"#, &dir);
        assert_eq!(
            code_of(run(&env("ADD"), &slow, &mut Vec::new())),
            code::INVALID_CONFIG
        );
        let e = Env {
            container_id: "../../etc".into(),
            ..env("ADD")
        };
        assert_eq!(
            code_of(run(&e, &conf("", &dir), &mut Vec::new())),
            code::INVALID_ENVIRONMENT
        );
        assert_eq!(
            code_of(run(&env("FROB"), &conf("", &dir), &mut Vec::new())),
            code::INVALID_ENVIRONMENT
        );
        // STATUS: ready whenever the configuration is.
        assert_eq!(
            run(&env("STATUS"), &conf("", &dir), &mut Vec::new()).status,
            0
        );
    }
}
