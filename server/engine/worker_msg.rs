//! What the engine and an attached SDK worker say to each other, in engine terms.
//! The gRPC facade (`grpc::worker_channel`) translates these to and from the proto.

use std::time::Duration;

use super::state::StopReason;

/// A worker's introduction (`Hello`).
#[derive(Clone, Debug)]
pub struct Hello {
    /// `INFANT_WORKER_ID`.
    pub id: u64,
    /// `INFANT_TOKEN`.
    pub token: String,
    /// The pid the worker claims.
    pub pid: u32,
}

/// The engine's answer to a good `Hello`.
#[derive(Clone, Debug)]
pub struct Welcome {
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Recycle threshold, 0 when the program is not enhanced.
    pub max_connections: u64,
    /// The worker's stop window.
    pub stop_timeout: Duration,
    /// Program name.
    pub program: String,
}

/// Identifies one attached process: the token tells a respawned process's stream
/// from its predecessor's, which may still be closing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerKey {
    /// Program name.
    pub program: String,
    /// Worker id.
    pub id: u64,
    /// The process's token.
    pub token: String,
}

/// Engine → worker.
#[derive(Clone, Debug, PartialEq)]
pub enum ToWorker {
    /// Run the stop hook and exit within `deadline`.
    Stop {
        /// Why.
        reason: StopReason,
        /// Time before SIGKILL.
        deadline: Duration,
    },
    /// An application message.
    Message(Vec<u8>),
}

/// Worker → engine (after `Hello`).
#[derive(Clone, Debug, PartialEq)]
pub enum FromWorker {
    /// The start hook finished.
    Ready,
    /// The start hook failed with this text.
    Failed(String),
    /// Counters.
    Heartbeat {
        /// Connections accepted.
        connections: u64,
        /// Requests served.
        requests: u64,
    },
    /// An application message.
    Message(Vec<u8>),
    /// The stop hook finished.
    Stopped,
    /// The stop hook finished with this error.
    StopFailed(String),
}
