//! The `WorkerChannel` service: one `Attach` stream per SDK worker.
//!
//! The first message must be `Hello`; the engine checks it against the socket's
//! peer credentials and answers `Welcome`, or the stream ends with
//! PERMISSION_DENIED. After that, worker messages are forwarded to the engine and
//! the engine's messages for the worker are streamed back.

use std::pin::Pin;
use std::time::Duration;

use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status, Streaming};

use crate::daemon::engine::state::StopReason;
use crate::daemon::engine::worker_msg::{FromWorker, Hello, ToWorker, WorkerLink};
use crate::daemon::engine::{Command, EngineHandle};
use crate::proto::{self, daemon_message, worker_channel_server::WorkerChannel, worker_message};

/// How long a new stream may take to say `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued for one worker before `Send` reports it as not reading.
/// (`Stop` has a queue of its own and never waits behind these.)
const QUEUE: usize = 64;
/// The longest `Failed` text kept from a worker: it becomes a program's error,
/// shown by `status` and carried in gRPC status messages, which must stay small.
const MAX_ERROR: usize = 4096;

/// The worker channel service, a thin facade on the engine.
pub struct WorkerChannelService {
    engine: EngineHandle,
}

impl WorkerChannelService {
    /// Serves `engine`.
    pub fn new(engine: EngineHandle) -> Self {
        WorkerChannelService { engine }
    }
}

type DaemonStream = Pin<Box<dyn Stream<Item = Result<proto::DaemonMessage, Status>> + Send>>;

#[tonic::async_trait]
impl WorkerChannel for WorkerChannelService {
    type AttachStream = DaemonStream;

    async fn attach(
        &self,
        request: Request<Streaming<proto::WorkerMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let peer_pid = request
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|info| info.peer_cred)
            .and_then(|cred| cred.pid());
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello within 10 s"))??;
        let Some(proto::WorkerMessage {
            msg: Some(worker_message::Msg::Hello(hello)),
        }) = first
        else {
            return Err(Status::invalid_argument("the first message must be Hello"));
        };
        let (link, mut inbox) = WorkerLink::new(QUEUE);
        let hello = Hello {
            id: hello.id,
            token: hello.token,
            pid: hello.pid,
        };
        let (key, welcome) = self.engine.attach(hello, peer_pid, link).await?;

        let engine = self.engine.clone();
        tokio::spawn(async move {
            // Ends when the worker closes its side or its connection breaks.
            while let Ok(Some(message)) = inbound.message().await {
                let Some(message) = from_worker(message) else {
                    continue;
                };
                if engine
                    .tell(Command::FromWorker(key.clone(), message))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = engine.tell(Command::Detach(key)).await;
        });

        let welcome = proto::DaemonMessage {
            msg: Some(daemon_message::Msg::Welcome(proto::Welcome {
                heartbeat_ms: millis(welcome.heartbeat),
                max_connections: welcome.max_connections,
                stop_timeout_ms: millis(welcome.stop_timeout),
                program: welcome.program,
            })),
        };
        // `Stop` goes ahead of queued messages: the inbox drains control first.
        let queued = futures_util::stream::poll_fn(move |cx| inbox.poll_recv(cx)).map(to_worker);
        let outbound = tokio_stream::once(welcome).chain(queued).map(Ok);
        Ok(Response::new(Box::pin(outbound)))
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn from_worker(message: proto::WorkerMessage) -> Option<FromWorker> {
    Some(match message.msg? {
        // A second Hello on an attached stream means nothing.
        worker_message::Msg::Hello(_) => return None,
        worker_message::Msg::Ready(_) => FromWorker::Ready,
        worker_message::Msg::Failed(failed) => FromWorker::Failed(truncated(failed.error)),
        worker_message::Msg::Heartbeat(beat) => FromWorker::Heartbeat {
            connections: beat.connections,
            requests: beat.requests,
        },
        worker_message::Msg::Message(message) => FromWorker::Message(message.payload),
        worker_message::Msg::Stopped(stopped) if stopped.error.is_empty() => FromWorker::Stopped,
        worker_message::Msg::Stopped(stopped) => FromWorker::StopFailed(stopped.error),
    })
}

fn to_worker(message: ToWorker) -> proto::DaemonMessage {
    let msg = match message {
        ToWorker::Stop { reason, deadline } => daemon_message::Msg::Stop(proto::Stop {
            reason: match reason {
                StopReason::Stop => proto::StopReason::Stop,
                StopReason::Restart => proto::StopReason::Restart,
                StopReason::Recycle => proto::StopReason::Recycle,
                StopReason::Scale => proto::StopReason::Scale,
                StopReason::Shutdown => proto::StopReason::Shutdown,
            }
            .into(),
            deadline_ms: millis(deadline),
        }),
        ToWorker::Message(payload) => daemon_message::Msg::Message(proto::Message { payload }),
    };
    proto::DaemonMessage { msg: Some(msg) }
}

/// `text` cut to at most [`MAX_ERROR`] bytes (on a character boundary), saying
/// how much was cut.
fn truncated(text: String) -> String {
    crate::text::cut_to(text, MAX_ERROR)
}
