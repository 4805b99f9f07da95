//! The worker on its own, without `infantd`: start, wait for a signal (or
//! [`Handle::shutdown`]/[`Handle::fail`]), stop.

use std::future::Future;

use super::error::BoxError;
use super::signals::{Received, Signals};
use super::{hooks, End, Handle, StopReason, Worker, WorkerError};

/// Runs `worker` until SIGINT, SIGTERM or SIGHUP, or until it ends itself.
pub(super) async fn run<S, SFut, SE, T, TFut, TE>(
    worker: Worker,
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
    let handle = Handle::standalone(worker.title);
    // A signal (or the worker's own end) during the start hook abandons it and
    // goes straight to stopping.
    let early = tokio::select! {
        result = hooks::start(start, handle.clone()) => {
            result.map_err(WorkerError::StartFailed)?;
            handle.set_started();
            None
        }
        signal = signals.next() => Some(Err(signal)),
        end = handle.end_requested() => Some(Ok(end)),
    };
    let why = match early {
        Some(why) => why,
        None => {
            tracing::debug!("started; waiting for SIGINT, SIGTERM or SIGHUP");
            tokio::select! {
                signal = signals.next() => Err(signal),
                end = handle.end_requested() => Ok(end),
            }
        }
    };
    let mut failure = None;
    let reason = match why {
        Err(signal) => {
            tracing::debug!("{} received; stopping", signal.name());
            match signal {
                Received::Hangup => StopReason::Hangup,
                Received::Interrupt | Received::Terminate => StopReason::Interrupted,
            }
        }
        Ok(End::Shutdown) => StopReason::Requested,
        Ok(End::Fail(error)) => {
            failure = Some(error);
            StopReason::Failed
        }
    };
    handle.set_stop_reason(reason);

    let stopped = tokio::select! {
        result = hooks::stop(stop, handle.clone()) => result.map_err(WorkerError::StopFailed),
        again = signals.next() => Err(WorkerError::StopInterrupted(again.name())),
    };
    match failure {
        Some(error) => Err(WorkerError::Failed(error)),
        None => stopped,
    }
}
