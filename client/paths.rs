//! Where the daemon's control socket lives when nobody says otherwise.
//!
//! The daemon and every client resolve the default the same way:
//! `--socket PATH`, else `$INFANT_SOCKET`, else `$XDG_RUNTIME_DIR/infant/infantd.sock`,
//! else, for root, `/run/infant/infantd.sock`, else `/tmp/infant-$UID/infantd.sock`.
//! (Not `/tmp` for root: a system service often runs with `PrivateTmp=`, where
//! every other process sees a different `/tmp`.)

use std::path::PathBuf;

/// The environment variable naming the daemon's socket (also set for workers).
pub const SOCKET_ENV: &str = "INFANT_SOCKET";

/// The control socket path: `explicit` if given, else the documented fallbacks.
pub fn socket_path(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(path) = explicit {
        return path;
    }
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir).join("infant").join("infantd.sock");
    }
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return PathBuf::from("/run/infant/infantd.sock");
    }
    PathBuf::from(format!("/tmp/infant-{uid}/infantd.sock"))
}
