//! The agent's local endpoint for `linx-cni` (see `docs/cni.md`): a
//! `SOCK_SEQPACKET` Unix socket on the node, one request and one answer
//! per connection, each connection served on its own task (concurrent
//! `ADD`s run in parallel; engine calls are bounded by the controller).
//!
//! `ADD` resolves the pod ([`Lookup`]: the watch cache, or one GET when the
//! Pod is not there yet), hands the sandbox's namespace — the descriptor
//! the plugin sent — to the pod's worker ([`NodeHandle::attach`], the same
//! worker the normal path uses), and answers once that worker's report
//! says the kernel committed the firewall there. A pod selected by nothing
//! is answered at once. The namespace is checked first: it must be a
//! network namespace, and never the node's own.

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use linx_cni::protocol::{self, PodRef, Request, Response, MAX_MESSAGE};
use linx_netfilter::reconcile::{Options as ReconcileOptions, Reconciler};
use linx_netfilter::{Netns, Ruleset, Socket};
use nix::sys::socket::{self, bind, sockopt, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tracing::{debug, info, warn};

use crate::controller::NodeHandle;
use crate::desired::Target;
use crate::report::PodState;
use crate::resolve::Sandbox;

/// Finds a pod and its desired value, for a sandbox the runtime is making.
pub trait Lookup: Send + Sync {
    /// The pod `pod` names (its UID must match when given), with its
    /// desired value under the current policy; `Err` says why not.
    fn target<'a>(&'a self, pod: &'a PodRef) -> BoxFuture<'a, Result<Target, String>>;
}

/// Settings of the endpoint.
#[derive(Clone, Debug)]
pub struct EndpointOptions {
    /// Where to listen (`/run/linx/agent.sock` on a node).
    pub socket: PathBuf,
    /// The longest an `ADD` may take here, whatever the plugin allows.
    pub max_wait: Duration,
    /// The node's own network namespace: a sandbox there is refused.
    pub host_netns: PathBuf,
}

/// The endpoint's socket, bound: [`Listener::serve`] answers requests.
pub struct Listener {
    fd: AsyncFd<OwnedFd>,
    opts: EndpointOptions,
}

/// Binds the socket (replacing a stale one left by an earlier agent),
/// readable and writable by root only. Must be called inside a Tokio
/// runtime.
pub fn listen(opts: EndpointOptions) -> Result<Listener, EndpointError> {
    Ok(Listener {
        fd: bind_socket(&opts.socket)?,
        opts,
    })
}

impl Listener {
    /// Serves requests until the task is dropped (or aborted).
    pub fn serve(
        self,
        node: NodeHandle,
        lookup: Arc<dyn Lookup>,
    ) -> Result<tokio::task::JoinHandle<()>, EndpointError> {
        let this = Arc::new(Endpoint::new(node, lookup, self.opts)?);
        let listener = self.fd;
        Ok(tokio::spawn(async move {
            info!(socket = %this.opts.socket.display(), "serving linx-cni");
            loop {
                let conn = match accept(&listener).await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "accepting a linx-cni connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let this = this.clone();
                tokio::spawn(async move { this.connection(conn).await });
            }
        }))
    }
}

/// The endpoint: what requests are served with.
pub struct Endpoint {
    node: NodeHandle,
    lookup: Arc<dyn Lookup>,
    opts: EndpointOptions,
    host: (u64, u64),
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("listening on {path}: {source}")]
    Listen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the node's network namespace {path}: {source}")]
    HostNetns { path: PathBuf, source: nix::Error },
}

impl Endpoint {
    pub fn new(
        node: NodeHandle,
        lookup: Arc<dyn Lookup>,
        opts: EndpointOptions,
    ) -> Result<Self, EndpointError> {
        let st =
            nix::sys::stat::stat(&opts.host_netns).map_err(|source| EndpointError::HostNetns {
                path: opts.host_netns.clone(),
                source,
            })?;
        Ok(Endpoint {
            node,
            lookup,
            host: (st.st_dev, st.st_ino),
            opts,
        })
    }

    async fn connection(&self, conn: AsyncFd<OwnedFd>) {
        // Only root (the runtime runs plugins as root) or our own user.
        match socket::getsockopt(conn.get_ref(), sockopt::PeerCredentials) {
            Ok(c) if c.uid() == 0 || Some(c.uid()) == own_uid() => {}
            Ok(c) => {
                warn!(
                    uid = c.uid(),
                    "linx-cni connection from another user refused"
                );
                return;
            }
            Err(e) => {
                warn!(error = %e, "linx-cni connection without credentials refused");
                return;
            }
        }
        let mut buf = vec![0u8; MAX_MESSAGE];
        let received = conn
            .async_io(Interest::READABLE, |fd| {
                protocol::recv(fd.as_fd(), &mut buf).map_err(std::io::Error::from)
            })
            .await;
        let (n, fd) = match received {
            Ok((0, _)) => return,
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "reading a linx-cni request");
                return;
            }
        };
        let response = match protocol::decode::<Request>(&buf[..n]) {
            Ok(req) => self.handle(req, fd).await,
            Err(e) => Response::Failed {
                message: format!("request not understood: {e}"),
            },
        };
        let bytes = protocol::encode(&response);
        let sent = conn
            .async_io(Interest::WRITABLE, |fd| {
                protocol::send(fd.as_fd(), &bytes, None).map_err(std::io::Error::from)
            })
            .await;
        if let Err(e) = sent {
            // The plugin gave up (its timeout): it has failed or admitted
            // the pod already; the worker goes on either way.
            debug!(error = %e, "answer to linx-cni not delivered");
        }
    }

    /// Serves one request.
    pub async fn handle(&self, req: Request, fd: Option<OwnedFd>) -> Response {
        match req {
            Request::Add {
                pod,
                container_id,
                timeout_ms,
            } => {
                let wait = Duration::from_millis(timeout_ms).min(self.opts.max_wait);
                let started = std::time::Instant::now();
                let res = tokio::time::timeout(wait, self.add(&pod, container_id, fd)).await;
                let response = res.unwrap_or_else(|_| Response::Failed {
                    message: format!(
                        "pod {pod}: the firewall was not in within {wait:?}{}",
                        self.state_of(&pod)
                    ),
                });
                match &response {
                    Response::Failed { message } => warn!(%pod, message, "ADD refused"),
                    r => info!(%pod, took = ?started.elapsed(), result = ?r, "ADD answered"),
                }
                response
            }
            Request::Check { pod, container_id } => self.check(&pod, &container_id, fd).await,
            Request::Del { pod, container_id } => {
                let held = self.node.release(&container_id);
                debug!(?pod, container_id, held, "DEL");
                Response::Done
            }
            Request::Gc { valid } => {
                let valid: HashSet<String> = valid.into_iter().collect();
                let released = self.node.retain(&valid);
                debug!(released, "GC");
                Response::Done
            }
        }
    }

    /// What the pod's worker last said, for a timeout's message.
    fn state_of(&self, pod: &PodRef) -> String {
        let Some(uid) = &pod.uid else {
            return String::new();
        };
        match self.node.reports().get(uid) {
            Some(r) => match (&r.state, &r.error) {
                (_, Some(e)) => format!(" (last error: {e})"),
                (s, None) => format!(" (state: {s:?})"),
            },
            None => String::new(),
        }
    }

    /// Checks the descriptor sent with a request: a network namespace, not
    /// the node's.
    fn namespace(
        &self,
        pod: &PodRef,
        fd: Option<OwnedFd>,
    ) -> Result<(OwnedFd, (u64, u64)), String> {
        let fd =
            fd.ok_or_else(|| format!("pod {pod}: no namespace descriptor with the request"))?;
        // NS_GET_NSTYPE (linux/nsfs.h: _IO(0xb7, 0x3)): which kind of
        // namespace the descriptor is, if it is one at all.
        const NS_GET_NSTYPE: u32 = 0xb703;
        // SAFETY: an ioctl without argument on a descriptor we own.
        let kind = unsafe { nix::libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
        if kind != nix::libc::CLONE_NEWNET {
            return Err(format!(
                "pod {pod}: the descriptor sent is not a network namespace"
            ));
        }
        let st = nix::sys::stat::fstat(&fd).map_err(|e| format!("pod {pod}: fstat: {e}"))?;
        let inode = (st.st_dev, st.st_ino);
        if inode == self.host {
            return Err(format!(
                "pod {pod}: the sandbox's namespace is the node's own: never touched"
            ));
        }
        Ok((fd, inode))
    }

    async fn add(&self, pod: &PodRef, container_id: String, fd: Option<OwnedFd>) -> Response {
        let (fd, inode) = match self.namespace(pod, fd) {
            Ok(x) => x,
            Err(message) => return Response::Failed { message },
        };
        let target = match self.lookup.target(pod).await {
            Ok(t) => t,
            Err(message) => return Response::Failed { message },
        };
        if target.pod.never_touched().is_some() {
            return Response::Unselected; // never touched (and never chained)
        }
        let uid = target.pod.uid.clone();
        let unselected = target.desired.is_none() && !target.hold;
        let tables = target
            .desired
            .as_deref()
            .map(table_names)
            .unwrap_or_default();
        let sandbox = Arc::new(Sandbox {
            container_id: container_id.clone(),
            netns: Netns::Fd(Arc::new(fd)),
            inode,
        });
        let revision = self.node.attach(target, sandbox);
        if unselected {
            // Nothing to wait for; the worker still holds the sandbox, so a
            // FirewallRuleset selecting the pod later applies at once.
            return Response::Unselected;
        }
        let reports = self.node.reports();
        let done = |r: &crate::report::PodReport| {
            r.sandbox.as_deref() == Some(container_id.as_str())
                && r.revision >= revision
                && matches!(r.state, PodState::Applied | PodState::Failed)
        };
        // The caller's timeout is the shorter.
        reports
            .wait_for(self.opts.max_wait, |m| m.get(&uid).is_some_and(done))
            .await;
        match reports.get(&uid) {
            Some(r) if r.state == PodState::Applied => Response::Applied {
                tables,
                generation: r.generation.unwrap_or(0),
                operations: r.patch_ops,
            },
            Some(r) => Response::Failed {
                message: format!(
                    "pod {pod}: {}",
                    r.error.unwrap_or_else(|| format!("{:?}", r.state))
                ),
            },
            None => Response::Failed {
                message: format!("pod {pod}: its worker stopped"),
            },
        }
    }

    async fn check(&self, pod: &PodRef, container_id: &str, fd: Option<OwnedFd>) -> Response {
        let (fd, _) = match self.namespace(pod, fd) {
            Ok(x) => x,
            Err(message) => return Response::Failed { message },
        };
        let target = match self.lookup.target(pod).await {
            Ok(t) => t,
            Err(message) => return Response::Failed { message },
        };
        if target.hold {
            return Response::Done; // tables kept as they are: nothing to compare with
        }
        let desired = target.desired.unwrap_or_default();
        let netns = Netns::Fd(Arc::new(fd));
        let planned = tokio::task::spawn_blocking(move || {
            let mut rec = Reconciler::new(Socket::open(&netns)?, ReconcileOptions::default());
            rec.adopt_marked()?;
            let (patch, _) = rec.plan(&desired, false)?;
            Ok::<_, linx_netfilter::Error>((patch.len(), patch.render(&desired)))
        })
        .await;
        match planned {
            Ok(Ok((0, _))) => Response::Done,
            Ok(Ok((n, ops))) => Response::Failed {
                message: format!(
                    "sandbox {container_id}: {n} operation(s) away from the desired firewall:\n{ops}"
                ),
            },
            Ok(Err(e)) => Response::Failed {
                message: format!("sandbox {container_id}: {e}"),
            },
            Err(e) => Response::Failed {
                message: format!("check task failed: {e}"),
            },
        }
    }
}

/// `family name` of each table, as `nft list tables` names them.
fn table_names(rs: &Ruleset) -> Vec<String> {
    rs.tables
        .iter()
        .map(|t| format!("{} {}", t.family.name(), t.name))
        .collect()
}

fn bind_socket(path: &Path) -> Result<AsyncFd<OwnedFd>, EndpointError> {
    let bound = || -> std::io::Result<AsyncFd<OwnedFd>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // A socket file left by an earlier agent: nobody listens there.
        let _ = std::fs::remove_file(path);
        let sock = socket::socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        bind(sock.as_raw_fd(), &UnixAddr::new(path)?)?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        socket::listen(&sock, Backlog::new(256).unwrap_or(Backlog::MAXCONN))?;
        register(sock)
    };
    bound().map_err(|source| EndpointError::Listen {
        path: path.to_owned(),
        source,
    })
}

async fn accept(listener: &AsyncFd<OwnedFd>) -> std::io::Result<AsyncFd<OwnedFd>> {
    let fd = listener
        .async_io(Interest::READABLE, |l| {
            socket::accept4(l, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK)
                .map_err(std::io::Error::from)
        })
        .await?;
    register(fd)
}

fn register(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd's descriptor stays open, and the same, until the
    // OwnedFd is dropped, which happens with the AsyncFd that owns it.
    unsafe { AsyncFd::register(fd) }.map_err(std::io::Error::from)
}

/// This process's effective user (the owner of its `/proc` directory).
fn own_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}
