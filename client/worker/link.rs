//! The `Attach` stream to the daemon, carried by a thread of its own.
//!
//! The stream runs on a small runtime in its own OS thread, not on the worker's:
//! heartbeats must go out while user code blocks the worker's runtime (a start
//! hook that sleeps, a CPU-bound handler on a current-thread runtime), or a
//! healthy worker would be killed as hung. The worker's side talks to it through
//! queues:
//!
//! - worker → daemon: control messages (`Ready`, `Failed`, `Stopped`, heartbeats)
//!   on an unbounded queue that always goes first, and application messages on a
//!   bounded one, so [`Handle::send`](super::Handle::send) waits for room instead
//!   of growing without bound. Dropping the worker's senders half-closes the
//!   stream: nothing more will be sent.
//! - daemon → worker: `Stop` (and a lost stream) on a queue of their own, which
//!   the worker checks before its messages, so a `Stop` never waits behind them.
//!   Messages go to a bounded queue; while it is full the thread stops reading the
//!   stream, which pushes back on the daemon.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::Stream;
use tonic::Streaming;

use super::counters::Counters;
use super::env::Supervision;
use super::{DaemonStop, WorkerError};
use crate::proto::worker_channel_client::WorkerChannelClient;
use crate::proto::{
    self, daemon_message, worker_message, DaemonMessage, Failed, Heartbeat, Hello, Stopped,
    WorkerMessage,
};

/// How long the daemon has to answer `Hello`. Generous: a loaded daemon may be
/// spawning many instances at once, but a daemon that never answers must not leave
/// a worker hanging forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Application messages queued for the daemon before `send` waits. Small: each
/// may be 1 MiB.
const DATA_QUEUE: usize = 16;

/// Messages from the daemon waiting for the message handler before the thread
/// stops reading the stream.
const MESSAGE_QUEUE: usize = 64;

/// The heartbeat interval when the daemon did not give one.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// The queue of application messages to the daemon.
pub(super) type Data = mpsc::Sender<WorkerMessage>;

/// The worker's ends of the two queues to the daemon.
#[derive(Debug)]
pub(super) struct Outbound {
    pub data: Data,
    control: mpsc::UnboundedSender<WorkerMessage>,
}

/// A control message to the daemon.
#[derive(Debug)]
pub(super) enum Control {
    Ready,
    Failed(String),
    /// The stop hook's error, empty when it succeeded.
    Stopped(String),
}

impl Outbound {
    /// Queues a control message; false once the stream is gone.
    pub fn post(&self, control: Control) -> bool {
        let msg = match control {
            Control::Ready => worker_message::Msg::Ready(Default::default()),
            Control::Failed(error) => worker_message::Msg::Failed(Failed { error }),
            Control::Stopped(error) => worker_message::Msg::Stopped(Stopped { error }),
        };
        self.control.send(wrap(msg)).is_ok()
    }
}

/// What the daemon tells the worker out of band: checked before its messages.
#[derive(Debug)]
pub(super) enum FromDaemon {
    Stop {
        reason: DaemonStop,
        deadline: Duration,
    },
    /// The stream broke or the daemon died; why.
    Lost(String),
}

/// How the stream ended: `None` when the daemon closed it, else the error.
pub(super) type Ended = Option<String>;

/// A worker the daemon has welcomed, and the thread carrying its stream.
pub(super) struct Link {
    pub outbound: Outbound,
    pub program: String,
    pub stop_timeout: Option<Duration>,
    pub counters: Arc<Counters>,
    /// `Stop` and loss, from the stream or the parent watcher.
    pub daemon: mpsc::UnboundedReceiver<FromDaemon>,
    /// Where the parent watcher reports a dead daemon.
    pub daemon_tx: mpsc::UnboundedSender<FromDaemon>,
    pub messages: mpsc::Receiver<Vec<u8>>,
    /// Set once the stream has ended.
    pub ended: watch::Receiver<Option<Ended>>,
    /// Application messages handed to the stream so far.
    pub delivered: Arc<AtomicU64>,
}

/// Wraps one application message for the daemon.
pub(super) fn message_to_daemon(payload: Vec<u8>) -> WorkerMessage {
    wrap(worker_message::Msg::Message(proto::Message { payload }))
}

fn wrap(msg: worker_message::Msg) -> WorkerMessage {
    WorkerMessage { msg: Some(msg) }
}

/// Starts the link thread, which connects to the daemon, says `Hello` and waits
/// for `Welcome`; then it carries the stream until it ends.
pub(super) async fn attach(env: &Supervision) -> Result<Link, WorkerError> {
    let (reply, attached) = oneshot::channel();
    let thread_env = env.clone();
    std::thread::Builder::new()
        .name("infant-link".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(carry(thread_env, reply)),
                Err(source) => {
                    let _ = reply.send(Err(WorkerError::Thread {
                        thread: "infant-link",
                        source,
                    }));
                }
            }
        })
        .map_err(|source| WorkerError::Thread {
            thread: "infant-link",
            source,
        })?;
    attached.await.unwrap_or_else(|_| {
        Err(handshake_error(
            &env.socket,
            "the link thread ended".to_string(),
        ))
    })
}

/// The link thread's work: the handshake, then the stream.
async fn carry(env: Supervision, reply: oneshot::Sender<Result<Link, WorkerError>>) {
    let (control, control_rx) = mpsc::unbounded_channel();
    let (data, data_rx) = mpsc::channel(DATA_QUEUE);
    let delivered = Arc::new(AtomicU64::new(0));
    let hello = Hello {
        id: env.id,
        token: env.token.clone(),
        pid: std::process::id(),
    };
    // The receiver is right here, so this cannot fail.
    let _ = control.send(wrap(worker_message::Msg::Hello(hello)));
    // Heartbeats must not keep the stream open once the worker closed it.
    let beats = control.downgrade();
    let outgoing = outgoing(control_rx, data_rx, Arc::clone(&delivered));

    let handshake = async {
        let channel = crate::transport::connect_unix(&env.socket)
            .await
            .map_err(|source| WorkerError::Connect {
                socket: env.socket.clone(),
                source: Box::new(source),
            })?;
        let rejected = |status: tonic::Status| WorkerError::Rejected {
            socket: env.socket.clone(),
            id: env.id,
            reason: status.message().to_string(),
        };
        let mut inbound = WorkerChannelClient::new(channel)
            .attach(outgoing)
            .await
            .map_err(rejected)?
            .into_inner();
        match inbound.message().await.map_err(rejected)? {
            Some(DaemonMessage {
                msg: Some(daemon_message::Msg::Welcome(welcome)),
            }) => Ok((inbound, welcome)),
            Some(other) => Err(handshake_error(
                &env.socket,
                format!("expected Welcome, got {other:?}"),
            )),
            None => Err(handshake_error(
                &env.socket,
                "the daemon closed the stream".into(),
            )),
        }
    };
    let (inbound, welcome) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(attached)) => attached,
        Ok(Err(error)) => {
            let _ = reply.send(Err(error));
            return;
        }
        Err(_) => {
            let why = format!("no Welcome within {HANDSHAKE_TIMEOUT:?}");
            let _ = reply.send(Err(handshake_error(&env.socket, why)));
            return;
        }
    };

    let counters = Arc::new(Counters::new(welcome.max_connections));
    let (daemon_tx, daemon) = mpsc::unbounded_channel();
    let (messages_tx, messages) = mpsc::channel(MESSAGE_QUEUE);
    let (ended_tx, ended) = watch::channel(None);
    let link = Link {
        outbound: Outbound { data, control },
        program: welcome.program,
        stop_timeout: positive_ms(welcome.stop_timeout_ms),
        counters: Arc::clone(&counters),
        daemon,
        daemon_tx: daemon_tx.clone(),
        messages,
        ended,
        delivered,
    };
    if reply.send(Ok(link)).is_err() {
        return; // the worker is gone already
    }
    let period = positive_ms(welcome.heartbeat_ms).unwrap_or(DEFAULT_HEARTBEAT);
    let ended = read(inbound, period, &beats, &counters, &daemon_tx, &messages_tx).await;
    let _ = ended_tx.send(Some(ended));
}

/// Reads the daemon's side of the stream and heartbeats, until the stream ends.
async fn read(
    mut inbound: Streaming<DaemonMessage>,
    period: Duration,
    beats: &mpsc::WeakUnboundedSender<WorkerMessage>,
    counters: &Counters,
    daemon: &mpsc::UnboundedSender<FromDaemon>,
    messages: &mpsc::Sender<Vec<u8>>,
) -> Ended {
    let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // A message that found the handler's queue full: the stream is not read
    // until it is in.
    let mut waiting: Option<Vec<u8>> = None;
    loop {
        tokio::select! {
            permit = messages.reserve(), if waiting.is_some() => {
                match (permit, waiting.take()) {
                    (Ok(permit), Some(payload)) => permit.send(payload),
                    // The worker no longer reads messages (it is exiting).
                    _ => tracing::debug!("dropping a message: the worker stopped reading"),
                }
            }
            received = inbound.message(), if waiting.is_none() => {
                let msg = match received {
                    Ok(Some(DaemonMessage { msg: Some(msg) })) => msg,
                    Ok(Some(DaemonMessage { msg: None })) => continue,
                    Ok(None) => {
                        let _ = daemon.send(FromDaemon::Lost("the daemon closed the stream".into()));
                        return None;
                    }
                    Err(status) => {
                        let why = status.message().to_string();
                        let _ = daemon.send(FromDaemon::Lost(why.clone()));
                        return Some(why);
                    }
                };
                match msg {
                    daemon_message::Msg::Stop(stop) => {
                        let _ = daemon.send(FromDaemon::Stop {
                            reason: daemon_stop(stop.reason()),
                            deadline: positive_ms(stop.deadline_ms).unwrap_or_default(),
                        });
                    }
                    daemon_message::Msg::Message(message) => {
                        match messages.try_send(message.payload) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(payload)) => waiting = Some(payload),
                            Err(mpsc::error::TrySendError::Closed(_)) => {
                                tracing::debug!("dropping a message: the worker stopped reading");
                            }
                        }
                    }
                    daemon_message::Msg::Welcome(_) => tracing::debug!("ignoring a second Welcome"),
                }
            }
            _ = heartbeat.tick() => beat(beats, counters),
            _ = counters.limit_reached() => beat(beats, counters),
        }
    }
}

/// Sends the counters now, unless the worker has closed the stream.
fn beat(beats: &mpsc::WeakUnboundedSender<WorkerMessage>, counters: &Counters) {
    if let Some(control) = beats.upgrade() {
        let _ = control.send(wrap(worker_message::Msg::Heartbeat(Heartbeat {
            connections: counters.connections(),
            requests: counters.requests(),
        })));
    }
}

/// The worker → daemon stream: control messages first, then application
/// messages, counting those as they go; it ends once both queues are closed and
/// empty.
fn outgoing(
    mut control: mpsc::UnboundedReceiver<WorkerMessage>,
    mut data: mpsc::Receiver<WorkerMessage>,
    delivered: Arc<AtomicU64>,
) -> impl Stream<Item = WorkerMessage> {
    let mut control_open = true;
    futures_util::stream::poll_fn(move |cx| {
        use std::task::Poll;
        if control_open {
            match control.poll_recv(cx) {
                Poll::Ready(Some(message)) => return Poll::Ready(Some(message)),
                Poll::Ready(None) => control_open = false,
                Poll::Pending => {}
            }
        }
        match data.poll_recv(cx) {
            Poll::Ready(Some(message)) => {
                delivered.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Some(message))
            }
            Poll::Ready(None) if !control_open => Poll::Ready(None),
            // The control queue's waker is registered while it is open.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    })
}

fn daemon_stop(reason: proto::StopReason) -> DaemonStop {
    match reason {
        proto::StopReason::Unspecified | proto::StopReason::Stop => DaemonStop::Stop,
        proto::StopReason::Restart => DaemonStop::Restart,
        proto::StopReason::Recycle => DaemonStop::Recycle,
        proto::StopReason::Scale => DaemonStop::Scale,
        proto::StopReason::Shutdown => DaemonStop::Shutdown,
    }
}

fn handshake_error(socket: &Path, reason: String) -> WorkerError {
    WorkerError::Handshake {
        socket: socket.to_path_buf(),
        reason,
    }
}

/// A duration from a signed millisecond field; `None` unless positive.
pub(super) fn positive_ms(ms: i64) -> Option<Duration> {
    u64::try_from(ms)
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}
