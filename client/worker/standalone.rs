//! The worker on its own, without `infantd`: start, wait for a signal, stop.

use std::future::Future;

use super::signals::{Received, Signals};
use super::{Handle, StopReason, Worker, WorkerError};

/// Runs `worker` until SIGINT, SIGTERM or SIGHUP.
pub(super) async fn run<S, SFut, T, TFut, E>(
    worker: Worker,
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
    let handle = Handle::standalone(worker.title);
    // A signal during the start hook abandons it and goes straight to stopping.
    let early = tokio::select! {
        result = start(handle.clone()) => {
            result.map_err(|error| WorkerError::StartFailed(error.to_string()))?;
            None
        }
        signal = signals.next() => Some(signal),
    };
    let signal = match early {
        Some(signal) => signal,
        None => {
            tracing::debug!("started; waiting for SIGINT, SIGTERM or SIGHUP");
            signals.next().await
        }
    };
    tracing::debug!("{} received; stopping", signal.name());
    handle.set_stop_reason(match signal {
        Received::Hangup => StopReason::Hangup,
        Received::Interrupt | Received::Terminate => StopReason::Interrupted,
    });

    tokio::select! {
        result = stop(handle.clone()) => {
            result.map_err(|error| WorkerError::StopFailed(error.to_string()))
        }
        again = signals.next() => Err(WorkerError::StopInterrupted(again.name())),
    }
}
