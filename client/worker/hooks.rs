//! Calling the user's code: the start and stop hooks and the message handler,
//! each behind `catch_unwind`, so a panic becomes an error the worker can report
//! (`panicked: …`) instead of an exit status the daemon cannot explain.
//!
//! A panic unwinds out of the hook's future only: the SDK's own state is not
//! borrowed by it (the hook gets a cloned [`Handle`]), so going on is sound.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::error::{report, truncated, BoxError, StartError, StopError};
use super::{Handle, HandlerFuture};

/// Runs the start hook (or a job's `exec`).
pub(super) async fn start<S, SFut, SE>(hook: S, handle: Handle) -> Result<(), StartError>
where
    S: FnOnce(Handle) -> SFut,
    SFut: Future<Output = Result<(), SE>>,
    SE: Into<BoxError>,
{
    // The call is inside the future too: a hook that panics before returning its
    // future is caught as well.
    match AssertUnwindSafe(async move { hook(handle).await })
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(StartError::error(error)),
        Err(panic) => Err(StartError::panicked(panic)),
    }
}

/// Runs the stop hook.
pub(super) async fn stop<T, TFut, TE>(hook: T, handle: Handle) -> Result<(), StopError>
where
    T: FnOnce(Handle) -> TFut,
    TFut: Future<Output = Result<(), TE>>,
    TE: Into<BoxError>,
{
    match AssertUnwindSafe(async move { hook(handle).await })
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(StopError::error(error)),
        Err(panic) => Err(StopError::panicked(panic)),
    }
}

/// Awaits one call of the message handler; a panic becomes the error that fails
/// the worker.
pub(super) async fn message(call: HandlerFuture) -> Result<(), StartError> {
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(()) => Ok(()),
        Err(panic) => Err(StartError::panicked(panic)),
    }
}

/// The text sent to the daemon for a failure: the error with its causes, cut to
/// a size the daemon shows whole.
pub(super) fn failure_text(error: &dyn std::error::Error) -> String {
    truncated(report(error))
}
