//! The worker under `infantd`: attach, start, serve, stop.
//!
//! One task drives everything with `select!`: the start hook, the stream from the
//! daemon, the heartbeat timer and the signals. The hooks are polled right here
//! rather than spawned, so they need not be `Send` and a `Stop` during the start
//! hook can abandon it.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use nix::unistd::Pid;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::channel::{self, Attached, Inbound};
use super::env::Supervision;
use super::process;
use super::signals::{Received, Signals};
use super::{Handle, Identity, MessageHandler, StopReason, Worker, WorkerError};
use crate::proto::{daemon_message, worker_message, DaemonMessage, Failed, Heartbeat, Stopped};

/// The heartbeat interval when the daemon did not give one.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// How serving ended.
pub(super) enum Ending {
    /// Asked to stop (`Stop` or SIGHUP).
    Stop(StopReason),
    /// The stream to the daemon broke; why.
    Lost(String),
}

/// Runs `worker` attached to the daemon described by `supervision`.
pub(super) async fn run<S, SFut, T, TFut, E>(
    worker: Worker,
    supervision: Supervision,
    parent: Pid,
    mut signals: Signals,
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
    inbound: Inbound,
    on_message: Option<MessageHandler>,
    heartbeat: Interval,
    /// The parent pid at startup: the daemon, unless a wrapper sits between.
    parent: Pid,
    /// Why the daemon is gone, once it is.
    lost: Option<String>,
}

impl Session {
    /// Connects to the daemon, says `Hello`, and on `Welcome` sets up the
    /// worker's [`Handle`], the heartbeat and the parent-death signal. The caller
    /// checks [`process::orphaned`] next: a daemon that died before the signal was
    /// in place sends none.
    pub(super) async fn attach(
        worker: Worker,
        supervision: Supervision,
        parent: Pid,
    ) -> Result<Self, WorkerError> {
        let Attached {
            outbound,
            inbound,
            welcome,
        } = channel::attach(&supervision).await?;
        let program = if welcome.program.is_empty() {
            supervision.program.unwrap_or_default()
        } else {
            welcome.program
        };
        let stop_timeout =
            positive_ms(welcome.stop_timeout_ms).unwrap_or(process::DEFAULT_STOP_TIMEOUT);
        let identity = Identity {
            id: supervision.id,
            program,
            stop_timeout,
        };
        tracing::debug!(id = identity.id, program = %identity.program, "attached to infantd");
        let handle = Handle::new(
            worker.title,
            Some(identity),
            Some(outbound),
            welcome.max_connections,
        );
        let period = positive_ms(welcome.heartbeat_ms).unwrap_or(DEFAULT_HEARTBEAT);
        let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        process::hangup_on_parent_death();
        Ok(Session {
            handle,
            inbound,
            on_message: worker.on_message,
            heartbeat,
            parent,
            lost: None,
        })
    }

    /// Runs the start hook, then serves until asked to stop or the daemon is lost.
    /// A failed start hook is reported to the daemon and returned as the error.
    async fn serve<S, SFut, E>(
        &mut self,
        start: S,
        signals: &mut Signals,
    ) -> Result<Ending, WorkerError>
    where
        S: FnOnce(Handle) -> SFut,
        SFut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        match self.drive(start(self.handle.clone()), signals).await {
            Ok(Ok(())) => {
                tracing::debug!("started");
                self.handle
                    .post(worker_message::Msg::Ready(Default::default()));
            }
            Ok(Err(error)) => return Err(self.fail(error.to_string()).await),
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

    /// Polls `work` while keeping the worker's side of the stream alive:
    /// heartbeats, messages from the daemon, signals. Returns `work`'s output, or
    /// why the worker must stop first, in which case `work` is dropped (abandoned).
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
                output = &mut work => return Ok(output),
                received = self.inbound.message() => {
                    if let Some(ending) = self.receive(received) {
                        return Err(ending);
                    }
                }
                _ = self.heartbeat.tick() => self.beat(),
                _ = self.handle.counters().limit_reached() => self.beat(),
                signal = signals.next() => match signal {
                    // SIGHUP is also the parent-death signal: a daemon that died
                    // is a lost master, not a reload.
                    Received::Hangup if process::orphaned(self.parent) => {
                        return Err(Ending::Lost("the daemon exited".into()));
                    }
                    Received::Hangup => return Err(Ending::Stop(StopReason::Hangup)),
                    other => tracing::debug!("ignoring {} under infantd", other.name()),
                },
            }
        }
    }

    /// Runs the stop hook, reports `Stopped` when there is still a daemon to tell,
    /// and turns the outcome into the worker's result.
    async fn stop<T, TFut, E>(mut self, ending: Ending, stop: T) -> Result<(), WorkerError>
    where
        T: FnOnce(Handle) -> TFut,
        TFut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let reason = match ending {
            Ending::Stop(reason) => reason,
            Ending::Lost(why) => {
                tracing::warn!("lost infantd ({why}); stopping");
                self.lose(why);
                StopReason::MasterLost
            }
        };
        self.handle.set_stop_reason(reason);
        tracing::debug!(?reason, "stopping");

        let hook = stop(self.handle.clone());
        let outcome = tokio::select! {
            result = hook => result.map_err(|error| error.to_string()),
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
        let stopped = Stopped {
            error: outcome.as_ref().err().cloned().unwrap_or_default(),
        };
        self.handle.post(worker_message::Msg::Stopped(stopped));
        self.handle.close();
        if let Some(why) = channel::wait_flushed(&mut self.inbound).await {
            // The same race, lost later: the SIGHUP came from a dying daemon.
            if process::orphaned(self.parent) {
                self.lose(why.clone());
                return Err(WorkerError::MasterLost(why));
            }
        }
        outcome.map_err(WorkerError::StopFailed)
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
        };
        self.handle.set_stop_reason(reason);
        tracing::debug!(?reason, "abandoning the job");
        self.handle
            .post(worker_message::Msg::Stopped(Default::default()));
        self.finish().await;
        WorkerError::JobAbandoned(reason)
    }

    /// Half-closes the stream and waits, briefly, for the daemon to end it, so
    /// that everything queued (messages, the last heartbeat) is read before the
    /// process exits.
    pub(super) async fn finish(mut self) {
        self.handle.close();
        let _ = channel::wait_flushed(&mut self.inbound).await;
    }

    /// While the stop hook runs: keeps heartbeating and delivering messages, and
    /// notices a daemon that goes away meanwhile.
    async fn keep_alive(&mut self) -> Infallible {
        loop {
            tokio::select! {
                received = self.inbound.message(), if self.lost.is_none() => {
                    match self.receive(received) {
                        Some(Ending::Lost(why)) => {
                            tracing::warn!("lost infantd while stopping ({why})");
                            self.lose(why);
                        }
                        Some(Ending::Stop(_)) => tracing::debug!("already stopping"),
                        None => {}
                    }
                }
                _ = self.heartbeat.tick() => self.beat(),
                _ = self.handle.counters().limit_reached() => self.beat(),
            }
        }
    }

    /// Handles one read from the daemon; returns how serving ends, if it does.
    fn receive(&self, received: Result<Option<DaemonMessage>, tonic::Status>) -> Option<Ending> {
        let msg = match received {
            Ok(Some(DaemonMessage { msg: Some(msg) })) => msg,
            Ok(Some(DaemonMessage { msg: None })) => {
                tracing::debug!("ignoring an empty message from infantd");
                return None;
            }
            Ok(None) => return Some(Ending::Lost("the daemon closed the stream".into())),
            Err(status) => return Some(Ending::Lost(status.message().to_string())),
        };
        match msg {
            daemon_message::Msg::Stop(stop) => Some(Ending::Stop(StopReason::Daemon {
                reason: stop.reason(),
                deadline: positive_ms(stop.deadline_ms).unwrap_or_default(),
            })),
            daemon_message::Msg::Message(message) => {
                match &self.on_message {
                    Some(handler) => handler(message.payload, self.handle.clone()),
                    None => tracing::debug!("no message handler; dropping a message"),
                }
                None
            }
            daemon_message::Msg::Welcome(_) => {
                tracing::debug!("ignoring a second Welcome");
                None
            }
        }
    }

    /// Reports a failed start hook and gives the daemon a moment to read it.
    async fn fail(&mut self, error: String) -> WorkerError {
        tracing::debug!("start failed: {error}");
        let failed = Failed {
            error: error.clone(),
        };
        self.handle.post(worker_message::Msg::Failed(failed));
        self.handle.close();
        let _ = channel::wait_flushed(&mut self.inbound).await;
        WorkerError::StartFailed(error)
    }

    /// Sends the counters now.
    fn beat(&self) {
        let counters = self.handle.counters();
        self.handle.post(worker_message::Msg::Heartbeat(Heartbeat {
            connections: counters.connections(),
            requests: counters.requests(),
        }));
    }

    /// The daemon is gone: nobody will SIGKILL us, so a watchdog will.
    fn lose(&mut self, why: String) {
        self.lost = Some(why);
        let window = self
            .handle
            .stop_timeout()
            .unwrap_or(process::DEFAULT_STOP_TIMEOUT);
        process::arm_watchdog(window);
    }
}

/// A duration from a signed millisecond field; `None` unless positive.
fn positive_ms(ms: i64) -> Option<Duration> {
    u64::try_from(ms)
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}
