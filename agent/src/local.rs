//! A local source of pods and desired values, for running without
//! Kubernetes (tests, demos, a node outside a cluster): a JSON file listing
//! pods, each with the nft file of its ruleset. Re-read when it changes; a
//! file that cannot be read or compiled is logged and the last good
//! desired state is kept.
//!
//! ```json
//! {"pods": [{"uid": "6f1c…", "namespace": "shop", "name": "web-0",
//!            "labels": {"app": "web"}, "hostNetwork": false,
//!            "ruleset": "web.nft"}]}
//! ```
//! A relative `ruleset` path is taken from the file's directory; a pod
//! without one is selected by nothing (its tables are removed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use linx_cni::protocol::PodRef;

use linx_netfilter::Ruleset;
use serde::Deserialize;

use crate::desired::Target;
use crate::pod::Pod;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("compiling {path}: {message}")]
    Compile { path: PathBuf, message: String },
}

#[derive(Deserialize)]
struct File {
    pods: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    uid: String,
    namespace: String,
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    host_network: bool,
    ruleset: Option<PathBuf>,
}

/// Reads the pods file and compiles each distinct ruleset file once.
pub fn load(path: &Path) -> Result<Vec<Target>, LocalError> {
    let text = read(path)?;
    let file: File = serde_json::from_str(&text).map_err(|source| LocalError::Json {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut compiled: BTreeMap<PathBuf, Arc<Ruleset>> = BTreeMap::new();
    let mut out = Vec::with_capacity(file.pods.len());
    for e in file.pods {
        let desired = match e.ruleset {
            None => None,
            Some(rel) => {
                let p = dir.join(rel);
                if let Some(v) = compiled.get(&p) {
                    Some(v.clone())
                } else {
                    let name = p.display().to_string();
                    let v = Arc::new(
                        linx_netfilter::syntax::compile_source(
                            Some(&name),
                            &read(&p)?,
                            &linx_netfilter::syntax::Includes::nft_default(),
                        )
                        .map_err(|d| LocalError::Compile {
                            path: p.clone(),
                            message: d.to_string(),
                        })?,
                    );
                    compiled.insert(p, v.clone());
                    Some(v)
                }
            }
        };
        let pod = Pod {
            uid: e.uid,
            namespace: e.namespace,
            name: e.name,
            labels: e.labels,
            host_network: e.host_network,
        };
        let desired = desired.filter(|_| pod.never_touched().is_none());
        out.push(Target::new(pod, desired));
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, LocalError> {
    std::fs::read_to_string(path).map_err(|source| LocalError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Pods for `linx-cni` requests from the pods file: the targets last
/// loaded, and the file read again when a pod is not among them (the
/// local counterpart of one GET to the API server). A pod the file does
/// not list is selected by nothing.
pub struct LocalLookup {
    path: PathBuf,
    last: Mutex<Vec<Target>>,
}

impl LocalLookup {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LocalLookup {
            path: path.into(),
            last: Mutex::default(),
        }
    }

    /// The targets the run loop last applied.
    pub fn set(&self, targets: Vec<Target>) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = targets;
    }

    fn find(&self, pod: &PodRef) -> Option<Target> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        find(&last, pod).cloned()
    }
}

/// The target for `pod` among `targets`: by UID when given, else by name.
fn find<'a>(targets: &'a [Target], pod: &PodRef) -> Option<&'a Target> {
    targets.iter().find(|t| match &pod.uid {
        Some(uid) => &t.pod.uid == uid,
        None => t.pod.namespace == pod.namespace && t.pod.name == pod.name,
    })
}

impl crate::cni::Lookup for LocalLookup {
    fn target<'a>(&'a self, pod: &'a PodRef) -> BoxFuture<'a, Result<Target, String>> {
        Box::pin(async move {
            if let Some(t) = self.find(pod) {
                return Ok(t);
            }
            let path = self.path.clone();
            let loaded = tokio::task::spawn_blocking(move || load(&path))
                .await
                .map_err(|e| format!("reading the pods file: {e}"))?
                .map_err(|e| e.to_string())?;
            if let Some(t) = find(&loaded, pod) {
                return Ok(t.clone());
            }
            // Not in the file: selected by nothing.
            Ok(Target::new(
                Pod {
                    uid: pod
                        .uid
                        .clone()
                        .unwrap_or_else(|| format!("{}/{}", pod.namespace, pod.name)),
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    ..Default::default()
                },
                None,
            ))
        })
    }
}
