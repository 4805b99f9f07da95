//! The three signals a worker listens for: SIGHUP, SIGINT and SIGTERM.
//!
//! They are installed before anything else runs, so none of them can kill the
//! worker with its default action: under a daemon SIGINT and SIGTERM are ignored
//! (the daemon drives shutdown through `Stop`) and SIGHUP — also the parent-death
//! signal — means a graceful stop. Once tokio installs a handler it stays for the
//! life of the process, even after these listeners are dropped.

use tokio::signal::unix::{signal, Signal, SignalKind};

use super::WorkerError;

/// A signal the worker received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Received {
    Hangup,
    Interrupt,
    Terminate,
}

impl Received {
    pub fn name(self) -> &'static str {
        match self {
            Received::Hangup => "SIGHUP",
            Received::Interrupt => "SIGINT",
            Received::Terminate => "SIGTERM",
        }
    }
}

/// Listeners for SIGHUP, SIGINT and SIGTERM.
pub(super) struct Signals {
    hangup: Signal,
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Installs the listeners.
    pub fn install() -> Result<Self, WorkerError> {
        let listen = |kind: SignalKind, received: Received| {
            signal(kind).map_err(|source| WorkerError::Signal {
                signal: received.name(),
                source,
            })
        };
        Ok(Self {
            hangup: listen(SignalKind::hangup(), Received::Hangup)?,
            interrupt: listen(SignalKind::interrupt(), Received::Interrupt)?,
            terminate: listen(SignalKind::terminate(), Received::Terminate)?,
        })
    }

    /// Waits for the next of the three signals.
    pub async fn next(&mut self) -> Received {
        // recv() yields None only when the runtime shuts down; then nothing is
        // left to wake, so such a listener just never fires.
        tokio::select! {
            Some(()) = self.hangup.recv() => Received::Hangup,
            Some(()) = self.interrupt.recv() => Received::Interrupt,
            Some(()) = self.terminate.recv() => Received::Terminate,
            else => std::future::pending().await,
        }
    }
}
