//! The one place that reaps children.
//!
//! `infantd` is a child subreaper, so besides its instances it inherits every
//! orphaned descendant of theirs; on machines whose PID 1 does not reap, anything it
//! leaves unreaped stays a zombie forever. So the daemon owns all reaping: one task
//! wakes on SIGCHLD and calls `waitpid(-1, WNOHANG)` until nothing is left, and hands
//! each exit to the engine, which knows which pids are instances. Nothing else in
//! the daemon may wait for children (`tokio::process` would lose its statuses).

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// How a reaped process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exited with code {code}"),
            ExitStatus::Signal(sig) => match nix::sys::signal::Signal::try_from(*sig) {
                Ok(s) => write!(f, "killed by {}", s.as_str()),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
        }
    }
}

/// A reaped process.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    /// Its pid.
    pub pid: Pid,
    /// How it ended.
    pub status: ExitStatus,
}

/// Installs the SIGCHLD handler and starts the reaping task. Call before the first
/// spawn so no SIGCHLD is missed.
pub fn start(exits: mpsc::UnboundedSender<Exit>) -> std::io::Result<()> {
    let mut sigchld = signal(SignalKind::child())?;
    tokio::spawn(async move {
        loop {
            reap_all(&exits);
            if sigchld.recv().await.is_none() || exits.is_closed() {
                break;
            }
        }
    });
    Ok(())
}

/// Reaps every child that has exited so far. Also used at shutdown.
pub fn reap_all(exits: &mpsc::UnboundedSender<Exit>) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                let _ = exits.send(Exit {
                    pid,
                    status: ExitStatus::Code(code),
                });
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                let _ = exits.send(Exit {
                    pid,
                    status: ExitStatus::Signal(sig as i32),
                });
            }
            // Stopped/continued children are not exits; nothing more to reap now.
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!("waitpid: {e}");
                break;
            }
        }
    }
}
