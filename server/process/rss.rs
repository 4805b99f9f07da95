//! Resident memory of supervised pids, read from `/proc/PID/statm`.
//!
//! A read costs a few microseconds, so listings and the recycle sampler read only
//! the pids they supervise instead of refreshing a whole process table.

use nix::unistd::Pid;

/// The resident set size of `pid` in bytes, or `None` if it is gone.
pub fn rss_bytes(pid: Pid) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// The size of a memory page (`sysconf(_SC_PAGESIZE)`).
pub(super) fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_rss() {
        let rss = rss_bytes(nix::unistd::getpid()).expect("our own statm");
        assert!(rss > 100 * 1024, "{rss}");
        assert!(rss_bytes(Pid::from_raw(i32::MAX)).is_none());
    }
}
