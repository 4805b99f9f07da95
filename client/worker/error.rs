//! The worker SDK's one error type.

use std::path::PathBuf;

use super::StopReason;
use crate::transport::ConnectError;

/// What can go wrong in a worker, each with the context a user needs to act on it.
///
/// `Debug` prints the same single line as `Display`, so a `main` that returns
/// `Result<(), WorkerError>` reports a failure as one readable line on stderr
/// (`Error: infantd at /run/infant.sock rejected worker 3: wrong token`) and exits
/// with status 1 — what the daemon and a human at a terminal both want to see.
#[derive(thiserror::Error)]
pub enum WorkerError {
    /// An `INFANT_*` variable the daemon sets is missing or malformed.
    #[error("bad environment: {var}: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The daemon's worker socket could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),

    /// The daemon refused the worker (wrong id, token or peer process).
    #[error("infantd at {} rejected worker {id}: {}", socket.display(), status.message())]
    Rejected {
        /// The worker socket.
        socket: PathBuf,
        /// The worker id that was presented.
        id: u64,
        /// The status the daemon ended the stream with.
        status: tonic::Status,
    },

    /// The daemon did not answer `Hello` with `Welcome`.
    #[error("handshake with infantd at {} failed: {reason}", socket.display())]
    Handshake {
        /// The worker socket.
        socket: PathBuf,
        /// What happened instead.
        reason: String,
    },

    /// A signal listener could not be installed.
    #[error("cannot listen for {signal}: {source}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// What the OS reported.
        source: std::io::Error,
    },

    /// A message is larger than the daemon accepts ([`super::MAX_MESSAGE`]).
    #[error("message of {len} bytes is larger than the {max}-byte limit")]
    MessageTooLarge {
        /// The payload's size.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The start hook failed; under a daemon it was reported with `Failed`.
    #[error("start failed: {0}")]
    StartFailed(String),

    /// The stop hook failed. Under a daemon `Stopped` was still sent.
    #[error("stop failed: {0}")]
    StopFailed(String),

    /// A second SIGINT/SIGTERM arrived while the stop hook ran (outside a daemon),
    /// and the stop hook was abandoned.
    #[error("stop interrupted by {0}")]
    StopInterrupted(&'static str),

    /// A job's `exec` failed (see [`once`](super::once)).
    #[error("job failed: {0}")]
    JobFailed(String),

    /// A job was told to stop before `exec` finished, and abandoned it (see
    /// [`once`](super::once)).
    #[error("job abandoned: {}", stop_text(.0))]
    JobAbandoned(StopReason),

    /// The daemon went away; the stop hook, if any, has run.
    #[error("lost infantd: {0}")]
    MasterLost(String),

    /// [`Handle::send`](super::Handle::send) outside a daemon: there is no one to
    /// send to.
    #[error("not running under infantd: message not sent")]
    NotSupervised,

    /// [`Handle::send`](super::Handle::send) after the channel to the daemon closed
    /// (the worker has stopped or the daemon is gone).
    #[error("the channel to infantd is closed: message not sent")]
    Closed,
}

impl std::fmt::Debug for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Says why a worker stopped, for an error message.
fn stop_text(reason: &StopReason) -> String {
    match reason {
        StopReason::Daemon { reason, .. } => {
            let why = match reason {
                crate::proto::StopReason::Unspecified | crate::proto::StopReason::Stop => "stop",
                crate::proto::StopReason::Restart => "restart",
                crate::proto::StopReason::Recycle => "recycle",
                crate::proto::StopReason::Scale => "scale down",
                crate::proto::StopReason::Shutdown => "daemon shutdown",
            };
            format!("infantd stopped it ({why})")
        }
        StopReason::Hangup => "SIGHUP".into(),
        StopReason::MasterLost => "lost infantd".into(),
        StopReason::Interrupted => "interrupted".into(),
    }
}
