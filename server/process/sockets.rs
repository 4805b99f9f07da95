//! Listening sockets the daemon owns on behalf of a program.
//!
//! Bound once when the program starts and held until it stops, so respawns,
//! recycles and rolling restarts never leave the port closed: the kernel queues
//! connections on the daemon's socket while no worker is accepting.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use crate::daemon::spec::ListenAddr;

/// Connections the kernel queues per socket while workers are busy or being
/// replaced; std's default of 128 is too small for a burst during a restart.
const BACKLOG: i32 = 1024;

/// A bound, listening socket.
#[derive(Debug)]
pub struct BoundSocket {
    /// Where it is bound, with port 0 resolved: `tcp://127.0.0.1:41234`.
    pub local: String,
    fd: OwnedFd,
    unix_path: Option<PathBuf>,
}

impl BoundSocket {
    /// The descriptor to hand to instances.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds and listens on `addr`.
pub fn bind(addr: &ListenAddr) -> std::io::Result<BoundSocket> {
    match addr {
        ListenAddr::Tcp(host_port) => {
            let listener = std::net::TcpListener::bind(host_port.as_str())?;
            let local = format!("tcp://{}", listener.local_addr()?);
            let fd = OwnedFd::from(listener);
            relisten(&fd)?;
            Ok(BoundSocket {
                local,
                fd,
                unix_path: None,
            })
        }
        ListenAddr::Unix(path) => {
            // A socket file left by a crashed run would make bind fail; anything
            // that is not a socket is left alone and reported.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.file_type().is_socket() {
                    std::fs::remove_file(path)?;
                }
            }
            let listener = std::os::unix::net::UnixListener::bind(path)?;
            let fd = OwnedFd::from(listener);
            relisten(&fd)?;
            Ok(BoundSocket {
                local: format!("unix://{}", path.display()),
                fd,
                unix_path: Some(path.clone()),
            })
        }
    }
}

/// Calling listen again on a listening socket raises its backlog.
fn relisten(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: plain syscall on a descriptor we own.
    if unsafe { libc::listen(fd.as_raw_fd(), BACKLOG) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
