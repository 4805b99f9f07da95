//! The control socket: where it lives, who may open it, and making sure only one
//! daemon serves it.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::{Error, Result};

/// A socket file this daemon bound, identified by its inode so that it is removed
/// only while it is still ours: once another process has replaced it (another
/// daemon started on the same path after ours was deleted), the path is theirs.
#[derive(Debug)]
pub struct BoundPath {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl BoundPath {
    /// Records the inode now at `path`, just bound by this process.
    pub fn new(path: &Path) -> std::io::Result<BoundPath> {
        let meta = std::fs::symlink_metadata(path)?;
        Ok(BoundPath {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Removes the path if it is still the socket this daemon bound; returns
    /// whether it did.
    pub fn remove(&self) -> bool {
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.dev() == self.dev && meta.ino() == self.ino => {
                std::fs::remove_file(&self.path).is_ok()
            }
            _ => false,
        }
    }
}

/// Whether a process accepts connections on the Unix socket at `path`. The
/// connect does not block: a live server with a full backlog counts as live.
pub fn answers(path: &Path) -> bool {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let Ok(address) = UnixAddr::new(path) else {
        return false;
    };
    let Ok(fd) = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        // Out of descriptors: say it answers, so that nothing is replaced blindly.
        return true;
    };
    match connect(fd.as_raw_fd(), &address) {
        Ok(()) => true,
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINPROGRESS) => true,
        Err(_) => false,
    }
}

/// Prepares the socket's folder and binds the socket: folder 0700 (created if
/// missing), socket 0600. A socket file nobody answers on is a leftover of a
/// crashed daemon and is replaced; one that answers belongs to a live daemon and
/// is an error.
pub fn bind(path: &Path) -> Result<(tokio::net::UnixListener, BoundPath)> {
    let fail = |reason: String| Error::Socket {
        path: path.to_path_buf(),
        reason,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    }
    if path.as_os_str().len() > 107 {
        return Err(fail("a Unix socket path is at most 107 bytes".into()));
    }

    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(fail(
                "exists and is not a socket; refusing to replace it".into(),
            ));
        }
        if answers(path) {
            return Err(fail("another infantd is already serving on it".into()));
        }
        std::fs::remove_file(path).map_err(|e| fail(format!("cannot remove stale socket: {e}")))?;
    }

    // Bind under a umask that leaves the socket 0600 from its first moment, so no
    // other user can connect in the window before chmod. Nothing else runs yet.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.map_err(|e| fail(e.to_string()))?;
    let bound = BoundPath::new(path).map_err(|e| fail(e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| fail(format!("chmod 0600: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| fail(e.to_string()))?;
    let listener = tokio::net::UnixListener::from_std(listener).map_err(|e| fail(e.to_string()))?;
    Ok((listener, bound))
}

/// Makes the default socket folder private. Only for folders infant owns (the
/// default locations): a folder the user named is theirs to manage.
pub fn secure_default_dir(path: &Path) -> Result<()> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    if !dir.exists() {
        return Ok(()); // bind() creates it 0700
    }
    let meta =
        std::fs::metadata(dir).map_err(|e| Error::io(format!("stat {}", dir.display()), e))?;
    // In a shared /tmp another user could have made the folder first to spy on us.
    if std::os::unix::fs::MetadataExt::uid(&meta) != nix::unistd::geteuid().as_raw() {
        return Err(Error::Socket {
            path: path.to_path_buf(),
            reason: format!("{} belongs to another user", dir.display()),
        });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("chmod 0700 {}", dir.display()), e))?;
    }
    Ok(())
}

/// Binds a new Unix socket of `kind` in Linux's abstract namespace, with a name
/// the kernel picks (autobind): unique in the network namespace, so two daemons
/// never collide on it, not even two that are each PID 1 of a container on one
/// host network, as names made of the daemon's pid would. Returns the socket
/// (non-blocking, close-on-exec) and its address as `@NAME`, the spelling
/// `NOTIFY_SOCKET` and `INFANT_SOCKET` use. `what` names it in errors.
pub fn bind_abstract(
    kind: nix::sys::socket::SockType,
    what: &str,
) -> Result<(std::os::fd::OwnedFd, String)> {
    use nix::sys::socket::{bind, getsockname, socket, AddressFamily, SockFlag, UnixAddr};
    let fail = |e: nix::Error| Error::io(what, std::io::Error::from(e));
    let fd = socket(
        AddressFamily::Unix,
        kind,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(fail)?;
    bind(fd.as_raw_fd(), &UnixAddr::new_unnamed()).map_err(fail)?;
    let bound: UnixAddr = getsockname(fd.as_raw_fd()).map_err(fail)?;
    let Some(name) = bound.as_abstract() else {
        return Err(Error::io(
            what,
            std::io::Error::other("the kernel gave it no abstract name"),
        ));
    };
    let address = format!("@{}", String::from_utf8_lossy(name));
    Ok((fd, address))
}
