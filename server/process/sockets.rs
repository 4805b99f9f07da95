//! Listening sockets the daemon owns on behalf of a program.
//!
//! Bound once when the program starts and held until it stops, so respawns,
//! recycles and rolling restarts never leave the port closed: the kernel queues
//! connections on the daemon's socket while no worker is accepting.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;

use crate::daemon::socket::{answers, BoundPath};
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
    /// A Unix socket's file, removed when the socket closes if still ours.
    unix_path: Option<BoundPath>,
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
            path.remove();
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
            // A socket file nobody answers on is left by a crashed run and would
            // make bind fail, so it is replaced. One that answers belongs to a
            // live server (another service, or this daemon's own control
            // socket) and is refused; anything that is not a socket is left
            // alone and bind reports it.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.file_type().is_socket() {
                    if answers(path) {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::AddrInUse,
                            "a server is already listening on it; refusing to replace its socket",
                        ));
                    }
                    std::fs::remove_file(path)?;
                }
            }
            let listener = std::os::unix::net::UnixListener::bind(path)?;
            // Recorded before anything else can happen to the path, so that the
            // file removed at close is the one bound here.
            let bound = BoundPath::new(path)?;
            let fd = OwnedFd::from(listener);
            relisten(&fd)?;
            Ok(BoundSocket {
                local: format!("unix://{}", path.display()),
                fd,
                unix_path: Some(bound),
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
