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

use super::signals::Signals;
use super::supervised::{Ending, Session};
use super::{env, process, Handle, Worker, WorkerError};
use crate::proto::{worker_message, Failed};

impl Worker {
    /// Runs the worker as a job: `exec` once, then returns its outcome. See
    /// [`once`] for what happens under `infantd` and on its own.
    pub async fn once<X, XFut, E>(mut self, exec: X) -> Result<(), WorkerError>
    where
        X: FnOnce(Handle) -> XFut,
        XFut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let Some(mut supervision) = env::from_process()? else {
            process::set_title(&self.title);
            let handle = Handle::standalone(self.title);
            return exec(handle).await.map_err(failed);
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
        session
            .handle
            .post(worker_message::Msg::Ready(Default::default()));
        let exec = exec(session.handle.clone());
        match session.drive(exec, &mut signals).await {
            Ok(outcome) => {
                // The exit status carries the outcome; the error's text goes
                // ahead of it, so that the daemon can report it (to `Start` with
                // `wait`, in the `error` event). The stream only needs to deliver
                // it and what `exec` sent before the process exits.
                if let Err(error) = &outcome {
                    let error = error.to_string();
                    session
                        .handle
                        .post(worker_message::Msg::Failed(Failed { error }));
                }
                session.finish().await;
                outcome.map_err(failed)
            }
            Err(ending) => Err(session.abandon(ending).await),
        }
    }
}

/// Runs `exec` once and returns its outcome: infant's `childOnce(title, exec)`.
/// The same as `Worker::new(title).once(exec)`.
///
/// Return the result from `main`: `Ok` exits 0; an `exec` error becomes
/// [`WorkerError::JobFailed`] with the error's `Display` text, printed on stderr,
/// and the process exits 1. (The original `childOnce` reported success whatever
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
/// `exec` is polled on the task that heartbeats: a job that computes without
/// awaiting should do it in `tokio::task::spawn_blocking`, or the daemon will
/// take it for hung after eight missed heartbeats.
///
/// # On its own
///
/// Without `INFANT_WORKER_ID`, `exec` just runs; no signal is handled, so Ctrl-C
/// ends the job as it would any program.
pub async fn once<X, XFut, E>(title: impl Into<String>, exec: X) -> Result<(), WorkerError>
where
    X: FnOnce(Handle) -> XFut,
    XFut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    Worker::new(title).once(exec).await
}

fn failed(error: impl std::fmt::Display) -> WorkerError {
    WorkerError::JobFailed(error.to_string())
}
