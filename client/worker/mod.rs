//! The worker SDK: graceful startup and shutdown, heartbeats and messages for a
//! program supervised by `infantd`.
//!
//! A worker is a start hook, a stop hook and, optionally, a message handler:
//!
//! ```no_run
//! use infant::worker::{Handle, Worker, WorkerError};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), WorkerError> {
//!     Worker::new("greeter")
//!         .on_message(|payload, handle| {
//!             // Answer the daemon (and `infantctl send`) with the same bytes.
//!             let _ = handle.send(payload);
//!         })
//!         .run(
//!             |_handle: Handle| async {
//!                 // Bind sockets, load config, warm caches...
//!                 Ok::<(), std::io::Error>(())
//!             },
//!             |_handle: Handle| async {
//!                 // Stop accepting, drain, flush...
//!                 Ok::<(), std::io::Error>(())
//!             },
//!         )
//!         .await
//! }
//! ```
//!
//! [`child`] is the same without a message handler, after infant's
//! `child(title, start, stop)`. A run-once job (infant's `childOnce`) is
//! [`once`]: it runs one `exec` closure and exits 0 or 1.
//!
//! # Under `infantd`
//!
//! The daemon starts each instance with `INFANT_WORKER_ID`, `INFANT_TOKEN`,
//! `INFANT_SOCKET`, `INFANT_PROGRAM` and `INFANT_TITLE` (the program's `title`,
//! which then names the process instead of the code's). [`Worker::run`] then:
//!
//! 1. attaches to the daemon (`Hello`, `Welcome`); a rejected worker returns
//!    [`WorkerError::Rejected`];
//! 2. runs the start hook and reports `Ready`, or `Failed` with the error's text
//!    and returns [`WorkerError::StartFailed`]; the daemon counts the instance `ok`
//!    only after `Ready`;
//! 3. while running, sends a heartbeat with the [`Counters`] every interval (at
//!    once when a count reaches the recycle limit) and hands each message from the
//!    daemon to the message handler;
//! 4. on `Stop` or SIGHUP runs the stop hook, reports `Stopped` and returns `Ok`;
//!    a `Stop` or SIGHUP that arrives during the start hook abandons (drops) it;
//! 5. when the daemon is lost runs the stop hook and returns
//!    [`WorkerError::MasterLost`]. From then on the process has the daemon's stop
//!    window (10 s if unknown) to exit before a watchdog ends it with status 1.
//!
//! SIGINT and SIGTERM are ignored: the daemon drives shutdown. The parent-death
//! signal is set to SIGHUP, so a daemon that dies triggers the graceful stop.
//!
//! # Standalone
//!
//! Without `INFANT_WORKER_ID` the program runs on its own: the start hook runs,
//! then SIGINT, SIGTERM or SIGHUP runs the stop hook and [`Worker::run`] returns
//! `Ok`. A second signal during the stop hook abandons it
//! ([`WorkerError::StopInterrupted`]). [`Handle::send`] returns
//! [`WorkerError::NotSupervised`].
//!
//! # Exit status
//!
//! Return the result from `main`: `Ok` exits 0, and an error prints one line on
//! stderr and exits 1, which is what the daemon expects of a worker that failed.
//!
//! # Layout
//!
//! `env` reads the `INFANT_*` variables, `channel` owns the `Attach` stream,
//! `supervised` and `standalone` are the two lifecycles and `once` the job's,
//! `signals` and `process` deal with the OS, `counters` holds [`Counters`], and
//! `listen` the sockets the daemon hands over ([`listeners`], [`tcp_listener`])
//! with the counting wrappers for enhanced clusters ([`CountingListener`],
//! [`CountRequestsLayer`]).

mod channel;
mod counters;
mod env;
mod error;
mod listen;
mod once;
mod process;
mod signals;
mod standalone;
mod supervised;

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

pub use counters::Counters;
pub use error::WorkerError;
pub use listen::{
    listeners, tcp_listener, CountRequests, CountRequestsLayer, CountingListener, Listener,
};
pub use once::once;

use crate::proto::worker_message;

/// The message handler: called, on the task that drives the worker, with each
/// payload the daemon sends. Spawn a task for anything slow.
/// The largest message payload the daemon accepts from a worker (1 MiB), as
/// for `Send` the other way.
pub const MAX_MESSAGE: usize = 1024 * 1024;

type MessageHandler = Arc<dyn Fn(Vec<u8>, Handle) + Send + Sync>;

/// A worker, built up from its title and optional message handler, then
/// [`run`](Worker::run) with its start and stop hooks.
pub struct Worker {
    title: String,
    on_message: Option<MessageHandler>,
}

impl Worker {
    /// A worker named `title`: its process name (as `ps` shows it, cut to 15
    /// bytes). Under `infantd` the program's configured `title`
    /// (`INFANT_TITLE`) takes its place.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            on_message: None,
        }
    }

    /// Calls `handler` with every message the daemon sends (`infantctl send`).
    /// It runs on the worker's own task: keep it short, or spawn.
    pub fn on_message<F>(mut self, handler: F) -> Self
    where
        F: Fn(Vec<u8>, Handle) + Send + Sync + 'static,
    {
        self.on_message = Some(Arc::new(handler));
        self
    }

    /// Runs the worker: `start`, then serve until told to stop, then `stop`. See
    /// the [module docs](self) for the lifecycle under `infantd` and standalone.
    ///
    /// Both hooks get a [`Handle`]; their errors are reported by their `Display`
    /// text.
    pub async fn run<S, SFut, T, TFut, E>(mut self, start: S, stop: T) -> Result<(), WorkerError>
    where
        S: FnOnce(Handle) -> SFut,
        SFut: Future<Output = Result<(), E>>,
        T: FnOnce(Handle) -> TFut,
        TFut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let parent = process::parent();
        // Before anything else: from here on no signal kills us by default.
        let signals = signals::Signals::install()?;
        match env::from_process()? {
            Some(mut supervision) => {
                if let Some(title) = supervision.title.take() {
                    self.title = title;
                }
                process::set_title(&self.title);
                supervised::run(self, supervision, parent, signals, start, stop).await
            }
            None => {
                process::set_title(&self.title);
                standalone::run(self, signals, start, stop).await
            }
        }
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("title", &self.title)
            .field("on_message", &self.on_message.is_some())
            .finish()
    }
}

/// Runs a worker with no message handler: infant's `child(title, start, stop)`.
/// The same as `Worker::new(title).run(start, stop)`.
pub async fn child<S, SFut, T, TFut, E>(
    title: impl Into<String>,
    start: S,
    stop: T,
) -> Result<(), WorkerError>
where
    S: FnOnce(Handle) -> SFut,
    SFut: Future<Output = Result<(), E>>,
    T: FnOnce(Handle) -> TFut,
    TFut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    Worker::new(title).run(start, stop).await
}

/// Why a worker is stopping, as its stop hook can ask [`Handle::stop_reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The daemon sent `Stop`.
    Daemon {
        /// Why the daemon stops the worker (stop, restart, recycle, ...).
        reason: crate::proto::StopReason,
        /// The time left, from when `Stop` was sent, before the daemon kills the
        /// process group.
        deadline: Duration,
    },
    /// SIGHUP: a reload, or the daemon died (the parent-death signal).
    Hangup,
    /// The stream to the daemon broke.
    MasterLost,
    /// SIGINT or SIGTERM, outside a daemon.
    Interrupted,
}

/// The worker's side of its supervision: counters, messages to the daemon, and
/// who it is. Cheap to clone; every clone is the same worker.
#[derive(Debug, Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    title: String,
    /// `Some` under a daemon: who we are and what the daemon told us.
    supervision: Option<Identity>,
    /// The worker → daemon queue; `None` outside a daemon, and once closed.
    outbound: Mutex<Option<channel::Outbound>>,
    counters: Counters,
    stop_reason: OnceLock<StopReason>,
}

#[derive(Debug)]
struct Identity {
    id: u64,
    program: String,
    stop_timeout: Duration,
}

impl Handle {
    fn standalone(title: String) -> Self {
        Self::new(title, None, None, 0)
    }

    fn new(
        title: String,
        supervision: Option<Identity>,
        outbound: Option<channel::Outbound>,
        max_connections: u64,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                title,
                supervision,
                outbound: Mutex::new(outbound),
                counters: Counters::new(max_connections),
                stop_reason: OnceLock::new(),
            }),
        }
    }

    /// Sends `payload` to the daemon, which publishes it as a `message` event.
    ///
    /// Never blocks: the message is queued for the stream. Outside a daemon this
    /// returns [`WorkerError::NotSupervised`]; once the worker has stopped or the
    /// daemon is gone, [`WorkerError::Closed`].
    pub fn send(&self, payload: impl Into<Vec<u8>>) -> Result<(), WorkerError> {
        if !self.is_supervised() {
            return Err(WorkerError::NotSupervised);
        }
        let payload = payload.into();
        if payload.len() > MAX_MESSAGE {
            return Err(WorkerError::MessageTooLarge {
                len: payload.len(),
                max: MAX_MESSAGE,
            });
        }
        let message = crate::proto::Message { payload };
        if self.post(worker_message::Msg::Message(message)) {
            Ok(())
        } else {
            Err(WorkerError::Closed)
        }
    }

    /// Counts one accepted connection; returns the new total.
    pub fn connection(&self) -> u64 {
        self.shared.counters.connection()
    }

    /// Counts one served request; returns the new total.
    pub fn request(&self) -> u64 {
        self.shared.counters.request()
    }

    /// The connection and request counters reported in heartbeats.
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// The worker's title: the program's configured one under `infantd`, else
    /// the one given to [`Worker::new`].
    pub fn title(&self) -> &str {
        &self.shared.title
    }

    /// Whether the worker runs under `infantd`.
    pub fn is_supervised(&self) -> bool {
        self.shared.supervision.is_some()
    }

    /// The worker's id within its program, under a daemon.
    pub fn id(&self) -> Option<u64> {
        self.shared.supervision.as_ref().map(|identity| identity.id)
    }

    /// The program's name, under a daemon.
    pub fn program(&self) -> Option<&str> {
        let identity = self.shared.supervision.as_ref()?;
        Some(&identity.program)
    }

    /// The stop window the daemon gives this worker, under a daemon.
    pub fn stop_timeout(&self) -> Option<Duration> {
        let identity = self.shared.supervision.as_ref()?;
        Some(identity.stop_timeout)
    }

    /// Why the worker is stopping; `None` until it is.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.shared.stop_reason.get().copied()
    }

    fn set_stop_reason(&self, reason: StopReason) {
        // The first reason wins: a SIGHUP during a Stop does not rewrite history.
        let _ = self.shared.stop_reason.set(reason);
    }

    /// Queues one message for the daemon; false when the stream is closed.
    fn post(&self, msg: worker_message::Msg) -> bool {
        let outbound = self.outbound();
        match outbound.as_ref() {
            Some(queue) => queue.send(channel::message(msg)).is_ok(),
            None => false,
        }
    }

    /// Half-closes the stream: nothing more will be sent.
    fn close(&self) {
        self.outbound().take();
    }

    fn outbound(&self) -> std::sync::MutexGuard<'_, Option<channel::Outbound>> {
        // A panic while holding this lock cannot leave the queue inconsistent.
        self.shared
            .outbound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
