//! The engine's one door to the operating system: spawning, signalling process
//! groups, binding listen sockets and reading a process's resident memory.
//!
//! The engine calls these through [`Os`] so that its state machine — exits,
//! respawns, stops, ordering, scaling, recycling — can be driven in unit tests by
//! a fake that hands out pids and delivers exits itself, with tokio's paused
//! clock for the timers. The daemon runs [`RealOs`], which is
//! [`crate::daemon::process`] and nothing more. Exits do not come through here:
//! they reach the engine on a channel (from the reaper in the daemon).

use std::future::Future;
use std::pin::Pin;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::daemon::process::cpu::{self, Usage};
use crate::daemon::process::sockets::{self, BoundSocket};
use crate::daemon::process::spawn::{self, SpawnError, SpawnRequest};
use crate::daemon::process::{rss, signal};
use crate::daemon::spec::ListenAddr;

/// How a process's exec went: `None` once it exec'd, or why it could not.
pub type ExecOutcome = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// A process on its way to its program.
pub struct Spawned {
    /// Its pid, also its process group.
    pub pid: Pid,
    /// Resolves once the exec succeeded or failed.
    pub exec: ExecOutcome,
}

/// What the engine asks of the operating system.
pub trait Os: Send {
    /// Forks and starts the exec of `request` (see [`spawn::spawn`]).
    fn spawn(&mut self, request: &SpawnRequest<'_>) -> Result<Spawned, SpawnError>;
    /// Sends `signal` to the process group `pgid`; a group already gone is no error.
    fn signal_group(&mut self, pgid: Pid, signal: Signal) -> std::io::Result<()>;
    /// Binds and listens on `addr`.
    fn bind(&mut self, addr: &ListenAddr) -> std::io::Result<BoundSocket>;
    /// The resident memory of `pid` in bytes, `None` if it is gone.
    fn rss_bytes(&self, pid: Pid) -> Option<u64>;
    /// The CPU time and resident memory of `pid`, `None` if it is gone.
    fn usage(&self, pid: Pid) -> Option<Usage>;
}

/// The operating system itself.
pub struct RealOs;

impl Os for RealOs {
    fn spawn(&mut self, request: &SpawnRequest<'_>) -> Result<Spawned, SpawnError> {
        let spawned = spawn::spawn(request)?;
        Ok(Spawned {
            pid: spawned.pid,
            exec: Box::pin(spawn::exec_outcome(spawned.exec_status)),
        })
    }

    fn signal_group(&mut self, pgid: Pid, sig: Signal) -> std::io::Result<()> {
        signal::signal_group(pgid, sig)
    }

    fn bind(&mut self, addr: &ListenAddr) -> std::io::Result<BoundSocket> {
        sockets::bind(addr)
    }

    fn rss_bytes(&self, pid: Pid) -> Option<u64> {
        rss::rss_bytes(pid)
    }

    fn usage(&self, pid: Pid) -> Option<Usage> {
        // One file for both figures.
        cpu::usage(pid)
    }
}
