//! A fake Kubernetes API server, for tests only: a generic JSON object
//! store behind the REST paths the e2e test, the operator and the agent
//! use, so the cluster flow runs on a machine where no real API server can.
//!
//! It checks *our* flow (requests, watches, status and report writes), not
//! a real API server's semantics: no authentication, RBAC, admission,
//! schema validation, defaulting, CEL rules, garbage collection or
//! managed fields; server-side apply is a JSON merge of the fields given,
//! strategic merge is a JSON merge too; a watch replays every event after
//! the requested resourceVersion; lists are never paged.
//!
//! Faults, for tests: [`FakeApiServer::set_down`] makes it go away (open
//! connections and watches cut, new ones closed at once) and come back
//! with the same objects; [`FakeApiServer::compact`] forgets the events
//! so far, as etcd's compaction does, so a watch from an older
//! resourceVersion gets `410 Gone` (an `ERROR` event with status
//! `Expired`, as a real API server sends) and must list again.
//!
//! Admission: ValidatingWebhookConfigurations stored in it are called
//! (by `clientConfig.url`, over verified HTTPS: see [`crate::admission`]),
//! and `dryRun` writes are admitted and answered but not stored.
//!
//! What it does: `/api/v1/...` and `/apis/GROUP/VERSION/...`, namespaced
//! and cluster-scoped, any resource name; GET (one, list, `watch=true`
//! streaming, `labelSelector` with `=`, `==`, `!=`, `key`, `!key`,
//! `fieldSelector` on any dotted path such as `spec.nodeName=…`), POST,
//! PUT (optimistic concurrency on `metadata.resourceVersion`), PATCH
//! (`application/apply-patch+yaml` creates when absent,
//! `merge-patch+json`, `strategic-merge-patch+json`), DELETE, and the
//! `status` subresource (writes there change only `status`; writes to the
//! object keep its `status`). `metadata.generation` grows when anything
//! but metadata and status changes.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The running server; stopped when dropped.
pub struct FakeApiServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    store: Arc<Store>,
}

impl FakeApiServer {
    /// Starts on a free loopback port, on its own thread and runtime (so a
    /// test blocking its own thread never stalls it).
    pub fn start() -> io::Result<Self> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let store = Arc::new(Store::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let s = store.clone();
        let thread = std::thread::Builder::new()
            .name("fake-apiserver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake apiserver runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("listener");
                    tokio::select! {
                        _ = accept_loop(listener, s) => {}
                        _ = stopped => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(FakeApiServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            store,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig pointing at this server (no credentials).
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
                 users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    \
                 cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n",
                self.url()
            ),
        )
    }

    /// Requests served so far, as `METHOD PATH?QUERY` (for assertions on
    /// what the components asked).
    pub fn requests(&self) -> Vec<String> {
        self.store.lock().requests.clone()
    }

    /// [`requests`](Self::requests), each with the `User-Agent` it came
    /// with (empty if none): who asked what.
    pub fn requests_by(&self) -> Vec<(String, String)> {
        let st = self.store.lock();
        st.agents
            .iter()
            .cloned()
            .zip(st.requests.iter().cloned())
            .collect()
    }

    /// Goes away (`true`: every open connection, watches included, is cut
    /// and new ones are closed unanswered) or comes back with its objects.
    pub fn set_down(&self, down: bool) {
        self.store.down.send_replace(down);
    }

    /// Forgets the events so far: a watch from an older resourceVersion
    /// gets `410 Gone`. Returns the resourceVersion compacted to.
    ///
    /// The revision moves on by one first, as a busy cluster's does:
    /// otherwise a client whose last event was the very last write would
    /// resume exactly at the compacted revision and never see `410`, and
    /// whether a test's clients relist would hang on which write came last.
    pub fn compact(&self) -> u64 {
        let mut st = self.store.lock();
        st.rv += 1;
        st.compacted = st.rv;
        st.log.clear();
        st.rv
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where an object lives: `(collection, namespace, name)`, the collection
/// being `api/v1/pods` or `apis/GROUP/VERSION/PLURAL`.
type Key = (String, String, String);

#[derive(Clone, Debug)]
struct WatchEvent {
    rv: u64,
    collection: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
pub(crate) struct State {
    rv: u64,
    uids: u64,
    /// Watches from a resourceVersion below this get `410 Gone`.
    compacted: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<WatchEvent>,
    requests: Vec<String>,
    /// The `User-Agent` of each of `requests`.
    agents: Vec<String>,
}

struct Store {
    state: Mutex<State>,
    /// The latest resourceVersion, for watchers to wake on.
    latest: watch::Sender<u64>,
    /// Whether the server is "away" (see [`FakeApiServer::set_down`]).
    down: watch::Sender<bool>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            state: Mutex::default(),
            latest: watch::Sender::new(0),
            down: watch::Sender::new(false),
        }
    }
}

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A parsed request path.
#[derive(Debug)]
struct Target {
    collection: String,
    namespace: String,
    name: Option<String>,
    status: bool,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (format!("api/{v}"), rest),
        ["apis", g, v, rest @ ..] => (format!("apis/{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r, rest @ ..] => (ns.to_string(), {
            let mut v = vec![*r];
            v.extend_from_slice(rest);
            v
        }),
        r => (String::new(), r.to_vec()),
    };
    let (resource, name, sub) = match rest.as_slice() {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(n.to_string()), None),
        [r, n, s] => (*r, Some(n.to_string()), Some(*s)),
        _ => return None,
    };
    if sub.is_some_and(|s| s != "status") {
        return None;
    }
    Some(Target {
        collection: format!("{prefix}/{resource}"),
        namespace,
        name,
        status: sub.is_some(),
    })
}

struct Request {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    content_type: String,
    user_agent: String,
    body: Vec<u8>,
}

struct Response {
    code: u16,
    body: Value,
}

fn status(code: u16, reason: &str, message: String) -> Response {
    Response {
        code,
        body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                     "status": "Failure", "message": message, "reason": reason, "code": code}),
    }
}

fn ok(body: Value) -> Response {
    Response { code: 200, body }
}

async fn accept_loop(listener: TcpListener, store: Arc<Store>) {
    while let Ok((sock, _)) = listener.accept().await {
        if *store.down.borrow() {
            continue; // closed unanswered
        }
        // Each response and watch event is written whole at once; without
        // this, Nagle's algorithm held a write behind the client's delayed
        // ACK of the previous one: 40 ms per request.
        let _ = sock.set_nodelay(true);
        let s = store.clone();
        tokio::spawn(async move {
            let mut down = s.down.subscribe();
            tokio::select! {
                _ = serve_conn(sock, s.clone()) => {}
                _ = down.wait_for(|d| *d) => {} // cut
            }
        });
    }
}

async fn serve_conn(sock: TcpStream, store: Arc<Store>) {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    while let Ok(Some(req)) = read_request(&mut r).await {
        let line = format!("{} {}?{}", req.method, req.path, query_string(&req.query));
        {
            let mut st = store.lock();
            st.requests.push(line);
            st.agents.push(req.user_agent.clone());
        }
        if req.method == "GET"
            && req
                .query
                .get("watch")
                .is_some_and(|v| v == "true" || v == "1")
        {
            // The stream owns the connection until it ends; then close.
            let _ = serve_watch(&mut w, &store, &req).await;
            return;
        }
        let (resp, warnings) = match preview(&store, &req) {
            None => (handle(&store, &req), Vec::new()),
            Some(Err(resp)) => (resp, Vec::new()),
            Some(Ok(p)) => {
                let attempt = crate::admission::Attempt {
                    collection: &p.collection,
                    namespace: &p.namespace,
                    name: &p.name,
                    operation: p.operation,
                    object: &p.result.body,
                    old_object: p.old.as_ref(),
                    dry_run: p.dry_run,
                };
                match crate::admission::admit(p.configurations.clone(), &attempt).await {
                    crate::admission::Verdict::Refused { code, status } => {
                        (Response { code, body: status }, Vec::new())
                    }
                    crate::admission::Verdict::Allowed { warnings } if p.dry_run => {
                        (p.result, warnings)
                    }
                    crate::admission::Verdict::Allowed { warnings } => {
                        (handle(&store, &req), warnings)
                    }
                }
            }
        };
        let body = serde_json::to_vec(&resp.body).unwrap_or_default();
        let warning_headers: String = warnings
            .iter()
            .map(|w| format!("Warning: 299 - {:?}\r\n", w))
            .collect();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\n{warning_headers}Content-Length: {}\r\n\r\n",
            resp.code,
            reason_phrase(resp.code),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        if w.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        _ => "Error",
    }
}

fn query_string(q: &BTreeMap<String, String>) -> String {
    q.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let (method, target) = (method.to_string(), target.to_string());
    let (mut length, mut chunked, mut content_type) = (0usize, false, String::new());
    let mut user_agent = String::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let v = v.trim();
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.parse().unwrap_or(0),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "content-type" => content_type = v.to_string(),
                "user-agent" => user_agent = v.to_string(),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).await?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body).await?;
    }
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (unescape(k), unescape(v))
        })
        .collect();
    Ok(Some(Request {
        method,
        path: path.to_string(),
        query,
        content_type,
        user_agent,
        body,
    }))
}

/// Percent-decoding (and `+` as space) of a query component.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const WEBHOOK_CONFIGURATIONS: &str =
    "apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";

/// A write to admit before it is stored: what it would store, computed on
/// a copy of the object it touches.
struct Preview {
    collection: String,
    namespace: String,
    name: String,
    operation: &'static str,
    result: Response,
    old: Option<Value>,
    dry_run: bool,
    configurations: Vec<Value>,
}

/// `None`: an ordinary request. `Some(Err)`: the write fails anyway.
fn preview(store: &Store, req: &Request) -> Option<Result<Preview, Response>> {
    let t = parse_path(&req.path)?;
    if t.status || !matches!(req.method.as_str(), "POST" | "PUT" | "PATCH") {
        return None;
    }
    let dry_run = req.query.contains_key("dryRun");
    let st = store.lock();
    let configurations: Vec<Value> = st
        .objects
        .iter()
        .filter(|((c, _, _), _)| c == WEBHOOK_CONFIGURATIONS)
        .map(|(_, v)| v.clone())
        .collect();
    if configurations.is_empty() && !dry_run {
        return None;
    }
    let name = match &t.name {
        Some(n) => n.clone(),
        None => body_json(req).ok()?["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let old = st.objects.get(&key(&t, &name)).cloned();
    let mut scratch = State {
        rv: st.rv,
        uids: st.uids,
        ..Default::default()
    };
    if let Some(o) = &old {
        scratch.objects.insert(key(&t, &name), o.clone());
    }
    drop(st);
    let result = write(&mut scratch, &t, req);
    if result.code >= 400 {
        return Some(Err(result));
    }
    Some(Ok(Preview {
        collection: t.collection.clone(),
        namespace: t.namespace.clone(),
        name,
        operation: if old.is_some() { "UPDATE" } else { "CREATE" },
        result,
        old,
        dry_run,
        configurations,
    }))
}

/// POST, PUT or PATCH applied to `st`.
fn write(st: &mut State, t: &Target, req: &Request) -> Response {
    match (req.method.as_str(), &t.name) {
        ("POST", None) => match body_json(req) {
            Ok(obj) => create(st, t, obj),
            Err(e) => e,
        },
        ("PUT", Some(name)) => match body_json(req) {
            Ok(obj) => replace(st, t, name, obj),
            Err(e) => e,
        },
        ("PATCH", Some(name)) => match body_json(req) {
            Ok(patch) => patch_object(st, t, name, &req.content_type, patch),
            Err(e) => e,
        },
        (m, _) => status(405, "MethodNotAllowed", format!("{m} {}", req.path)),
    }
}

fn handle(store: &Store, req: &Request) -> Response {
    let Some(t) = parse_path(&req.path) else {
        return status(404, "NotFound", format!("no route for {}", req.path));
    };
    let mut st = store.lock();
    let resp = match (req.method.as_str(), &t.name) {
        ("GET", None) => list(&st, &t, &req.query),
        ("GET", Some(name)) => match st.objects.get(&key(&t, name)) {
            Some(o) => ok(o.clone()),
            None => not_found(&t, name),
        },
        ("POST", None) | ("PUT", Some(_)) | ("PATCH", Some(_)) => write(&mut st, &t, req),
        ("DELETE", Some(name)) => match st.objects.remove(&key(&t, name)) {
            Some(o) => {
                record(&mut st, &t, "DELETED", o.clone());
                ok(o)
            }
            None => not_found(&t, name),
        },
        (m, _) => status(405, "MethodNotAllowed", format!("{m} {}", req.path)),
    };
    let rv = st.rv;
    drop(st);
    store.latest.send_replace(rv);
    resp
}

fn key(t: &Target, name: &str) -> Key {
    (t.collection.clone(), t.namespace.clone(), name.to_string())
}

fn not_found(t: &Target, name: &str) -> Response {
    let resource = t.collection.rsplit('/').next().unwrap_or_default();
    status(404, "NotFound", format!("{resource} \"{name}\" not found"))
}

fn body_json(req: &Request) -> Result<Value, Response> {
    serde_json::from_slice(&req.body)
        .or_else(|_| serde_yaml::from_slice(&req.body))
        .map_err(|e| status(400, "BadRequest", format!("body: {e}")))
}

/// Appends a watch event and bumps the resourceVersion into the object.
fn record(st: &mut State, t: &Target, kind: &'static str, mut object: Value) -> Value {
    st.rv += 1;
    if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), json!(st.rv.to_string()));
    }
    st.log.push(WatchEvent {
        rv: st.rv,
        collection: t.collection.clone(),
        namespace: t.namespace.clone(),
        kind,
        object: object.clone(),
    });
    object
}

fn now() -> String {
    let s = jiff::Timestamp::now().as_second();
    jiff::Timestamp::from_second(s)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn create(st: &mut State, t: &Target, mut obj: Value) -> Response {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return status(400, "BadRequest", "metadata missing".into());
    };
    let generated = meta
        .get("generateName")
        .and_then(Value::as_str)
        .map(|g| format!("{g}{:05x}", st.rv + 1));
    let Some(name) = meta
        .get("name")
        .and_then(Value::as_str)
        .map(String::from)
        .or(generated)
    else {
        return status(400, "BadRequest", "metadata.name missing".into());
    };
    meta.insert("name".into(), json!(name));
    let k = key(t, &name);
    if st.objects.contains_key(&k) {
        return status(409, "AlreadyExists", format!("\"{name}\" already exists"));
    }
    // Unique in the process, not only in this server: fake servers of
    // tests running at once would otherwise hand out the same pod UIDs,
    // and each test's agent would find the other's pods by cgroup.
    static UIDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    st.uids = UIDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let uid = format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), st.uids);
    meta.insert("uid".into(), json!(uid));
    meta.insert("generation".into(), json!(1));
    meta.insert("creationTimestamp".into(), json!(now()));
    if !t.namespace.is_empty() {
        meta.insert("namespace".into(), json!(t.namespace));
    }
    let obj = record(st, t, "ADDED", obj);
    st.objects.insert(k, obj.clone());
    Response {
        code: 201,
        body: obj,
    }
}

/// The object's content that counts for `metadata.generation`.
fn spec_part(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    v
}

/// Stores `new` in place of `old`: a status write keeps all but status;
/// an object write keeps status; generation grows when the spec changed.
fn store_update(st: &mut State, t: &Target, name: &str, old: &Value, mut new: Value) -> Response {
    if t.status {
        let mut o = old.clone();
        o["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        new = o;
    } else {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        let mut meta = old["metadata"].clone();
        merge(&mut meta, &new["metadata"]);
        for k in ["uid", "creationTimestamp", "namespace", "name"] {
            meta[k] = old["metadata"][k].clone();
        }
        let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
        meta["generation"] = json!(if spec_part(old) != spec_part(&new) {
            g + 1
        } else {
            g
        });
        new["metadata"] = meta;
    }
    if &new == old {
        return ok(new);
    }
    let new = record(st, t, "MODIFIED", new);
    st.objects.insert(key(t, name), new.clone());
    ok(new)
}

fn replace(st: &mut State, t: &Target, name: &str, obj: Value) -> Response {
    let Some(old) = st.objects.get(&key(t, name)).cloned() else {
        return not_found(t, name);
    };
    let want = obj["metadata"]["resourceVersion"].as_str();
    if want.is_some_and(|w| Some(w) != old["metadata"]["resourceVersion"].as_str()) {
        return status(
            409,
            "Conflict",
            format!("the object \"{name}\" has been modified; please apply your changes to the latest version and try again"),
        );
    }
    // A PUT replaces metadata wholesale (labels etc.), unlike a patch.
    let mut new = obj;
    let mut meta = new["metadata"].clone();
    for k in ["uid", "creationTimestamp", "generation"] {
        meta[k] = old["metadata"][k].clone();
    }
    new["metadata"] = meta.clone();
    let mut base = old.clone();
    base["metadata"] = meta;
    store_update(st, t, name, &base, new)
}

fn patch_object(st: &mut State, t: &Target, name: &str, ctype: &str, patch: Value) -> Response {
    let apply = ctype.starts_with("application/apply-patch");
    let merge_like = apply
        || ctype.starts_with("application/merge-patch")
        || ctype.starts_with("application/strategic-merge-patch");
    if !merge_like {
        return status(415, "UnsupportedMediaType", format!("patch type {ctype}"));
    }
    let Some(old) = st.objects.get(&key(t, name)).cloned() else {
        if !apply || t.status {
            return not_found(t, name);
        }
        let mut obj = patch;
        obj["metadata"]["name"] = json!(name);
        return create(st, t, obj);
    };
    let mut new = old.clone();
    merge(&mut new, &patch);
    store_update(st, t, name, &old, new)
}

/// RFC 7386 JSON merge: objects merge, `null` deletes, the rest replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// A label or field selector: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-joined.
fn selected(obj: &Value, query: &BTreeMap<String, String>) -> bool {
    let labels = &obj["metadata"]["labels"];
    let by_labels = query.get("labelSelector").is_none_or(|s| {
        terms(s).all(|(k, op, v)| {
            let have = labels.get(k).and_then(Value::as_str);
            match op {
                "=" => have == Some(v),
                "!=" => have != Some(v),
                "exists" => have.is_some(),
                _ => have.is_none(),
            }
        })
    });
    let by_fields = query.get("fieldSelector").is_none_or(|s| {
        terms(s).all(|(k, op, v)| {
            let mut at = obj;
            for part in k.split('.') {
                at = &at[part];
            }
            let have = match at {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            match op {
                "!=" => have != v,
                _ => have == v,
            }
        })
    });
    by_labels && by_fields
}

fn terms(s: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    s.split(',').filter(|t| !t.is_empty()).map(|t| {
        if let Some((k, v)) = t.split_once("!=") {
            (k.trim(), "!=", v.trim())
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            (k.trim(), "=", v.trim())
        } else if let Some(k) = t.strip_prefix('!') {
            (k.trim(), "absent", "")
        } else {
            (t.trim(), "exists", "")
        }
    })
}

fn in_scope(t: &Target, collection: &str, namespace: &str) -> bool {
    collection == t.collection && (t.namespace.is_empty() || namespace == t.namespace)
}

fn list(st: &State, t: &Target, query: &BTreeMap<String, String>) -> Response {
    let items: Vec<Value> = st
        .objects
        .iter()
        .filter(|((c, ns, _), _)| in_scope(t, c, ns))
        .map(|(_, o)| o)
        .filter(|o| selected(o, query))
        .cloned()
        .collect();
    let kind = items
        .first()
        .and_then(|o| o["kind"].as_str())
        .map(|k| format!("{k}List"))
        .unwrap_or_else(|| "List".into());
    ok(json!({
        "apiVersion": t.collection.rsplit_once('/').map(|(gv, _)| gv.trim_start_matches("api/").trim_start_matches("apis/")).unwrap_or("v1"),
        "kind": kind,
        "metadata": {"resourceVersion": st.rv.to_string()},
        "items": items,
    }))
}

/// Streams the events after `resourceVersion` that match, until
/// `timeoutSeconds` pass or the client goes.
async fn serve_watch<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    store: &Store,
    req: &Request,
) -> io::Result<()> {
    let Some(t) = parse_path(&req.path) else {
        return Ok(());
    };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    w.write_all(head.as_bytes()).await?;
    w.flush().await?;
    let mut from: u64 = req
        .query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| store.lock().rv);
    let compacted = store.lock().compacted;
    // "0" is "from any point" on a real server, never too old.
    if from != 0 && from < compacted {
        let message = format!("too old resource version: {from} ({compacted})");
        let gone = json!({"type": "ERROR", "object": status(410, "Expired", message).body});
        write_chunk(w, &gone).await?;
        w.write_all(b"0\r\n\r\n").await?;
        return w.flush().await;
    }
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300u64);
    let until = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let mut latest = store.latest.subscribe();
    loop {
        // Read and advance under one lock: no event falls between.
        let events: Vec<WatchEvent> = {
            let st = store.lock();
            // The log is in resourceVersion order: skip what was sent
            // without walking it (thousands of events at 1,000 pods).
            let first = st.log.partition_point(|e| e.rv <= from);
            let events = st.log[first..]
                .iter()
                .filter(|e| in_scope(&t, &e.collection, &e.namespace))
                .cloned()
                .collect();
            from = st.rv.max(from);
            events
        };
        for e in events {
            if selected(&e.object, &req.query) {
                write_chunk(w, &json!({"type": e.kind, "object": e.object})).await?;
            }
        }
        w.flush().await?;
        tokio::select! {
            r = latest.changed() => if r.is_err() { break },
            _ = tokio::time::sleep_until(until) => break,
        }
    }
    w.write_all(b"0\r\n\r\n").await?;
    w.flush().await
}

/// One watch event as a line in its own chunk.
async fn write_chunk<W: tokio::io::AsyncWrite + Unpin>(w: &mut W, event: &Value) -> io::Result<()> {
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    line.push(b'\n');
    let mut chunk = format!("{:x}\r\n", line.len()).into_bytes();
    chunk.extend_from_slice(&line);
    chunk.extend_from_slice(b"\r\n");
    w.write_all(&chunk).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_collection_namespace_name_and_subresource() {
        let t = parse_path(
            "/apis/netfilter.linx.dev/v1alpha1/namespaces/web/firewallrulesets/fw/status",
        )
        .unwrap();
        assert_eq!(
            (
                t.collection.as_str(),
                t.namespace.as_str(),
                t.name.as_deref(),
                t.status
            ),
            (
                "apis/netfilter.linx.dev/v1alpha1/firewallrulesets",
                "web",
                Some("fw"),
                true
            )
        );
        let t = parse_path("/api/v1/namespaces/web").unwrap();
        assert_eq!(
            (t.collection.as_str(), t.name.as_deref()),
            ("api/v1/namespaces", Some("web"))
        );
        let t = parse_path("/api/v1/pods").unwrap();
        assert_eq!(
            (t.collection.as_str(), t.namespace.as_str(), t.name),
            ("api/v1/pods", "", None)
        );
        assert!(parse_path("/version").is_none());
    }

    #[test]
    fn selectors_and_merge() {
        let o = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "n1"}});
        let q = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(selected(&o, &q("fieldSelector", "spec.nodeName=n1")));
        assert!(!selected(&o, &q("fieldSelector", "spec.nodeName=n2")));
        assert!(selected(&o, &q("labelSelector", "app=web,!tier")));
        assert!(!selected(&o, &q("labelSelector", "app!=web")));
        let mut v = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge(&mut v, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(v, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
        assert_eq!(unescape("spec.nodeName%3Dnode-a"), "spec.nodeName=node-a");
    }
}
