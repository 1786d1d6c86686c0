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
use std::sync::Arc;

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
        out.push(Target::new(pod, desired.filter(|_| !e.host_network)));
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, LocalError> {
    std::fs::read_to_string(path).map_err(|source| LocalError::Read {
        path: path.to_owned(),
        source,
    })
}
