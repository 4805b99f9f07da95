//! What the engine and an attached SDK worker say to each other, in engine terms.
//! The gRPC facade (`grpc::worker_channel`) translates these to and from the proto.

use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;

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

/// The engine's way to one attached worker: two queues, so that a control
/// message (`Stop`) never waits behind application messages. A worker that is
/// slow to read its messages fills the data queue; `Stop` still goes ahead of
/// them and is never refused.
#[derive(Clone, Debug)]
pub struct WorkerLink {
    data: mpsc::Sender<ToWorker>,
    /// `Stop` only: a handful per process at most, so it needs no bound.
    control: mpsc::UnboundedSender<ToWorker>,
}

/// The receiving end of a [`WorkerLink`], drained by the transport: control first.
#[derive(Debug)]
pub struct WorkerInbox {
    data: mpsc::Receiver<ToWorker>,
    control: mpsc::UnboundedReceiver<ToWorker>,
    control_closed: bool,
}

impl WorkerLink {
    /// A link whose data queue holds `queue` messages.
    pub fn new(queue: usize) -> (WorkerLink, WorkerInbox) {
        let (data, data_rx) = mpsc::channel(queue);
        let (control, control_rx) = mpsc::unbounded_channel();
        let link = WorkerLink { data, control };
        let inbox = WorkerInbox {
            data: data_rx,
            control: control_rx,
            control_closed: false,
        };
        (link, inbox)
    }

    /// Queues `message` without waiting. An application message is handed back
    /// when the data queue is full; either kind when the worker's stream is gone.
    pub fn try_send(&self, message: ToWorker) -> Result<(), ToWorker> {
        match message {
            ToWorker::Stop { .. } => self.control.send(message).map_err(|error| error.0),
            ToWorker::Message(_) => self.data.try_send(message).map_err(|error| match error {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
            }),
        }
    }
}

impl WorkerInbox {
    /// The next message for the worker, control messages first; `None` once the
    /// engine dropped the link and everything queued was taken.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<ToWorker>> {
        if !self.control_closed {
            match self.control.poll_recv(cx) {
                Poll::Ready(Some(message)) => return Poll::Ready(Some(message)),
                Poll::Ready(None) => self.control_closed = true,
                Poll::Pending => {}
            }
        }
        match self.data.poll_recv(cx) {
            Poll::Ready(Some(message)) => Poll::Ready(Some(message)),
            // Both senders live in the one link, so both close together; the
            // control queue's waker is registered while it is open.
            Poll::Ready(None) if self.control_closed => Poll::Ready(None),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}
