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
//!         .on_message(|payload, handle| async move {
//!             // Answer the daemon (and `infantctl send`) with the same bytes.
//!             let _ = handle.send(payload).await;
//!         })
//!         .run(
//!             |_handle: Handle| async {
//!                 // Bind sockets, load config, warm caches...
//!                 Ok::<(), std::io::Error>(())
//!             },
//!             |handle: Handle| async move {
//!                 // Stop accepting, drain, flush... (`handle.started()` says
//!                 // whether the start hook completed.)
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
//! # What `run` needs and leaves behind
//!
//! - A tokio runtime: call [`Worker::run`] from `#[tokio::main]` (either
//!   flavour). The hooks and the message handler run on the caller's task; they
//!   need not be `Send`.
//! - Signal handlers for SIGHUP, SIGINT and SIGTERM, installed first thing and
//!   kept for the life of the process (tokio cannot uninstall them): after `run`
//!   returns, Ctrl-C no longer ends the process by default.
//! - The process title: the name of the *calling* thread is set to the worker's
//!   title, which is what `ps` shows when that is the main thread (it is under
//!   `#[tokio::main]`).
//! - Under `infantd`, two threads of its own: one carries the stream to the
//!   daemon (heartbeats go out even while the worker's runtime is blocked), one
//!   watches the parent process. Neither outlives a lost daemon by more than its
//!   grace period.
//! - Under `infantd`, the `INFANT_*` variables are removed from the process
//!   environment once read, so the worker's own children do not take themselves
//!   for supervised workers; [`listeners`] does the same with `LISTEN_*`.
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
//!    and its causes and returns [`WorkerError::StartFailed`]; the daemon counts
//!    the instance `ok` only after `Ready`. A panic in the start hook is a failure
//!    too (`panicked: …`);
//! 3. while running, sends a heartbeat with the [`Counters`] every interval, from
//!    its own thread (at once when a count reaches the recycle limit), and hands
//!    each message from the daemon to the message handler, one at a time;
//! 4. on `Stop`, SIGHUP or [`Handle::shutdown`] runs the stop hook, reports
//!    `Stopped` and returns `Ok`; a stop that arrives during the start hook
//!    abandons (drops) it — [`Handle::started`] tells the stop hook. `Stop` never
//!    waits behind queued messages, in the daemon or here. [`Handle::fail`] (or a
//!    panicking message handler) reports `Failed`, runs the stop hook and returns
//!    [`WorkerError::Failed`];
//! 5. when the daemon is lost runs the stop hook and returns
//!    [`WorkerError::MasterLost`]; sends fail with [`WorkerError::Closed`]. A
//!    daemon that died (the parent pid seen at start-up changed) leaves the process
//!    1.5 s to exit; one that only broke the stream, its stop window (10 s if
//!    unknown). Then a watchdog thread ends it with status 1, even if its runtime
//!    is blocked.
//!
//! SIGINT and SIGTERM are ignored: the daemon drives shutdown. The parent-death
//! signal is set to SIGHUP, so a daemon that dies triggers the graceful stop.
//!
//! A program that runs the worker through a shell must `exec` it (`sh -c "exec
//! worker"`): the sockets of `listen` are passed to the daemon's child only
//! (`LISTEN_PID`), and [`listeners`] refuses ones meant for another process.
//!
//! # Standalone
//!
//! Without `INFANT_WORKER_ID` the program runs on its own: the start hook runs,
//! then SIGINT, SIGTERM, SIGHUP or [`Handle::shutdown`] runs the stop hook and
//! [`Worker::run`] returns `Ok`. A second signal during the stop hook abandons it
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
//! `env` reads the `INFANT_*` variables, `link` owns the stream to the daemon (on
//! its own thread), `supervised` and `standalone` are the two lifecycles and
//! `once` the job's, `hooks` calls user code (catching panics), `signals` and
//! `process` deal with the OS, `counters` holds [`Counters`], and `listen` the
//! sockets the daemon hands over ([`listeners`], [`tcp_listener`]) with the
//! counting wrappers for enhanced clusters ([`CountingListener`],
//! [`CountRequestsLayer`]).

mod counters;
mod env;
mod error;
mod hooks;
mod link;
mod listen;
mod once;
mod process;
mod signals;
mod standalone;
mod supervised;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use counters::Counters;
pub use error::{BoxError, StartError, StopError, WorkerError};
pub use listen::{
    listeners, tcp_listener, CountRequests, CountRequestsLayer, CountingListener, Listener,
};
pub use once::once;

/// The largest message payload the daemon accepts from a worker (1 MiB), as
/// for `Send` the other way.
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// A message handler's future, boxed so the worker can hold any handler.
type HandlerFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The message handler: called with each payload the daemon sends; the worker
/// awaits each call before the next message.
type MessageHandler = Arc<dyn Fn(Vec<u8>, Handle) -> HandlerFuture + Send + Sync>;

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

    /// Calls `handler` with every message the daemon sends (`infantctl send`),
    /// and awaits it before handing over the next one (in order, one at a time).
    ///
    /// The handler runs on the worker's task, between the daemon's other
    /// messages: a `Stop` is seen once the current call returns. Spawn a task for
    /// anything long. Heartbeats do not depend on it. A panic in the handler fails
    /// the worker: it reports `Failed("message handler panicked: …")`, runs the
    /// stop hook and [`Worker::run`] returns [`WorkerError::Failed`].
    pub fn on_message<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Vec<u8>, Handle) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_message = Some(Arc::new(
            move |payload: Vec<u8>, handle: Handle| -> HandlerFuture {
                Box::pin(handler(payload, handle))
            },
        ));
        self
    }

    /// Runs the worker: `start`, then serve until told to stop, then `stop`. See
    /// the [module docs](self) for the lifecycle under `infantd` and standalone,
    /// and for what `run` needs (a tokio runtime) and leaves behind (signal
    /// handlers, the calling thread's name).
    ///
    /// Each hook gets a [`Handle`] and may return any error that converts into a
    /// [`BoxError`] (`String`, `std::io::Error`, `anyhow::Error`, ...); it is
    /// reported with its causes. A panic in a hook is caught and reported as
    /// `panicked: …`.
    pub async fn run<S, SFut, SE, T, TFut, TE>(
        mut self,
        start: S,
        stop: T,
    ) -> Result<(), WorkerError>
    where
        S: FnOnce(Handle) -> SFut,
        SFut: Future<Output = Result<(), SE>>,
        SE: Into<BoxError>,
        T: FnOnce(Handle) -> TFut,
        TFut: Future<Output = Result<(), TE>>,
        TE: Into<BoxError>,
    {
        let parent = process::parent();
        // Before anything else: from here on no signal kills us by default.
        let signals = signals::Signals::install()?;
        match env::take_from_process()? {
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
pub async fn child<S, SFut, SE, T, TFut, TE>(
    title: impl Into<String>,
    start: S,
    stop: T,
) -> Result<(), WorkerError>
where
    S: FnOnce(Handle) -> SFut,
    SFut: Future<Output = Result<(), SE>>,
    SE: Into<BoxError>,
    T: FnOnce(Handle) -> TFut,
    TFut: Future<Output = Result<(), TE>>,
    TE: Into<BoxError>,
{
    Worker::new(title).run(start, stop).await
}

/// Why a worker is stopping, as its stop hook can ask [`Handle::stop_reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The daemon sent `Stop`.
    Daemon {
        /// Why the daemon stops the worker.
        reason: DaemonStop,
        /// The time left, from when `Stop` was sent, before the daemon kills the
        /// process group.
        deadline: Duration,
    },
    /// SIGHUP: a reload, or the daemon died (the parent-death signal).
    Hangup,
    /// The stream to the daemon broke, or the daemon died.
    MasterLost,
    /// SIGINT or SIGTERM, outside a daemon.
    Interrupted,
    /// The worker called [`Handle::shutdown`].
    Requested,
    /// The worker called [`Handle::fail`], or its message handler panicked.
    Failed,
}

/// Why the daemon stops a worker (`Stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaemonStop {
    /// `infantctl stop`, or a reason this SDK does not know yet.
    Stop,
    /// A restart: a replacement takes its place.
    Restart,
    /// Recycled after `max_connections` or `max_memory_gain`.
    Recycle,
    /// The cluster was scaled down.
    Scale,
    /// The daemon is shutting down.
    Shutdown,
}

impl std::fmt::Display for DaemonStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DaemonStop::Stop => "stop",
            DaemonStop::Restart => "restart",
            DaemonStop::Recycle => "recycle",
            DaemonStop::Scale => "scale down",
            DaemonStop::Shutdown => "daemon shutdown",
        })
    }
}

/// The worker's side of its supervision: counters, messages to the daemon, who
/// it is, and ending itself. Cheap to clone; every clone is the same worker.
#[derive(Debug, Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    title: String,
    /// `Some` under a daemon: who we are and what the daemon told us.
    supervision: Option<Identity>,
    /// The worker → daemon queues; `None` outside a daemon, and once closed.
    outbound: Mutex<Option<link::Outbound>>,
    /// Cancelled once nothing more can be sent: wakes sends waiting for room.
    closed: CancellationToken,
    counters: Arc<Counters>,
    stop_reason: OnceLock<StopReason>,
    started: AtomicBool,
    /// What [`Handle::shutdown`] or [`Handle::fail`] asked for, first one wins.
    end: Mutex<Option<End>>,
    end_requested: CancellationToken,
    /// Application messages queued for the daemon, for the final flush's count.
    queued: AtomicU64,
}

/// How the worker asked to end.
#[derive(Debug)]
enum End {
    Shutdown,
    Fail(StartError),
}

#[derive(Debug)]
struct Identity {
    id: u64,
    program: String,
    stop_timeout: Duration,
}

impl Handle {
    fn standalone(title: String) -> Self {
        Self::new(title, None, None, Arc::new(Counters::new(0)))
    }

    fn new(
        title: String,
        supervision: Option<Identity>,
        outbound: Option<link::Outbound>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                title,
                supervision,
                outbound: Mutex::new(outbound),
                closed: CancellationToken::new(),
                counters,
                stop_reason: OnceLock::new(),
                started: AtomicBool::new(false),
                end: Mutex::new(None),
                end_requested: CancellationToken::new(),
                queued: AtomicU64::new(0),
            }),
        }
    }

    /// Sends `payload` to the daemon, which publishes it as a `message` event.
    ///
    /// Waits while the queue to the daemon is full (a few messages), so a worker
    /// that sends faster than the daemon reads is slowed down rather than grown
    /// without bound. Outside a daemon this returns
    /// [`WorkerError::NotSupervised`]; once the worker has stopped or the daemon
    /// is gone, [`WorkerError::Closed`]. `Ok` means the message is queued: the
    /// worker's last flush, when it exits, waits for the queue to drain and
    /// reports what could not be delivered ([`WorkerError::Undelivered`]).
    pub async fn send(&self, payload: impl Into<Vec<u8>>) -> Result<(), WorkerError> {
        let (data, payload) = self.prepare(payload.into())?;
        tokio::select! {
            biased;
            _ = self.shared.closed.cancelled() => Err(WorkerError::Closed),
            sent = data.send(link::message_to_daemon(payload)) => {
                sent.map_err(|_| WorkerError::Closed)?;
                self.shared.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Like [`send`](Handle::send), but never waits: a full queue is
    /// [`WorkerError::Full`]. For code that is not async, or that would rather
    /// drop a message than wait.
    pub fn try_send(&self, payload: impl Into<Vec<u8>>) -> Result<(), WorkerError> {
        let (data, payload) = self.prepare(payload.into())?;
        match data.try_send(link::message_to_daemon(payload)) {
            Ok(()) => {
                self.shared.queued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => Err(WorkerError::Full),
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Err(WorkerError::Closed),
        }
    }

    /// Checks a payload and finds the queue for it.
    fn prepare(&self, payload: Vec<u8>) -> Result<(link::Data, Vec<u8>), WorkerError> {
        if !self.is_supervised() {
            return Err(WorkerError::NotSupervised);
        }
        if payload.len() > MAX_MESSAGE {
            return Err(WorkerError::MessageTooLarge {
                len: payload.len(),
                max: MAX_MESSAGE,
            });
        }
        if self.shared.closed.is_cancelled() {
            return Err(WorkerError::Closed);
        }
        let data = self.outbound().as_ref().map(|queues| queues.data.clone());
        data.map(|data| (data, payload)).ok_or(WorkerError::Closed)
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

    /// Whether the start hook completed successfully. The stop hook runs also when
    /// a stop abandoned the start hook: this tells it what there is to undo.
    pub fn started(&self) -> bool {
        self.shared.started.load(Ordering::SeqCst)
    }

    /// Asks the worker to stop as if the daemon had said `Stop`: the stop hook
    /// runs, `Stopped` is reported and [`Worker::run`] returns `Ok` (the daemon
    /// then treats the exit like any other, and may respawn it). Returns at once.
    pub fn shutdown(&self) {
        self.request_end(End::Shutdown);
    }

    /// Ends the worker as failed: `error` (with its causes) is reported to the
    /// daemon, which records it as the program's error, the stop hook runs and
    /// [`Worker::run`] returns [`WorkerError::Failed`]. Returns at once; the first
    /// of `shutdown` and `fail` wins.
    pub fn fail(&self, error: impl Into<BoxError>) {
        self.request_end(End::Fail(StartError::error(error)));
    }

    fn request_end(&self, end: End) {
        let mut slot = self
            .shared
            .end
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(end);
        }
        self.shared.end_requested.cancel();
    }

    /// Waits for [`shutdown`](Handle::shutdown) or [`fail`](Handle::fail), and
    /// takes what was asked.
    async fn end_requested(&self) -> End {
        self.shared.end_requested.cancelled().await;
        let taken = self
            .shared
            .end
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Taken once: a second wait (during the stop hook) never ends.
        match taken {
            Some(end) => end,
            None => std::future::pending().await,
        }
    }

    fn set_started(&self) {
        self.shared.started.store(true, Ordering::SeqCst);
    }

    fn set_stop_reason(&self, reason: StopReason) {
        // The first reason wins: a SIGHUP during a Stop does not rewrite history.
        let _ = self.shared.stop_reason.set(reason);
    }

    /// Queues a control message (`Ready`, `Failed`, `Stopped`) for the daemon;
    /// false when the stream is closed.
    fn post(&self, msg: link::Control) -> bool {
        match self.outbound().as_ref() {
            Some(queues) => queues.post(msg),
            None => false,
        }
    }

    /// Half-closes the stream: nothing more will be sent.
    fn close(&self) {
        self.outbound().take();
        self.shared.closed.cancel();
    }

    fn outbound(&self) -> MutexGuard<'_, Option<link::Outbound>> {
        // A panic while holding this lock cannot leave the queues inconsistent.
        self.shared
            .outbound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
