//! How each sandbox started: one small file per sandbox in the plugin's
//! state directory on the node (`/run/linx/cni/<container id>.json`),
//! written by the plugin at the end of every `ADD` and removed at `DEL`.
//!
//! It is the plugin that writes it because only the plugin knows when the
//! agent could not be reached (`failOpen` admitted the pod unprotected);
//! the agent reads the directory for its node report, and the files
//! outlive agent restarts (the directory is a tmpfs: they go with a reboot,
//! as the sandboxes do).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::protocol::PodRef;

/// Where the plugin keeps its records by default.
pub const DEFAULT_STATE_DIR: &str = "/run/linx/cni";

/// How one sandbox started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRecord {
    pub pod: PodRef,
    pub container_id: String,
    /// The pod's firewall was in its namespace before `ADD` returned (or
    /// no FirewallRuleset selected it): its first packet was filtered.
    pub protected: bool,
    /// When not protected: why (the agent's error, or that it could not be
    /// reached), as the plugin saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

/// The file of a sandbox's record. Container IDs are checked by the plugin
/// (`[A-Za-z0-9][A-Za-z0-9_.-]*`, as the CNI spec requires), so the name
/// never leaves the directory.
pub fn path(dir: &Path, container_id: &str) -> PathBuf {
    dir.join(format!("{container_id}.json"))
}

/// Writes a record atomically (a temporary file renamed over the old one).
pub fn write(dir: &Path, rec: &StartRecord) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp", rec.container_id));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(rec).expect("records serialize"))?;
    drop(f);
    std::fs::rename(&tmp, path(dir, &rec.container_id))
}

/// Removes a sandbox's record; a missing one is not an error.
pub fn remove(dir: &Path, container_id: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path(dir, container_id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every record in `dir` (none when it does not exist). Unreadable files
/// are skipped: a record is a report, never a reason to fail.
pub fn read_all(dir: &Path) -> Vec<StartRecord> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<StartRecord> = entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.ends_with(".json") && !n.starts_with('.')
        })
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect();
    out.sort_by(|a, b| a.container_id.cmp(&b.container_id));
    out
}

/// Removes the records of sandboxes not in `valid` (CNI `GC`).
pub fn retain(dir: &Path, valid: &[String]) -> std::io::Result<()> {
    for r in read_all(dir) {
        if !valid.contains(&r.container_id) {
            remove(dir, &r.container_id)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_written_read_and_removed() {
        let dir = std::env::temp_dir().join(format!("linx-cni-rec-{}", std::process::id()));
        let rec = |id: &str, protected: bool| StartRecord {
            pod: PodRef {
                namespace: "shop".into(),
                name: format!("web-{id}"),
                uid: None,
            },
            container_id: id.into(),
            protected,
            reason: (!protected).then(|| "agent unreachable".into()),
            at: 1,
        };
        write(&dir, &rec("b", true)).unwrap();
        write(&dir, &rec("a", false)).unwrap();
        std::fs::write(dir.join("junk.json"), "{").unwrap();
        assert_eq!(read_all(&dir), vec![rec("a", false), rec("b", true)]);
        retain(&dir, &["b".into()]).unwrap();
        assert_eq!(read_all(&dir), vec![rec("b", true)]);
        remove(&dir, "b").unwrap();
        remove(&dir, "b").unwrap();
        assert!(read_all(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read_all(&dir).is_empty());
    }
}
