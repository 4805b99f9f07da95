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
