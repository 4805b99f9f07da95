//! Everything that touches processes: spawning into a process group with a
//! parent-death signal and handed-over sockets, signalling groups, reaping, RSS,
//! and the daemon's own subreaper and leftover-process duties.

pub mod reaper;
pub mod rss;
pub mod signal;
pub mod sockets;
pub mod spawn;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Makes the daemon a child subreaper: orphaned descendants of its instances are
/// reparented to it (and reaped by [`reaper`]) instead of to PID 1, which on these
/// machines does not reap.
pub fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)
}

/// Drops the daemon's cold code from its resident set.
///
/// A daemon's start-up runs a lot of code once (argument parsing, config, TLS and
/// gRPC setup) that its steady state never touches again, and by default a page
/// fault in a file mapping also maps the cached pages around it (fault-around,
/// 64 KiB). Together they leave most of the binary and of libc resident for good.
/// Here every executable file mapping is marked `MADV_RANDOM` (no fault-around:
/// later faults map just the page used) and its pages are unmapped with
/// `MADV_DONTNEED`; the code actually run comes back, page by page, from the page
/// cache. Only `r-xp` mappings are touched: executable code is never modified in
/// place (no text relocations in Rust or glibc), so dropping it loses nothing.
/// Best effort: on any error nothing changes.
pub fn trim_resident_code() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or("");
        if perms != "r-xp" || !path.starts_with('/') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let addr = start as *mut libc::c_void;
        // SAFETY: advice on our own read-only, executable file mappings; their
        // contents are the file's, so unmapped pages fault back in unchanged.
        unsafe {
            libc::madvise(addr, end - start, libc::MADV_RANDOM);
            libc::madvise(addr, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// Pids whose parent is this process: what is left after every instance stopped is
/// an orphan that was reparented to us. Scans `/proc` (only done at shutdown).
pub fn own_children() -> Vec<Pid> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| parent_of(pid) == Some(me))
        .map(Pid::from_raw)
        .collect()
}

/// The parent pid from `/proc/PID/stat` (the field after the parenthesised name,
/// which may itself contain spaces and parentheses).
fn parent_of(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// SIGKILLs every remaining child of the daemon and its process group.
pub fn kill_leftovers() -> usize {
    let children = own_children();
    for &pid in &children {
        let _ = signal::signal_group(pid, Signal::SIGKILL);
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    }
    children.len()
}
