//! The `Attach` stream: the handshake, and the two directions once attached.
//!
//! Outgoing messages go through an unbounded queue so that
//! [`Handle::send`](super::Handle::send) never blocks or awaits; tonic drains it
//! into the stream. Dropping the queue's only sender half-closes the stream, which
//! is how the worker says it has nothing more to send.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;

use super::env::Supervision;
use super::WorkerError;
use crate::proto::worker_channel_client::WorkerChannelClient;
use crate::proto::{daemon_message, worker_message, DaemonMessage, Hello, Welcome, WorkerMessage};

/// How long the daemon has to answer `Hello`. Generous: a loaded daemon may be
/// spawning many instances at once, but a daemon that never answers must not leave
/// a worker hanging forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a worker that has sent its last message waits for the daemon to close
/// the stream, which proves the message arrived, before it exits anyway.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// The queue into the worker → daemon direction of the stream.
pub(super) type Outbound = mpsc::UnboundedSender<WorkerMessage>;

/// The daemon → worker direction of the stream.
pub(super) type Inbound = Streaming<DaemonMessage>;

/// A worker the daemon has welcomed.
pub(super) struct Attached {
    pub outbound: Outbound,
    pub inbound: Inbound,
    pub welcome: Welcome,
}

/// Connects to the daemon, says `Hello` and waits for `Welcome`.
pub(super) async fn attach(env: &Supervision) -> Result<Attached, WorkerError> {
    let handshake = async {
        let channel = crate::transport::connect_unix(&env.socket).await?;
        let (outbound, queue) = mpsc::unbounded_channel();
        let hello = Hello {
            id: env.id,
            token: env.token.clone(),
            pid: std::process::id(),
        };
        // The receiver is right here, so this cannot fail.
        let _ = outbound.send(message(worker_message::Msg::Hello(hello)));

        let rejected = |status| WorkerError::Rejected {
            socket: env.socket.clone(),
            id: env.id,
            status,
        };
        let mut inbound = WorkerChannelClient::new(channel)
            .attach(UnboundedReceiverStream::new(queue))
            .await
            .map_err(rejected)?
            .into_inner();
        let welcome = match inbound.message().await.map_err(rejected)? {
            Some(DaemonMessage {
                msg: Some(daemon_message::Msg::Welcome(welcome)),
            }) => welcome,
            Some(other) => {
                return Err(handshake_error(
                    env,
                    format!("expected Welcome, got {other:?}"),
                ))
            }
            None => return Err(handshake_error(env, "the daemon closed the stream".into())),
        };
        Ok(Attached {
            outbound,
            inbound,
            welcome,
        })
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .unwrap_or_else(|_| {
            Err(handshake_error(
                env,
                format!("no Welcome within {HANDSHAKE_TIMEOUT:?}"),
            ))
        })
}

fn handshake_error(env: &Supervision, reason: String) -> WorkerError {
    WorkerError::Handshake {
        socket: env.socket.clone(),
        reason,
    }
}

/// Wraps one worker → daemon message.
pub(super) fn message(msg: worker_message::Msg) -> WorkerMessage {
    WorkerMessage { msg: Some(msg) }
}

/// After the outbound side was half-closed: waits, briefly, for the daemon to end
/// the stream, so the last message is on the wire before the process exits.
/// Returns why the stream broke, if it did not end cleanly: the daemon is gone.
pub(super) async fn wait_flushed(inbound: &mut Inbound) -> Option<String> {
    let drained = async {
        loop {
            match inbound.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status.message().to_string()),
            }
        }
    };
    tokio::time::timeout(FLUSH_TIMEOUT, drained)
        .await
        .unwrap_or_else(|_| {
            tracing::debug!("infantd kept the stream open after the last message");
            None
        })
}
