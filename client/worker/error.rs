//! The worker SDK's errors: [`WorkerError`] for the SDK itself, and the errors of
//! the start and stop hooks ([`StartError`], [`StopError`]) with their causes.

use std::any::Any;
use std::fmt;
use std::path::PathBuf;

use super::StopReason;

/// Any error a hook may return: `String`, `std::io::Error`, `anyhow::Error`, a
/// `thiserror` type... anything that converts into a boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in a worker, each with the context a user needs to act on it.
///
/// `Debug` prints the same single line as `Display`, so a `main` that returns
/// `Result<(), WorkerError>` reports a failure as one readable line on stderr
/// (`Error: infantd at /run/infant.sock rejected worker 3: wrong token`) and exits
/// with status 1 — what the daemon and a human at a terminal both want to see.
/// The line includes the causes of a hook's error (`start hook failed: cannot
/// load config: No such file or directory`); [`source`](std::error::Error::source)
/// walks them too.
#[derive(thiserror::Error)]
#[non_exhaustive]
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
    #[error("cannot reach infantd at {}: {source}", socket.display())]
    Connect {
        /// The worker socket.
        socket: PathBuf,
        /// Why.
        source: BoxError,
    },

    /// The daemon refused the worker (wrong id, token or peer process).
    #[error("infantd at {} rejected worker {id}: {reason}", socket.display())]
    Rejected {
        /// The worker socket.
        socket: PathBuf,
        /// The worker id that was presented.
        id: u64,
        /// What the daemon said.
        reason: String,
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

    /// The SDK could not start one of its threads.
    #[error("cannot start the {thread} thread: {source}")]
    Thread {
        /// Which one.
        thread: &'static str,
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

    /// [`Handle::try_send`](super::Handle::try_send): the queue to the daemon is
    /// full; [`Handle::send`](super::Handle::send) would wait.
    #[error("the queue to infantd is full: message not sent")]
    Full,

    /// The start hook failed (or panicked); under a daemon it was reported with
    /// `Failed`.
    #[error("start hook failed: {}", report(.0))]
    StartFailed(#[source] StartError),

    /// The stop hook failed (or panicked). Under a daemon `Stopped` was still sent.
    #[error("stop hook failed: {}", report(.0))]
    StopFailed(#[source] StopError),

    /// The worker ended itself with [`Handle::fail`](super::Handle::fail), or its
    /// message handler panicked; the stop hook has run.
    #[error("worker failed: {}", report(.0))]
    Failed(#[source] StartError),

    /// A second SIGINT/SIGTERM arrived while the stop hook ran (outside a daemon),
    /// and the stop hook was abandoned.
    #[error("stop interrupted by {0}")]
    StopInterrupted(&'static str),

    /// A job's `exec` failed (see [`once`](super::once)).
    #[error("job failed: {}", report(.0))]
    JobFailed(#[source] StartError),

    /// A job was told to stop before `exec` finished, and abandoned it (see
    /// [`once`](super::once)).
    #[error("job abandoned: {}", stop_text(.0))]
    JobAbandoned(StopReason),

    /// The daemon went away; the stop hook, if any, has run.
    #[error("lost infantd: {0}")]
    MasterLost(String),

    /// Messages still queued for the daemon when the worker exited could not be
    /// delivered: the daemon stopped reading them.
    #[error("{messages} message(s) to infantd were not delivered")]
    Undelivered {
        /// How many.
        messages: u64,
    },

    /// [`Handle::send`](super::Handle::send) outside a daemon: there is no one to
    /// send to.
    #[error("not running under infantd: message not sent")]
    NotSupervised,

    /// [`Handle::send`](super::Handle::send) after the channel to the daemon closed
    /// (the worker has stopped or the daemon is gone).
    #[error("the channel to infantd is closed: message not sent")]
    Closed,
}

impl fmt::Debug for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why the start hook failed (also a job's `exec`, [`Handle::fail`](super::Handle::fail)
/// and a panicking message handler): the hook's own error, whose causes
/// [`source`](std::error::Error::source) goes on to, or the message of a panic.
#[derive(Debug)]
pub struct StartError(Failure);

/// Why the stop hook failed: the hook's own error, whose causes
/// [`source`](std::error::Error::source) goes on to, or the message of a panic.
#[derive(Debug)]
pub struct StopError(Failure);

#[derive(Debug)]
enum Failure {
    Error(BoxError),
    Panicked(String),
}

macro_rules! hook_error {
    ($name:ident) => {
        impl $name {
            pub(super) fn error(error: impl Into<BoxError>) -> Self {
                Self(Failure::Error(error.into()))
            }

            pub(super) fn panicked(payload: Box<dyn Any + Send>) -> Self {
                Self(Failure::Panicked(panic_message(payload)))
            }

            /// Whether the hook panicked rather than returned an error.
            pub fn is_panic(&self) -> bool {
                matches!(self.0, Failure::Panicked(_))
            }

            /// The error the hook returned; `None` if it panicked.
            pub fn into_inner(self) -> Option<BoxError> {
                match self.0 {
                    Failure::Error(error) => Some(error),
                    Failure::Panicked(_) => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match &self.0 {
                    Failure::Error(error) => fmt::Display::fmt(error, f),
                    Failure::Panicked(message) => write!(f, "panicked: {message}"),
                }
            }
        }

        impl std::error::Error for $name {
            // The hook's error is this error, in a wrapper: its causes come next.
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match &self.0 {
                    Failure::Error(error) => error.source(),
                    Failure::Panicked(_) => None,
                }
            }
        }
    };
}

hook_error!(StartError);
hook_error!(StopError);

/// The text of a panic's payload (`panic!("...")` carries a `&str` or `String`).
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(text) => (*text).to_string(),
            Err(_) => "a non-text panic payload".to_string(),
        },
    }
}

/// `error` and each of its causes, joined with `: `.
pub(super) fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let line = next.to_string();
        // Some errors repeat their cause in their own text; say it once.
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = next.source();
    }
    text
}

/// The longest text the SDK sends as a `Failed` error. The daemon shows it in
/// `status` and in gRPC status messages (HTTP/2 headers), which must stay small.
pub(super) const MAX_ERROR: usize = 4096;

/// `text` cut to at most [`MAX_ERROR`] bytes on a character boundary, saying how
/// much was cut.
pub(super) fn truncated(text: String) -> String {
    crate::text::cut_to(text, MAX_ERROR)
}

/// Says why a worker stopped, for an error message.
fn stop_text(reason: &StopReason) -> String {
    match reason {
        StopReason::Daemon { reason, .. } => format!("infantd stopped it ({reason})"),
        StopReason::Hangup => "SIGHUP".into(),
        StopReason::MasterLost => "lost infantd".into(),
        StopReason::Interrupted => "interrupted".into(),
        StopReason::Requested => "Handle::shutdown".into(),
        StopReason::Failed => "Handle::fail".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot load config")]
    struct Config(#[source] std::io::Error);

    #[test]
    fn a_hook_error_is_reported_with_its_causes() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = WorkerError::StartFailed(StartError::error(Config(io)));
        assert_eq!(
            error.to_string(),
            "start hook failed: cannot load config: no such file"
        );
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("cannot load config"));
    }

    #[test]
    fn a_panic_says_so() {
        let error = StopError::panicked(Box::new("boom"));
        assert!(error.is_panic());
        assert_eq!(error.to_string(), "panicked: boom");
        let error = StopError::panicked(Box::new(String::from("bang")));
        assert_eq!(error.to_string(), "panicked: bang");
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let short = "fine".to_string();
        assert_eq!(truncated(short.clone()), short);
        let long = "é".repeat(MAX_ERROR);
        let cut = truncated(long);
        assert!(cut.len() < MAX_ERROR + 64, "{}", cut.len());
        assert!(cut.ends_with("bytes cut)"), "{cut}");
    }
}
