//! Interface names of one network namespace, by index: NFLOG and trace
//! messages carry only the index, and an index means something only in
//! its own namespace.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::netns::Netns;

/// An interface as a message names it: its index, and its name in the
/// message's namespace when it could be found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interface {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Looks names up through a datagram socket made inside the namespace
/// (`SIOCGIFNAME` answers for the socket's namespace), caching each answer:
/// the kernel does not reuse an index while its interface exists, and a
/// renamed interface shows its old name until [`Interfaces::forget`].
pub struct Interfaces {
    sock: OwnedFd,
    names: FxHashMap<u32, Option<String>>,
}

impl Interfaces {
    /// Opens the lookup socket inside `netns`.
    pub fn open(netns: &Netns) -> Result<Self> {
        let fd = netns.run_in(|| {
            // SAFETY: plain socket(2); the descriptor is owned right after.
            let fd =
                unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                // SAFETY: `fd` was just returned by socket(2) and is ours.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        })?;
        let sock = fd.map_err(|source| Error::Io {
            op: "socket for interface names",
            source,
        })?;
        Ok(Interfaces {
            sock,
            names: FxHashMap::default(),
        })
    }

    /// The interface with this index, named when it still exists.
    pub fn get(&mut self, index: u32) -> Interface {
        let name = match self.names.get(&index) {
            Some(n) => n.clone(),
            None => {
                let n = self.lookup(index);
                self.names.insert(index, n.clone());
                n
            }
        };
        Interface { index, name }
    }

    /// Forgets cached names (after interfaces were renamed or recreated).
    pub fn forget(&mut self) {
        self.names.clear();
    }

    fn lookup(&self, index: u32) -> Option<String> {
        // SAFETY: an all-zero ifreq is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        ifr.ifr_ifru.ifru_ifindex = index as libc::c_int;
        // SAFETY: SIOCGIFNAME reads the index and writes the NUL-terminated
        // name into `ifr`, which lives for the call.
        let r = unsafe { libc::ioctl(self.sock.as_raw_fd(), libc::SIOCGIFNAME, &mut ifr) };
        if r < 0 {
            return None;
        }
        let bytes: Vec<u8> = ifr
            .ifr_name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8(bytes).ok()
    }
}
