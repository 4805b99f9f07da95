//! The daemon's one error type.
//!
//! Every variant carries what a user needs to find the problem: the program, the
//! field, the worker, the path. The gRPC facade maps each variant to a status code
//! (`grpc::status`); the engine itself knows nothing of gRPC.

use std::path::PathBuf;

/// Everything the supervisor can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No program by this name is defined.
    #[error("program `{0}` not found")]
    UnknownProgram(String),

    /// No live worker with this id in the program.
    #[error("program `{program}`: worker {worker} not found")]
    UnknownWorker {
        /// The program that was asked.
        program: String,
        /// The worker id that matches nothing.
        worker: u64,
    },

    /// A field of a program definition (config table, `Start` spec) is invalid.
    #[error("program `{program}`: `{field}`: {reason}")]
    InvalidField {
        /// The program being defined.
        program: String,
        /// The offending field, as named in the config file.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A request argument that is not part of a program definition is invalid.
    #[error("`{field}`: {reason}")]
    InvalidArgument {
        /// The offending argument.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The request does not fit the program's current state.
    #[error("program `{program}`: {reason}")]
    Precondition {
        /// The program concerned.
        program: String,
        /// Why the request cannot be carried out now.
        reason: String,
    },

    /// A program with this name is already defined and running.
    #[error("program `{0}` is already running")]
    AlreadyRunning(String),

    /// The program's command could not be started at all.
    #[error("program `{program}`: cannot run `{command}`: {reason}")]
    Spawn {
        /// The program concerned.
        program: String,
        /// The executable that was tried.
        command: String,
        /// The OS's reason.
        reason: String,
    },

    /// An instance did not reach `ok`: its start hook failed, or it exited while
    /// starting.
    #[error("program `{program}`: worker {worker} failed to start: {reason}")]
    StartFailed {
        /// The program concerned.
        program: String,
        /// The instance that failed.
        worker: u64,
        /// The worker's error text, or how it exited.
        reason: String,
    },

    /// A `listen` socket could not be bound.
    #[error("program `{program}`: cannot listen on `{address}`: {reason}")]
    Listen {
        /// The program concerned.
        program: String,
        /// The address as configured.
        address: String,
        /// The OS's reason.
        reason: String,
    },

    /// The config file is unreadable or invalid.
    #[error("config {}: {reason}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, with the line where the parser knows it.
        reason: String,
    },

    /// A worker's `Attach` was refused: wrong id, token or peer, or attached twice.
    #[error("worker channel: {0}")]
    AttachRefused(String),

    /// The control socket could not be set up.
    #[error("control socket {}: {reason}", path.display())]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// The daemon is shutting down and takes no new work.
    #[error("infantd is shutting down")]
    ShuttingDown,

    /// An operating-system call failed.
    #[error("{action}: {source}")]
    Io {
        /// What the daemon was doing.
        action: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The daemon's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] saying what was being done.
    pub fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            action: action.into(),
            source,
        }
    }
}
