//! The worker under `infantd`: attach, start, serve, stop.
//!
//! One task drives the worker's side with `select!`: the start hook, `Stop` and
//! loss from the link, the message handler, the worker's own
//! [`shutdown`](Handle::shutdown)/[`fail`](Handle::fail) and the signals. The hooks
//! are polled right here rather than spawned, so they need not be `Send` and a
//! `Stop` during the start hook can abandon it. The stream itself, and the
//! heartbeats, live on the link's thread ([`super::link`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Pid;
use tokio::sync::{mpsc, watch};

use super::env::Supervision;
use super::error::{BoxError, StartError};
use super::link::{self, Control, Ended, FromDaemon, Link};
use super::signals::{Received, Signals};
use super::{
    hooks, process, End, Handle, Identity, MessageHandler, StopReason, Worker, WorkerError,
};

/// How long a worker that has sent its last message waits, without progress, for
/// the daemon to close the stream (which proves everything arrived) before it
/// exits anyway and counts what was not delivered.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// A call of the message handler in progress, panics caught.
type Handling = Pin<Box<dyn Future<Output = Result<(), StartError>> + Send>>;

/// How serving ended.
pub(super) enum Ending {
    /// Asked to stop (`Stop`, SIGHUP, [`Handle::shutdown`]).
    Stop(StopReason),
    /// The stream to the daemon broke or the daemon died; why.
    Lost(String),
    /// [`Handle::fail`], or a panicking message handler.
    Failed(StartError),
}

/// Runs `worker` attached to the daemon described by `supervision`.
pub(super) async fn run<S, SFut, SE, T, TFut, TE>(
    worker: Worker,
    supervision: Supervision,
    parent: Pid,
    mut signals: Signals,
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
    let mut session = Session::attach(worker, supervision, parent).await?;
    let ending = if process::orphaned(parent) {
        Ending::Lost("the daemon exited during the handshake".into())
    } else {
        session.serve(start, &mut signals).await?
    };
    session.stop(ending, stop).await
}

/// An attached worker's state.
pub(super) struct Session {
    pub(super) handle: Handle,
    daemon: mpsc::UnboundedReceiver<FromDaemon>,
    messages: mpsc::Receiver<Vec<u8>>,
    on_message: Option<MessageHandler>,
    /// The message handler's call in progress, if any.
    handling: Option<Handling>,
    ended: watch::Receiver<Option<Ended>>,
    delivered: Arc<std::sync::atomic::AtomicU64>,
    /// The parent pid at startup: the daemon, unless a wrapper sits between.
    parent: Pid,
    /// Why the daemon is gone, once it is.
    lost: Option<String>,
}

impl Session {
    /// Starts the link (which says `Hello` and waits for `Welcome`), then sets up
    /// the worker's [`Handle`], the parent-death signal and the parent watcher.
    /// The caller checks [`process::orphaned`] next: a daemon that died before
    /// the signal was in place sends none.
    pub(super) async fn attach(
        worker: Worker,
        supervision: Supervision,
        parent: Pid,
    ) -> Result<Self, WorkerError> {
        let Link {
            outbound,
            program,
            stop_timeout,
            counters,
            daemon,
            daemon_tx,
            messages,
            ended,
            delivered,
        } = link::attach(&supervision).await?;
        let program = if program.is_empty() {
            supervision.program.unwrap_or_default()
        } else {
            program
        };
        let identity = Identity {
            id: supervision.id,
            program,
            stop_timeout: stop_timeout.unwrap_or(process::DEFAULT_STOP_TIMEOUT),
        };
        tracing::debug!(id = identity.id, program = %identity.program, "attached to infantd");
        let handle = Handle::new(worker.title, Some(identity), Some(outbound), counters);
        process::hangup_on_parent_death();
        process::watch_parent(parent, move || {
            let _ = daemon_tx.send(FromDaemon::Lost("the daemon exited".into()));
        })?;
        Ok(Session {
            handle,
            daemon,
            messages,
            on_message: worker.on_message,
            handling: None,
            ended,
            delivered,
            parent,
            lost: None,
        })
    }

    /// Runs the start hook, then serves until asked to stop or the daemon is lost.
    /// A failed start hook is reported to the daemon and returned as the error.
    async fn serve<S, SFut, SE>(
        &mut self,
        start: S,
        signals: &mut Signals,
    ) -> Result<Ending, WorkerError>
    where
        S: FnOnce(Handle) -> SFut,
        SFut: Future<Output = Result<(), SE>>,
        SE: Into<BoxError>,
    {
        let started = hooks::start(start, self.handle.clone());
        match self.drive(started, signals).await {
            Ok(Ok(())) => {
                tracing::debug!("started");
                self.handle.set_started();
                self.handle.post(Control::Ready);
            }
            Ok(Err(error)) => return Err(self.fail_start(error).await),
            Err(ending) => return Ok(ending),
        }
        match self
            .drive(std::future::pending::<Infallible>(), signals)
            .await
        {
            Ok(never) => match never {},
            Err(ending) => Ok(ending),
        }
    }

    /// Polls `work` while keeping the worker's side alive: `Stop` and loss,
    /// messages for the handler, the worker's own end, signals. Returns `work`'s
    /// output, or why the worker must stop first, in which case `work` is dropped
    /// (abandoned).
    ///
    /// `work` is polled right here rather than spawned, so it need not be `Send`.
    pub(super) async fn drive<F: Future>(
        &mut self,
        work: F,
        signals: &mut Signals,
    ) -> Result<F::Output, Ending> {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                biased;
                // Checked before the messages: a stop never waits behind them.
                Some(event) = self.daemon.recv() => return Err(match event {
                    FromDaemon::Stop { reason, deadline } => {
                        Ending::Stop(StopReason::Daemon { reason, deadline })
                    }
                    FromDaemon::Lost(why) => Ending::Lost(why),
                }),
                end = self.handle.end_requested() => return Err(match end {
                    End::Shutdown => Ending::Stop(StopReason::Requested),
                    End::Fail(error) => Ending::Failed(error),
                }),
                signal = signals.next() => match signal {
                    // SIGHUP is also the parent-death signal: a daemon that died
                    // is a lost master, not a reload.
                    Received::Hangup => return Err(hangup(self.parent).await),
                    other => tracing::debug!("ignoring {} under infantd", other.name()),
                },
                output = &mut work => return Ok(output),
                handled = poll_handling(&mut self.handling) => {
                    self.handling = None;
                    if let Err(panic) = handled {
                        let error = StartError::error(format!("message handler {panic}"));
                        return Err(Ending::Failed(error));
                    }
                }
                Some(payload) = self.messages.recv(), if self.handling.is_none() => {
                    self.handle_message(payload);
                }
            }
        }
    }

    /// Starts the message handler on `payload`, if there is one.
    fn handle_message(&mut self, payload: Vec<u8>) {
        match &self.on_message {
            Some(handler) => {
                let call = handler(payload, self.handle.clone());
                self.handling = Some(Box::pin(hooks::message(call)));
            }
            None => tracing::debug!("no message handler; dropping a message"),
        }
    }

    /// Runs the stop hook, reports `Stopped` when there is still a daemon to tell,
    /// and turns the outcome into the worker's result.
    async fn stop<T, TFut, TE>(mut self, ending: Ending, stop: T) -> Result<(), WorkerError>
    where
        T: FnOnce(Handle) -> TFut,
        TFut: Future<Output = Result<(), TE>>,
        TE: Into<BoxError>,
    {
        let mut failure = None;
        let reason = match ending {
            Ending::Stop(reason) => reason,
            Ending::Lost(why) => {
                tracing::warn!("lost infantd ({why}); stopping");
                self.lose(why);
                StopReason::MasterLost
            }
            Ending::Failed(error) => {
                tracing::warn!("failed: {error}");
                // After `Ready` too: the daemon records it as the program's error.
                self.handle
                    .post(Control::Failed(hooks::failure_text(&error)));
                failure = Some(error);
                StopReason::Failed
            }
        };
        self.handle.set_stop_reason(reason);
        tracing::debug!(?reason, "stopping");

        let hook = hooks::stop(stop, self.handle.clone());
        let outcome = tokio::select! {
            result = hook => result,
            never = self.keep_alive() => match never {},
        };

        // A SIGHUP can be the parent-death signal of a daemon that was still
        // exiting when it arrived; by now it is gone or it is not.
        if self.lost.is_none() && process::orphaned(self.parent) {
            self.lose("the daemon exited".into());
        }
        if let Some(why) = self.lost.take() {
            if let Err(error) = outcome {
                tracing::warn!("the stop hook failed: {error}");
            }
            process::kill_rest_of_group();
            return Err(WorkerError::MasterLost(why));
        }
        // The hook's error goes to the daemon too: whoever asked for the stop
        // hears why it was not clean.
        let error = outcome
            .as_ref()
            .err()
            .map(|error| hooks::failure_text(error))
            .unwrap_or_default();
        self.handle.post(Control::Stopped(error));
        let flushed = self.flush().await;
        if flushed.is_err() && process::orphaned(self.parent) {
            // The same race, lost later: the SIGHUP came from a dying daemon.
            let why = "the daemon exited".to_string();
            self.lose(why.clone());
            return Err(WorkerError::MasterLost(why));
        }
        if let Some(error) = failure {
            return Err(WorkerError::Failed(error));
        }
        outcome.map_err(WorkerError::StopFailed)?;
        match flushed {
            Err(WorkerError::Undelivered { messages }) if messages > 0 => {
                Err(WorkerError::Undelivered { messages })
            }
            _ => Ok(()),
        }
    }

    /// Ends a session that has no stop hook to run (a job) because of `ending`.
    /// A stop is acknowledged with `Stopped`; a lost daemon arms the watchdog.
    /// Returns the error to end the job with.
    pub(super) async fn abandon(mut self, ending: Ending) -> WorkerError {
        let reason = match ending {
            // As in `stop`: a SIGHUP can come from a daemon that is exiting.
            Ending::Stop(_) if process::orphaned(self.parent) => {
                self.lose("the daemon exited".into());
                return WorkerError::MasterLost("the daemon exited".into());
            }
            Ending::Stop(reason) => reason,
            Ending::Lost(why) => {
                tracing::warn!("lost infantd ({why}); abandoning the job");
                self.lose(why.clone());
                process::kill_rest_of_group();
                return WorkerError::MasterLost(why);
            }
            Ending::Failed(error) => {
                self.handle
                    .post(Control::Failed(hooks::failure_text(&error)));
                let _ = self.flush().await;
                return WorkerError::JobFailed(error);
            }
        };
        self.handle.set_stop_reason(reason);
        tracing::debug!(?reason, "abandoning the job");
        self.handle.post(Control::Stopped(String::new()));
        let _ = self.flush().await;
        WorkerError::JobAbandoned(reason)
    }

    /// Half-closes the stream and waits for the daemon to end it, which proves
    /// everything queued (messages, the last heartbeat) was read, for as long as
    /// the queue keeps draining. `Err` says what went wrong: the stream broke
    /// ([`WorkerError::MasterLost`]) or messages were left
    /// ([`WorkerError::Undelivered`]).
    pub(super) async fn flush(&mut self) -> Result<(), WorkerError> {
        self.handle.close();
        let mut seen = self.delivered.load(Ordering::Relaxed);
        let ended = loop {
            let waited =
                tokio::time::timeout(FLUSH_TIMEOUT, self.ended.wait_for(Option::is_some)).await;
            match waited {
                Ok(Ok(ended)) => break ended.clone().flatten(),
                // The link thread is gone: nothing more can be sent.
                Ok(Err(_)) => break Some("the link to infantd ended".into()),
                Err(_) => {
                    let now = self.delivered.load(Ordering::Relaxed);
                    if now == seen {
                        tracing::debug!("infantd kept the stream open after the last message");
                        break Some("infantd did not read the last messages".into());
                    }
                    seen = now;
                }
            }
        };
        let Some(why) = ended else {
            return Ok(());
        };
        let queued = self.handle.shared.queued.load(Ordering::Relaxed);
        let undelivered = queued.saturating_sub(self.delivered.load(Ordering::Relaxed));
        if undelivered > 0 {
            tracing::warn!("{undelivered} message(s) to infantd were not delivered: {why}");
            return Err(WorkerError::Undelivered {
                messages: undelivered,
            });
        }
        Err(WorkerError::MasterLost(why))
    }

    /// Reports a failed start hook and gives the daemon a moment to read it.
    async fn fail_start(&mut self, error: StartError) -> WorkerError {
        let text = hooks::failure_text(&error);
        tracing::debug!("start failed: {text}");
        self.handle.post(Control::Failed(text));
        let _ = self.flush().await;
        WorkerError::StartFailed(error)
    }

    /// While the stop hook runs: keeps delivering messages, and notices a daemon
    /// that goes away meanwhile. (Heartbeats go on from the link's thread.)
    async fn keep_alive(&mut self) -> Infallible {
        loop {
            tokio::select! {
                biased;
                Some(event) = self.daemon.recv(), if self.lost.is_none() => match event {
                    FromDaemon::Lost(why) => {
                        tracing::warn!("lost infantd while stopping ({why})");
                        self.lose(why);
                    }
                    FromDaemon::Stop { .. } => tracing::debug!("already stopping"),
                },
                handled = poll_handling(&mut self.handling) => {
                    self.handling = None;
                    if let Err(panic) = handled {
                        tracing::warn!("the message handler {panic} while stopping");
                    }
                }
                Some(payload) = self.messages.recv(), if self.handling.is_none() => {
                    self.handle_message(payload);
                }
            }
        }
    }

    /// The daemon is gone: sends fail from now on, and nobody will SIGKILL us,
    /// so a watchdog will.
    fn lose(&mut self, why: String) {
        self.lost = Some(why);
        self.handle.close();
        let window = self
            .handle
            .stop_timeout()
            .unwrap_or(process::DEFAULT_STOP_TIMEOUT);
        process::arm_watchdog(window);
    }
}

/// How long a SIGHUP waits to tell a dying daemon from a reload request.
const HANGUP_SETTLE: Duration = Duration::from_millis(250);

/// What a SIGHUP means. SIGHUP is also the parent-death signal, and the kernel
/// sends that when the daemon's thread that spawned this worker exits: while
/// the rest of a killed daemon is still exiting, the worker is handed to a
/// sibling thread and its parent pid has not changed yet. So a SIGHUP with the
/// parent still there waits a moment for it to go (a lost daemon) before it is
/// taken as the daemon's request for a graceful stop (a reload).
async fn hangup(parent: Pid) -> Ending {
    let waited = tokio::time::Instant::now();
    loop {
        if process::orphaned(parent) {
            return Ending::Lost("the daemon exited".into());
        }
        if waited.elapsed() >= HANGUP_SETTLE {
            return Ending::Stop(StopReason::Hangup);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The message handler's call in progress; pending forever when there is none.
async fn poll_handling(handling: &mut Option<Handling>) -> Result<(), StartError> {
    match handling {
        Some(call) => call.await,
        None => std::future::pending().await,
    }
}
