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

/// Opens `/dev/null` on any of fds 0, 1 and 2 that is closed. A daemon started
/// with one closed would otherwise hand that number to the next file it opens
/// (a socket, a pipe), and whatever later writes to "stdout" would write there.
pub fn fill_standard() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only asks whether `fd` is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            continue;
        }
        // Opened without O_CLOEXEC on purpose: the lowest free number is `fd`,
        // and it must stay there.
        // SAFETY: a plain open of a constant NUL-terminated path.
        let opened = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if opened >= 0 && opened != fd {
            // SAFETY: closing the descriptor just opened.
            unsafe { libc::close(opened) };
        }
    }
}
