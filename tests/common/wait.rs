//! Deadline-bound waits: every wait ends as soon as its condition holds and
//! fails the test, naming what it waited for, once its deadline has passed.
//! Nothing sleeps and hopes.

use std::future::Future;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The default deadline for a condition in these tests: generous, because CI
/// machines are small and shared.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(20);

/// Waits until `check` returns true; panics naming `what` once `deadline` has
/// passed.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let found = poll(deadline, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await;
    if found.is_none() {
        panic!("timed out after {deadline:?} waiting for: {what}");
    }
}

/// The first value `ready` yields, or `None` once `deadline` has passed.
pub async fn poll<T, F, Fut>(deadline: Duration, mut ready: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = ready().await {
            return Some(value);
        }
        if start.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`poll`] for synchronous code (a `#[test]` without a runtime, a `Drop`):
/// the thread sleeps between checks.
pub fn poll_blocking<T>(deadline: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = ready() {
            return Some(value);
        }
        if start.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits for a child process to exit and returns its status; past `deadline` it
/// is SIGKILLed and reaped, and the test fails.
pub async fn wait_child(child: &mut Child, deadline: Duration) -> ExitStatus {
    let status = poll(deadline, || std::future::ready(exited(child))).await;
    status.unwrap_or_else(|| overdue(child, deadline))
}

/// [`wait_child`] for synchronous code.
pub fn wait_child_blocking(child: &mut Child, deadline: Duration) -> ExitStatus {
    let status = poll_blocking(deadline, || exited(child));
    status.unwrap_or_else(|| overdue(child, deadline))
}

/// Ends `child` for good from a `Drop`, where a panic would abort: `signal`, a
/// blocking wait of up to `deadline`, then SIGKILL. Never fails.
pub fn stop_child(child: &mut Child, signal: Signal, deadline: Duration) {
    // Already reaped: its pid may belong to someone else by now.
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = kill(Pid::from_raw(child.id() as i32), signal);
    if poll_blocking(deadline, || child.try_wait().ok().flatten()).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The exit status if `child` has exited (and reaps it).
fn exited(child: &mut Child) -> Option<ExitStatus> {
    child.try_wait().expect("try_wait")
}

/// SIGKILLs and reaps `child`, then fails the test: no process outlives it.
fn overdue(child: &mut Child, deadline: Duration) -> ! {
    let _ = child.kill();
    let _ = child.wait();
    panic!("process {} did not exit within {deadline:?}", child.id());
}
