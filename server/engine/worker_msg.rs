//! What the engine and an attached SDK worker say to each other, in engine terms.
//! The gRPC facade (`grpc::worker_channel`) translates these to and from the proto.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
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

/// The engine's way to one attached worker: two queues, so that a control
/// message (`Stop`) never waits behind application messages. A worker that is
/// slow to read its messages fills the data queue; `Stop` still goes ahead of
/// them and is never refused.
///
/// One link per attached worker, hundreds per daemon: the queues take no
/// memory until something is queued (a channel would allocate a block of
/// slots for each queue up front, a few KiB per worker).
#[derive(Clone, Debug)]
pub struct WorkerLink {
    /// Shared by the clones of this link: the inbox ends when the last is dropped.
    sender: Arc<Sender>,
}

/// The receiving end of a [`WorkerLink`], drained by the transport: control first.
#[derive(Debug)]
pub struct WorkerInbox {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queues: Mutex<Queues>,
    /// The data queue's bound.
    capacity: usize,
}

#[derive(Debug, Default)]
struct Queues {
    /// `Stop` only: a handful per process at most, so it needs no bound.
    control: VecDeque<ToWorker>,
    data: VecDeque<ToWorker>,
    /// The inbox's task, waiting for a message.
    waker: Option<Waker>,
    /// Every link is gone: the inbox ends once the queues are empty.
    senders_gone: bool,
    /// The inbox is gone: nothing is taken any more.
    receiver_gone: bool,
}

/// Dropped with the last clone of a link.
#[derive(Debug)]
struct Sender(Arc<Shared>);

impl Drop for Sender {
    fn drop(&mut self) {
        let waker = {
            let mut queues = self.0.lock();
            queues.senders_gone = true;
            queues.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for WorkerInbox {
    fn drop(&mut self) {
        let mut queues = self.shared.lock();
        queues.receiver_gone = true;
        queues.control.clear();
        queues.data.clear();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        // The queues stay consistent even if a holder panicked: each change is
        // one push or pop.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl WorkerLink {
    /// A link whose data queue holds `queue` messages.
    pub fn new(queue: usize) -> (WorkerLink, WorkerInbox) {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            capacity: queue,
        });
        let link = WorkerLink {
            sender: Arc::new(Sender(Arc::clone(&shared))),
        };
        (link, WorkerInbox { shared })
    }

    /// Queues `message` without waiting. An application message is handed back
    /// when the data queue is full; either kind when the worker's stream is gone.
    pub fn try_send(&self, message: ToWorker) -> Result<(), ToWorker> {
        let shared = &self.sender.0;
        let waker = {
            let mut queues = shared.lock();
            if queues.receiver_gone {
                return Err(message);
            }
            match message {
                ToWorker::Stop { .. } => queues.control.push_back(message),
                ToWorker::Message(_) if queues.data.len() >= shared.capacity => {
                    return Err(message)
                }
                ToWorker::Message(_) => queues.data.push_back(message),
            }
            queues.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl WorkerInbox {
    /// The next message for the worker, control messages first; `None` once the
    /// engine dropped the link and everything queued was taken.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<ToWorker>> {
        let mut queues = self.shared.lock();
        if let Some(message) = queues.control.pop_front() {
            return Poll::Ready(Some(message));
        }
        if let Some(message) = queues.data.pop_front() {
            return Poll::Ready(Some(message));
        }
        if queues.senders_gone {
            return Poll::Ready(None);
        }
        queues.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    fn stop() -> ToWorker {
        ToWorker::Stop {
            reason: StopReason::Stop,
            deadline: Duration::from_secs(1),
        }
    }

    fn message(n: u8) -> ToWorker {
        ToWorker::Message(vec![n])
    }

    #[tokio::test]
    async fn stop_goes_ahead_of_queued_messages_and_is_never_refused() {
        let (link, mut inbox) = WorkerLink::new(2);
        assert!(link.try_send(message(1)).is_ok());
        assert!(link.try_send(message(2)).is_ok());
        assert!(link.try_send(message(3)).is_err(), "the data queue is full");
        assert!(link.try_send(stop()).is_ok());
        let first = poll_fn(|cx| inbox.poll_recv(cx)).await;
        assert!(matches!(first, Some(ToWorker::Stop { .. })));
        let second = poll_fn(|cx| inbox.poll_recv(cx)).await;
        assert!(matches!(second, Some(ToWorker::Message(ref m)) if m == &[1]));
    }

    #[tokio::test]
    async fn the_inbox_ends_when_the_last_clone_of_the_link_is_dropped() {
        let (link, mut inbox) = WorkerLink::new(4);
        let clone = link.clone();
        drop(link);
        assert!(clone.try_send(message(1)).is_ok());
        let waiter = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(m) = poll_fn(|cx| inbox.poll_recv(cx)).await {
                got.push(m);
            }
            got.len()
        });
        tokio::task::yield_now().await;
        drop(clone);
        let taken = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the inbox ends")
            .expect("task");
        assert_eq!(taken, 1, "what was queued is still taken");
    }

    #[tokio::test]
    async fn nothing_is_queued_once_the_inbox_is_gone() {
        let (link, inbox) = WorkerLink::new(4);
        drop(inbox);
        assert!(link.try_send(stop()).is_err());
        assert!(link.try_send(message(1)).is_err());
    }
}
