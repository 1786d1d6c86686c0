//! Network namespaces, named by path, pid or an open descriptor, and a way
//! to run a closure inside one on a short-lived thread.
//!
//! `setns(CLONE_NEWNET)` changes only the calling thread, and a netlink
//! socket stays in the namespace it was created in. So a socket for another
//! namespace is made on a throwaway thread that enters it, and handed back:
//! no other thread of the process ever changes namespace.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};

/// Which network namespace to work in.
#[derive(Clone, Debug, Default)]
pub enum Netns {
    /// The calling thread's own namespace.
    #[default]
    Current,
    /// A namespace file: `/proc/PID/ns/net`, `/run/netns/NAME`, ...
    Path(PathBuf),
    /// The namespace of a process.
    Pid(u32),
    /// An already opened namespace file, kept open by its holder (so a
    /// reused pid or a recreated path can never redirect it).
    Fd(Arc<OwnedFd>),
}

impl Netns {
    /// Opens the namespace file; `None` for [`Netns::Current`].
    pub fn open(&self) -> Result<Option<OwnedFd>> {
        let err = |source| Error::Netns {
            netns: self.to_string(),
            source,
        };
        match self {
            Netns::Current => Ok(None),
            Netns::Path(p) => File::open(p).map(|f| Some(f.into())).map_err(err),
            Netns::Pid(pid) => File::open(format!("/proc/{pid}/ns/net"))
                .map(|f| Some(f.into()))
                .map_err(err),
            Netns::Fd(fd) => fd.try_clone().map(Some).map_err(err),
        }
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns
    /// its result. The calling thread never changes namespace.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let Some(fd) = self.open()? else {
            return Ok(f());
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::Netns {
                    netns: self.to_string(),
                    source: e.into(),
                })?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// The namespace's identity (device and inode of its nsfs file).
    pub fn inode(&self) -> Result<(u64, u64)> {
        let st = match self.open()? {
            Some(fd) => nix::sys::stat::fstat(fd.as_fd()),
            None => nix::sys::stat::stat("/proc/thread-self/ns/net"),
        }
        .map_err(|e| Error::Netns {
            netns: self.to_string(),
            source: e.into(),
        })?;
        Ok((st.st_dev, st.st_ino))
    }
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netns::Current => f.write_str("current"),
            Netns::Path(p) => write!(f, "{}", p.display()),
            Netns::Pid(pid) => write!(f, "pid:{pid}"),
            Netns::Fd(fd) => {
                use std::os::fd::AsRawFd;
                write!(f, "fd:{}", fd.as_raw_fd())
            }
        }
    }
}

impl FromStr for Netns {
    type Err = String;
    /// `current`, `pid:N`, or a path.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "current" {
            return Ok(Netns::Current);
        }
        if let Some(pid) = s.strip_prefix("pid:") {
            return pid
                .parse()
                .map(Netns::Pid)
                .map_err(|_| format!("bad pid in {s:?}"));
        }
        if s.is_empty() {
            return Err("empty network namespace path".into());
        }
        Ok(Netns::Path(s.into()))
    }
}
