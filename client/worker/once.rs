//! Run-once jobs: infant's `childOnce(title, exec)`.
//!
//! A job has no start phase and no stop hook: it runs `exec` and exits, and its
//! exit status is the outcome, which the daemon honours for a `once` program.
//!
//! Under `infantd` the job still attaches like a worker: `Hello`, `Welcome`, then
//! `Ready` at once (there is nothing to wait for), then `exec` runs while the SDK
//! keeps heartbeating — a long job is not taken for a hung one — and delivers
//! messages. It reuses the supervised worker's session rather than a protocol of
//! its own.

use std::future::Future;

use super::error::BoxError;
use super::link::Control;
use super::signals::Signals;
use super::supervised::{Ending, Session};
use super::{env, hooks, process, Handle, Worker, WorkerError};

impl Worker {
    /// Runs the worker as a job: `exec` once, then returns its outcome. See
    /// [`once`] for what happens under `infantd` and on its own.
    pub async fn once<X, XFut, E>(mut self, exec: X) -> Result<(), WorkerError>
    where
        X: FnOnce(Handle) -> XFut,
        XFut: Future<Output = Result<(), E>>,
        E: Into<BoxError>,
    {
        let Some(mut supervision) = env::take_from_process()? else {
            process::set_title(&self.title);
            let handle = Handle::standalone(self.title);
            return hooks::start(exec, handle)
                .await
                .map_err(WorkerError::JobFailed);
        };
        // As for a worker: SIGINT and SIGTERM must not kill a job under the daemon
        // (the daemon stops it with `Stop`, or kills it on `timeout`).
        let parent = process::parent();
        let mut signals = Signals::install()?;
        if let Some(title) = supervision.title.take() {
            self.title = title;
        }
        process::set_title(&self.title);

        let mut session = Session::attach(self, supervision, parent).await?;
        if process::orphaned(parent) {
            let lost = Ending::Lost("the daemon exited during the handshake".into());
            return Err(session.abandon(lost).await);
        }
        session.handle.set_started();
        session.handle.post(Control::Ready);
        let exec = hooks::start(exec, session.handle.clone());
        match session.drive(exec, &mut signals).await {
            Ok(outcome) => {
                // The exit status carries the outcome; the error's text goes
                // ahead of it, so that the daemon can report it (to `Start` with
                // `wait`, in the `error` event). The stream only needs to deliver
                // it and what `exec` sent before the process exits.
                if let Err(error) = &outcome {
                    session
                        .handle
                        .post(Control::Failed(hooks::failure_text(error)));
                }
                let flushed = session.flush().await;
                outcome.map_err(WorkerError::JobFailed)?;
                match flushed {
                    Err(error @ WorkerError::Undelivered { .. }) => Err(error),
                    _ => Ok(()),
                }
            }
            Err(ending) => Err(session.abandon(ending).await),
        }
    }
}

/// Runs `exec` once and returns its outcome: infant's `childOnce(title, exec)`.
/// The same as `Worker::new(title).once(exec)`.
///
/// Return the result from `main`: `Ok` exits 0; an `exec` error (or panic)
/// becomes [`WorkerError::JobFailed`], printed on stderr with its causes, and
/// the process exits 1. (The original `childOnce` reported success whatever
/// happened; a `once` program under `infantd` fails on a non-zero exit status.)
///
/// ```no_run
/// use infant::worker::{once, Handle, WorkerError};
///
/// #[tokio::main]
/// async fn main() -> Result<(), WorkerError> {
///     once("migrate", |_handle: Handle| async {
///         // Apply the migrations...
///         Ok::<(), std::io::Error>(())
///     })
///     .await
/// }
/// ```
///
/// # Under `infantd`
///
/// With `INFANT_WORKER_ID` set the job attaches to the daemon (a rejected job
/// returns [`WorkerError::Rejected`]), reports `Ready` at once, and runs `exec`
/// while heartbeating; [`Handle::send`] works as in a worker. SIGINT and SIGTERM
/// are ignored.
///
/// `Stop` from the daemon, or SIGHUP, **abandons** `exec`: its future is dropped
/// where it stands, `Stopped` is sent and the result is
/// [`WorkerError::JobAbandoned`], so the process exits 1. A job that did not
/// finish must not look like one that did to whatever reads its exit status (a
/// shell `&&`, a script); the daemon knows it asked for the stop and does not
/// count it as a failed run. Waiting for `exec` instead would only last until the
/// daemon's stop window ends in SIGKILL, and write code that must not be cut short
/// to be cancel-safe (or hand it to a spawned task). A daemon that goes away also
/// abandons `exec`, with [`WorkerError::MasterLost`].
///
/// Heartbeats go out from the SDK's own thread, so a job that computes without
/// awaiting is not taken for hung; it does hold up `Stop`, which is seen only
/// when `exec` next yields (use `tokio::task::spawn_blocking` for long
/// computations).
///
/// # On its own
///
/// Without `INFANT_WORKER_ID`, `exec` just runs; no signal is handled, so Ctrl-C
/// ends the job as it would any program.
pub async fn once<X, XFut, E>(title: impl Into<String>, exec: X) -> Result<(), WorkerError>
where
    X: FnOnce(Handle) -> XFut,
    XFut: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    Worker::new(title).once(exec).await
}
