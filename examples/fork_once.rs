//! Node infant's fork/childOnce example: a parent runs a child job once and
//! learns how it ended; the child does its work and exits, 0 when it succeeded.
//!
//! ```text
//! cargo run --example fork_once                   # Child completed successfully
//! ONCE_FAIL=1 cargo run --example fork_once       # the job exits 1; the parent says so
//! ONCE_TIMEOUT_MS=200 ONCE_WORK_MS=5000 cargo run --example fork_once   # killed: timed out
//! ```
//!
//! Run by you it is the parent, `fork('./myscript', cb)`: an embedded supervisor
//! runs this same program as a `once` job and waits for it. Run by infant it is
//! the child, `childOnce(title, exec)`: [`infant::worker::once`]. The same job
//! under `infantd`:
//!
//! ```text
//! infantctl start job --kind once --wait -- target/debug/examples/fork_once
//! ```
//!
//! The child returns `once`'s result from `main`, as the SDK documents: it
//! exits 0 when `exec` succeeded, and 1, with the error on stderr, when it
//! failed (`ONCE_FAIL=1`). The parent reports the code it saw.

#[path = "support/master.rs"]
mod master;

use std::process::ExitCode;
use std::time::Duration;

use infant::daemon::{Kind, ProgramDef};
use infant::worker::{once, Handle, WorkerError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<ExitCode, WorkerError> {
    if !master::is_worker() {
        return Ok(parent().await);
    }
    let outcome = once("fork-once", |handle: Handle| async move {
        // script operations
        println!("Child {} working", handle.title());
        tokio::time::sleep(work_time()).await;
        if std::env::var_os("ONCE_FAIL").is_some_and(|value| value == "1") {
            return Err("ONCE_FAIL=1: failing on purpose");
        }
        Ok(())
    })
    .await;
    // Returned from `main`, an error prints one line on stderr and exits 1.
    outcome.map(|()| ExitCode::SUCCESS)
}

/// How long the work takes: `ONCE_WORK_MS`, 100 ms by default.
fn work_time() -> Duration {
    let ms = std::env::var("ONCE_WORK_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(100);
    Duration::from_millis(ms)
}

/// `parent('./myscript', cb)`: run the child once, wait, report.
async fn parent() -> ExitCode {
    let timeout = std::env::var("ONCE_TIMEOUT_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    let job = ProgramDef {
        kind: Some(Kind::Once),
        timeout,
        ..ProgramDef::default()
    };
    match master::supervise(
        "mychild",
        job,
        true,
        false,
        "Child completed successfully",
        "",
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Child failed: {error}");
            ExitCode::FAILURE
        }
    }
}
