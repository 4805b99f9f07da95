//! What the SDK does to its own process: its title, the parent-death signal, and
//! the watchdog that keeps a worker from outliving a lost daemon.

use std::ffi::CString;
use std::sync::Once;
use std::time::Duration;

use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{getppid, Pid};

/// The kernel keeps 15 bytes of a thread name (16 with the NUL).
const NAME_MAX: usize = 15;

/// Sets the calling thread's name — the process name `ps` and `top` show when
/// called on the main thread — from `title`, cut to 15 bytes. Best effort: a title
/// the kernel cannot take is only logged.
pub(super) fn set_title(title: &str) {
    let set = match CString::new(truncate(title, NAME_MAX)) {
        Ok(name) => prctl::set_name(&name).map_err(|error| error.to_string()),
        Err(_) => Err("it contains a NUL byte".to_string()),
    };
    if let Err(error) = set {
        tracing::debug!(title, %error, "cannot set the process name");
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character
/// boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The parent pid now; taken at startup to notice a daemon that died before the
/// parent-death signal below was in place.
pub(super) fn parent() -> Pid {
    getppid()
}

/// Asks for SIGHUP, not the daemon's SIGKILL, when the parent dies, so a lost
/// daemon runs the stop hook. Check [`orphaned`] right after: a parent that died
/// before this call sends no signal.
pub(super) fn hangup_on_parent_death() {
    if let Err(error) = prctl::set_pdeathsig(Signal::SIGHUP) {
        tracing::warn!(%error, "cannot set the parent-death signal");
    }
}

/// Whether the parent seen at startup is gone: the worker was reparented, to init
/// or to a subreaper. The pid seen at startup is the only truth: a parent pid of 1
/// is the daemon itself when it is the init of a container (a PID namespace).
pub(super) fn orphaned(parent_at_start: Pid) -> bool {
    getppid() != parent_at_start
}

/// How often the parent watcher looks at the parent pid.
const PARENT_POLL: Duration = Duration::from_millis(50);

/// How long a worker whose daemon died has to exit, stop hook included: the
/// daemon promises that its instances are gone within 2 s of its death.
pub(super) const LOST_GRACE: Duration = Duration::from_millis(1500);

/// Watches the parent from a plain OS thread: once it is not the one seen at
/// startup, calls `lost` (the graceful path, if the worker's runtime still runs)
/// and ends the process [`LOST_GRACE`] later, whatever it is doing by then.
///
/// The parent-death signal alone cannot keep that promise: it is a catchable
/// SIGHUP, handled by the worker's runtime, which a blocked runtime never runs.
pub(super) fn watch_parent(
    parent: Pid,
    lost: impl FnOnce() + Send + 'static,
) -> Result<(), super::WorkerError> {
    std::thread::Builder::new()
        .name("infant-parent".into())
        .spawn(move || {
            while !orphaned(parent) {
                std::thread::sleep(PARENT_POLL);
            }
            lost();
            std::thread::sleep(LOST_GRACE);
            eprintln!("infant: the daemon died and the worker did not exit within {LOST_GRACE:?}; exiting");
            kill_rest_of_group();
            // SAFETY: _exit only ends the process; it runs no destructors or
            // atexit handlers that could race with the threads still running.
            unsafe { libc::_exit(1) }
        })
        .map(drop)
        .map_err(|source| super::WorkerError::Thread {
            thread: "infant-parent",
            source,
        })
}

/// The stop window a worker gets when the daemon did not say.
pub(super) const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Ends the process with status 1 after `window`, whatever it is doing by then.
///
/// Armed when the daemon is lost: nobody is left to SIGKILL a stop hook that hangs,
/// or a `main` that keeps running after the worker returned. A plain thread, so a
/// runtime blocked by the stop hook cannot hold it up. Armed at most once.
pub(super) fn arm_watchdog(window: Duration) {
    static ARMED: Once = Once::new();
    ARMED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("infant-watchdog".into())
            .spawn(move || {
                std::thread::sleep(window);
                eprintln!(
                    "infant: daemon lost and the worker did not exit within {window:?}; exiting"
                );
                kill_rest_of_group();
                // SAFETY: _exit only ends the process; it runs no destructors or
                // atexit handlers that could race with the threads still running.
                unsafe { libc::_exit(1) }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the exit watchdog");
        }
    });
}

/// SIGKILLs every other process in this worker's process group.
///
/// The daemon kills an instance's whole group when it stops it; a daemon that was
/// killed cannot, and the parent-death signal reaches only the worker itself. So a
/// worker whose daemon is lost takes what it started down with it, or those
/// processes would be orphaned to PID 1.
pub(super) fn kill_rest_of_group() {
    let me = std::process::id();
    let group = nix::unistd::getpgrp().as_raw().unsigned_abs();
    if group != me {
        return; // not a group leader: the group is not ours to kill
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for pid in entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
    {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let pgrp = stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().nth(2))
            .and_then(|field| field.parse::<u32>().ok());
        if pgrp == Some(group) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncates_on_a_character_boundary() {
        assert_eq!(truncate("echo", 15), "echo");
        assert_eq!(truncate("a-very-long-worker-title", 15), "a-very-long-wor");
        // "é" is two bytes: byte 15 falls inside it.
        assert_eq!(truncate("aaaaaaaaaaaaaaé", 15), "aaaaaaaaaaaaaa");
    }
}
