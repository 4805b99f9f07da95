//! The guardian: a small process that outlives the daemon just long enough to
//! kill what the daemon started.
//!
//! An instance's parent-death signal reaches only the instance's first process.
//! Its descendants — in its process group, in a new session, double-forked —
//! would survive a `kill -9` of the daemon, holding ports and files. So before
//! its runtime starts, `infantd` forks the guardian: a child in a session of its
//! own (a signal to the daemon's process group does not reach it) that ignores
//! SIGINT, SIGTERM and SIGHUP and blocks reading a pipe whose only writer is the
//! daemon. The daemon tells it of each instance as it spawns and ends
//! (`+PGID TOKEN` and `-PGID TOKEN` lines). When the pipe reaches end of file the
//! daemon is gone, however it went; the guardian then SIGKILLs, for up to a
//! second or until nothing is found:
//! - the daemon's cgroup and everything below it, if the daemon has cgroups;
//! - the process group of every instance it was told of;
//! - every process whose environment carries one of those instances'
//!   `INFANT_TOKEN`s (orphans in a session of their own keep it);
//!
//! then removes the daemon's cgroup and exits.
//!
//! Why a child and not the daemon's parent: the daemon keeps the pid it was
//! started with (the one a service manager and `kill` know). As a child, the
//! guardian cannot inherit the daemon's orphans, so it must be told what to kill,
//! which is why each spawn is announced (and why cgroups, which need no telling,
//! are preferred when available).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use super::cgroup;
use super::contain::{carries_token, is_alive, process_table};

/// How long the guardian keeps looking for processes to kill.
const SWEEP: Duration = Duration::from_secs(1);

/// The daemon's end of the link to its guardian. Dropping it (or the daemon's
/// death) tells the guardian to sweep and exit.
#[derive(Debug)]
pub struct Guardian {
    pid: Pid,
    /// The write end; `None` once closed.
    pipe: Option<OwnedFd>,
    /// Announcements lost to a full pipe.
    dropped: AtomicU64,
}

impl Guardian {
    /// Forks the guardian, which will clean up `cgroup` (the daemon's cgroup, if
    /// it has one) too.
    ///
    /// # Safety
    /// The process must have a single thread: the child runs ordinary Rust code
    /// (it allocates) after the fork.
    pub unsafe fn start(cgroup: Option<&Path>) -> std::io::Result<Guardian> {
        let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        // The daemon must never block on its guardian: a lost announcement is
        // better than a stalled engine.
        let flags = OFlag::from_bits_truncate(fcntl(&write_end, FcntlArg::F_GETFL)?);
        fcntl(&write_end, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        let cgroup = cgroup.map(Path::to_path_buf);
        // SAFETY: the caller guarantees a single thread, so the child may run
        // any code; it never returns from `guard`.
        match unsafe { nix::unistd::fork() }? {
            ForkResult::Child => {
                drop(write_end);
                guard(read_end, cgroup)
            }
            ForkResult::Parent { child } => Ok(Guardian {
                pid: child,
                pipe: Some(write_end),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// The guardian's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Tells the guardian of an instance: its process group and token.
    pub fn watch(&self, pgid: Pid, token: &str) {
        self.send(&format!("+{pgid} {token}\n"));
    }

    /// Tells the guardian an instance has ended and its leftovers were killed.
    pub fn forget(&self, pgid: Pid, token: &str) {
        self.send(&format!("-{pgid} {token}\n"));
    }

    fn send(&self, line: &str) {
        // A line is far below PIPE_BUF: written whole or not at all.
        let Some(pipe) = &self.pipe else { return };
        if nix::unistd::write(pipe, line.as_bytes()).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "the guardian is not reading: announcements lost");
            }
        }
    }
}

impl Drop for Guardian {
    /// Closes the pipe, which sends the guardian on its last sweep (there is
    /// nothing left to find after a clean shutdown), and waits for it to exit,
    /// so that it is not left a zombie.
    fn drop(&mut self) {
        drop(self.pipe.take());
        let deadline = Instant::now() + SWEEP + Duration::from_secs(3);
        while Instant::now() < deadline {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                // Exited, or already reaped by the daemon's reaper.
                _ => return,
            }
        }
        tracing::warn!(pid = %self.pid, "the guardian did not exit");
    }
}

/// The guardian's life: record instances until the daemon is gone, then sweep.
fn guard(pipe: OwnedFd, cgroup: Option<PathBuf>) -> ! {
    let _ = nix::unistd::setsid();
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: SIG_IGN installs no handler.
        unsafe {
            let _ = nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigIgn);
        }
    }
    let daemon = nix::unistd::getppid();
    let mut groups: HashSet<Pid> = HashSet::new();
    let mut tokens: HashSet<String> = HashSet::new();
    let mut reader = BufReader::new(std::fs::File::from(pipe));
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        let Some((pgid, token)) = line.trim_end().get(1..).and_then(|l| l.split_once(' ')) else {
            continue;
        };
        let Ok(pgid) = pgid.parse::<i32>() else {
            continue;
        };
        if line.starts_with('+') {
            groups.insert(Pid::from_raw(pgid));
            tokens.insert(token.to_owned());
        } else {
            groups.remove(&Pid::from_raw(pgid));
            tokens.remove(token);
        }
    }
    grace(&groups);
    let killed = sweep(cgroup.as_deref(), &groups, &tokens);
    if killed > 0 {
        tracing::warn!(
            %daemon,
            killed,
            "infantd is gone: its guardian killed what its instances left"
        );
    }
    if let Some(dir) = &cgroup {
        cgroup::remove_when_empty(dir, Duration::from_secs(2));
    }
    std::process::exit(0)
}

/// How long the instances get, once the daemon is gone, to end on their own
/// before everything is killed: an SDK worker notices the loss within 50 ms and
/// runs its stop hook (telling its clients, flushing), and a plain worker dies
/// of its parent-death signal. Short enough that nothing outlives the daemon by
/// more than a second.
const GRACE: Duration = Duration::from_millis(500);

/// Waits up to [`GRACE`] for every instance leader to end.
fn grace(groups: &HashSet<Pid>) {
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline && groups.iter().any(|&leader| is_alive(leader)) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills everything the daemon left, round after round until a round finds
/// nothing twice or [`SWEEP`] has passed. Returns how many processes it found.
fn sweep(cgroup: Option<&Path>, groups: &HashSet<Pid>, tokens: &HashSet<String>) -> usize {
    let me = nix::unistd::getpid();
    let tokens: Vec<&String> = tokens.iter().collect();
    let deadline = Instant::now() + SWEEP;
    let mut killed = HashSet::new();
    let mut quiet = false;
    loop {
        let mut found = 0;
        if let Some(dir) = cgroup {
            let members: Vec<Pid> = cgroup::members(dir)
                .into_iter()
                .filter(|&p| is_alive(p))
                .collect();
            found += members.len();
            killed.extend(members);
            cgroup::kill(dir);
        }
        for &pgid in groups {
            let _ = nix::sys::signal::killpg(pgid, Signal::SIGKILL);
        }
        if !tokens.is_empty() {
            for process in process_table() {
                if process.pid == me || process.state == 'Z' {
                    continue;
                }
                if groups.contains(&process.pgid)
                    || carries_token(process.pid, &tokens) == Some(true)
                {
                    let _ = nix::sys::signal::kill(process.pid, Signal::SIGKILL);
                    killed.insert(process.pid);
                    found += 1;
                }
            }
        }
        // Two quiet rounds, not one: a process halfway through an exec shows
        // no environment, so one round may miss its token.
        if (found == 0 && quiet) || Instant::now() >= deadline {
            return killed.len();
        }
        quiet = found == 0;
        std::thread::sleep(Duration::from_millis(20));
    }
}
