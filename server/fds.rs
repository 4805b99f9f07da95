//! The daemon's own file descriptors: the open-file limit, raised at start-up,
//! and how many are still free, so that remote clients can be kept from taking
//! the last ones supervision needs (spawn pipes, the control socket, the worker
//! channel).

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors kept free for supervision: remote connections are not accepted
/// while fewer than this are. Enough for a burst of spawns (each needs a few
/// pipes for a moment), local control calls and workers attaching.
pub const RESERVE: u64 = 128;

/// Raises the soft open-file limit to the hard one. Returns `(old, new)` when it
/// changed. The soft default (often 1,024) is sized for programs that use
/// `select`, which the daemon does not; the hard limit is what the system allows.
pub fn raise_limit() -> nix::Result<Option<(u64, u64)>> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft >= hard {
        return Ok(None);
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(Some((soft, hard)))
}

/// Descriptors this process may still open: the soft limit less those open.
/// `0` if either cannot be read (reading needs a descriptor too).
pub fn free() -> u64 {
    let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    // The listing's own descriptor is counted too, and is closed right after.
    let open = entries.count() as u64;
    soft.saturating_sub(open)
}
