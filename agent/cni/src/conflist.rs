//! Chaining `linx-cni` into the node's CNI configuration, and taking it
//! out again, as Istio's install-cni does.
//!
//! * **Which file.** The one the runtime uses: the first, in lexical
//!   order, of the `.conf`, `.conflist` and `.json` files of the CNI
//!   configuration directory (containerd and CRI-O take the first), unless
//!   a name is given.
//! * **Insert.** `linx-cni` goes at the end of the file's `plugins`, so it
//!   runs after the cluster's CNI has set the pod's network up. Every other
//!   key and plugin is kept, in its order and its own text: only the
//!   top-level layout is written anew. A single-plugin `.conf` (or `.json`)
//!   becomes a `.conflist` of the same stem with that plugin then ours (a
//!   runtime reads `.conf` files as one plugin), and the `.conf` is
//!   removed; removing `linx-cni` later leaves that one-plugin conflist,
//!   which the runtime treats as the original.
//! * **Idempotent.** An entry of type `linx-cni` already there is updated
//!   in place when its settings differ, else the file is not written.
//! * **Atomic.** The new text goes to a hidden temporary file in the same
//!   directory (no extension a runtime reads), is synced, given the old
//!   file's permissions, and renamed over it.
//! * **Unparseable files are left alone** with an error naming the file
//!   and the position.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::plugin::{FailurePolicy, PLUGIN_TYPE};

/// Extensions a runtime reads in the configuration directory.
pub const EXTENSIONS: &[&str] = &["conf", "conflist", "json"];

#[derive(Debug, thiserror::Error)]
pub enum ConflistError {
    #[error("{path}: not valid JSON at line {line}, column {column}: {message}; left untouched")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}; left untouched")]
    Shape { path: PathBuf, message: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ConflistError + 'a {
    move |source| ConflistError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// What an edit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Nothing to do: the file was not written.
    Unchanged,
    /// The new text.
    Changed(String),
}

/// The settings of the plugin's entry in the conflist (what the plugin
/// reads as [`crate::plugin::NetConf`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub agent_socket: PathBuf,
    pub state_dir: PathBuf,
    pub failure_policy: FailurePolicy,
    pub timeout_seconds: u64,
    pub exclude_namespaces: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            agent_socket: crate::protocol::DEFAULT_SOCKET.into(),
            state_dir: crate::record::DEFAULT_STATE_DIR.into(),
            failure_policy: FailurePolicy::FailClosed,
            timeout_seconds: crate::plugin::DEFAULT_TIMEOUT.as_secs(),
            exclude_namespaces: vec!["kube-system".into()],
        }
    }
}

impl Settings {
    /// The plugin's entry.
    ///
    /// ```
    /// let e = linx_cni::conflist::Settings::default().entry();
    /// assert_eq!(e["type"], "linx-cni");
    /// assert_eq!(e["failurePolicy"], "failClosed");
    /// ```
    pub fn entry(&self) -> Value {
        serde_json::json!({
            "type": PLUGIN_TYPE,
            "agentSocket": self.agent_socket,
            "stateDir": self.state_dir,
            "failurePolicy": self.failure_policy,
            "timeoutSeconds": self.timeout_seconds,
            "excludeNamespaces": self.exclude_namespaces,
        })
    }
}

/// A JSON object with its keys in file order, each value as written.
struct Ordered(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = m.next_entry::<String, Box<RawValue>>()? {
                    out.push(kv);
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Ordered {
    fn get(&self, key: &str) -> Option<&RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
    }
}

/// Whether a plugin entry is ours.
fn is_ours(plugin: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct T {
        #[serde(rename = "type")]
        t: Option<String>,
    }
    serde_json::from_str::<T>(plugin.get()).is_ok_and(|t| t.t.as_deref() == Some(PLUGIN_TYPE))
}

fn parse(path: &Path, text: &str) -> Result<Ordered, ConflistError> {
    serde_json::from_str(text).map_err(|e| ConflistError::Parse {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// The `plugins` of a conflist, each as written.
fn plugins_of(path: &Path, doc: &Ordered) -> Result<Option<Vec<Box<RawValue>>>, ConflistError> {
    match doc.get("plugins") {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<Vec<Box<RawValue>>>(raw.get())
            .map(Some)
            .map_err(|e| ConflistError::Shape {
                path: path.to_owned(),
                message: format!("\"plugins\" is not a list of objects ({e})"),
            }),
    }
}

/// Writes an object with its keys in order, two-space indented; values
/// keep their own text (so a file indented the same way comes out equal
/// but for the edit).
fn render(keys: &[(String, String)]) -> String {
    let mut out = String::from("{\n");
    for (i, (k, v)) in keys.iter().enumerate() {
        let key = serde_json::to_string(k).expect("strings serialize");
        out.push_str(&format!("  {key}: {v}"));
        out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
    }
    out.push_str("}\n");
    out
}

fn render_plugins(plugins: &[String]) -> String {
    let mut out = String::from("[\n");
    for (i, p) in plugins.iter().enumerate() {
        out.push_str("    ");
        out.push_str(p);
        out.push_str(if i + 1 < plugins.len() { ",\n" } else { "\n" });
    }
    out.push_str("  ]");
    out
}

/// Our entry as it sits in the list (pretty, indented to its depth).
fn entry_text(entry: &Value) -> String {
    serde_json::to_string_pretty(entry)
        .expect("values serialize")
        .replace('\n', "\n    ")
}

/// `text` (the file at `path`; a `.conf` when it has no `plugins`) with
/// `entry` chained at the end, or updated in place if already there.
pub fn insert(path: &Path, text: &str, entry: &Value) -> Result<Edit, ConflistError> {
    let doc = parse(path, text)?;
    let ours = entry_text(entry);
    let Some(plugins) = plugins_of(path, &doc)? else {
        // A single plugin's configuration: make it a list of two.
        if doc.get("type").is_none() {
            return Err(ConflistError::Shape {
                path: path.to_owned(),
                message: "neither a configuration list (\"plugins\") nor a plugin (\"type\")"
                    .into(),
            });
        }
        let mut keys: Vec<(String, String)> = ["cniVersion", "name"]
            .iter()
            .filter_map(|k| Some((k.to_string(), doc.get(k)?.get().to_owned())))
            .collect();
        keys.push((
            "plugins".into(),
            render_plugins(&[text.trim().replace('\n', "\n    "), ours]),
        ));
        return Ok(Edit::Changed(render(&keys)));
    };
    let mut found = false;
    let mut same = true;
    let mut list: Vec<String> = Vec::with_capacity(plugins.len() + 1);
    for p in &plugins {
        if !is_ours(p) {
            list.push(p.get().to_owned());
            continue;
        }
        if found {
            same = false; // a duplicate: dropped
            continue;
        }
        found = true;
        let current: Value = serde_json::from_str(p.get()).expect("already parsed");
        if &current == entry {
            list.push(p.get().to_owned());
        } else {
            same = false;
            list.push(ours.clone());
        }
    }
    if found && same {
        return Ok(Edit::Unchanged);
    }
    if !found {
        list.push(ours);
    }
    Ok(Edit::Changed(with_plugins(&doc, &list)))
}

/// `text` without any `linx-cni` entry.
pub fn remove(path: &Path, text: &str) -> Result<Edit, ConflistError> {
    let doc = parse(path, text)?;
    let Some(plugins) = plugins_of(path, &doc)? else {
        return Ok(Edit::Unchanged); // a single plugin: never ours
    };
    if !plugins.iter().any(|p| is_ours(p)) {
        return Ok(Edit::Unchanged);
    }
    let list: Vec<String> = plugins
        .iter()
        .filter(|p| !is_ours(p))
        .map(|p| p.get().to_owned())
        .collect();
    Ok(Edit::Changed(with_plugins(&doc, &list)))
}

fn with_plugins(doc: &Ordered, list: &[String]) -> String {
    let keys: Vec<(String, String)> = doc
        .0
        .iter()
        .map(|(k, v)| {
            let text = if k == "plugins" {
                render_plugins(list)
            } else {
                v.get().to_owned()
            };
            (k.clone(), text)
        })
        .collect();
    render(&keys)
}

/// The configuration file the runtime uses in `dir`: `name` if given, else
/// the first by name with an extension a runtime reads. `None` when there
/// is none yet (the cluster's CNI has not written it).
pub fn find(dir: &Path, name: Option<&str>) -> Result<Option<PathBuf>, ConflistError> {
    if let Some(n) = name {
        let p = dir.join(n);
        return Ok(p.is_file().then_some(p));
    }
    let entries = std::fs::read_dir(dir).map_err(io("reading", dir))?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            !hidden && EXTENSIONS.contains(&ext) && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files.into_iter().next())
}

/// Replaces `path` with `text` atomically, keeping its permissions.
pub fn replace(path: &Path, text: &str) -> Result<(), ConflistError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.linx-cni.tmp"));
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0o644);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("replacing", path)(e)
    })
}

/// What [`install`] and [`uninstall`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The file holding the result (`None`: no configuration file yet).
    pub path: Option<PathBuf>,
    pub changed: bool,
}

/// Chains `entry` into the runtime's configuration file in `dir`.
pub fn install(dir: &Path, name: Option<&str>, entry: &Value) -> Result<Outcome, ConflistError> {
    let Some(path) = find(dir, name)? else {
        return Ok(Outcome {
            path: None,
            changed: false,
        });
    };
    let text = std::fs::read_to_string(&path).map_err(io("reading", &path))?;
    let edit = insert(&path, &text, entry)?;
    let Edit::Changed(new) = edit else {
        return Ok(Outcome {
            path: Some(path),
            changed: false,
        });
    };
    if path.extension().is_some_and(|e| e == "conflist") {
        replace(&path, &new)?;
        return Ok(Outcome {
            path: Some(path),
            changed: true,
        });
    }
    // A single plugin's file becomes a conflist of the same stem.
    let list = path.with_extension("conflist");
    if list.exists() {
        return Err(ConflistError::Shape {
            path: path.clone(),
            message: format!("{} exists too; not overwritten", list.display()),
        });
    }
    let mode = std::fs::metadata(&path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0o644);
    replace(&list, &new)?;
    let _ = std::fs::set_permissions(&list, std::fs::Permissions::from_mode(mode));
    std::fs::remove_file(&path).map_err(io("removing", &path))?;
    Ok(Outcome {
        path: Some(list),
        changed: true,
    })
}

/// Takes `linx-cni` out of every configuration file of `dir` that has it.
pub fn uninstall(dir: &Path) -> Result<Vec<PathBuf>, ConflistError> {
    let entries = std::fs::read_dir(dir).map_err(io("reading", dir))?;
    let mut lists: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "conflist"))
        .collect();
    lists.sort();
    let mut changed = Vec::new();
    for path in lists {
        let text = std::fs::read_to_string(&path).map_err(io("reading", &path))?;
        if let Edit::Changed(new) = remove(&path, &text)? {
            replace(&path, &new)?;
            changed.push(path);
        }
    }
    Ok(changed)
}

/// Copies the plugin binary to `bin_dir/linx-cni` atomically, unless an
/// identical copy is there. Returns whether it wrote.
pub fn install_binary(source: &Path, bin_dir: &Path) -> Result<bool, ConflistError> {
    let want = std::fs::read(source).map_err(io("reading", source))?;
    let dest = bin_dir.join(PLUGIN_TYPE);
    if std::fs::read(&dest).is_ok_and(|have| have == want) {
        return Ok(false);
    }
    let tmp = bin_dir.join(format!(".{PLUGIN_TYPE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&want)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("installing", &dest)(e)
    })?;
    Ok(true)
}

/// Removes `bin_dir/linx-cni` (absent is fine).
pub fn remove_binary(bin_dir: &Path) -> Result<(), ConflistError> {
    let dest = bin_dir.join(PLUGIN_TYPE);
    match std::fs::remove_file(&dest) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("removing", &dest)(e)),
        _ => Ok(()),
    }
}
