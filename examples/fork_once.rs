//! The child side of the seed's fork/childOnce example: a job that does its
//! work once and exits, 0 when it succeeded.
//!
//! ```text
//! cargo build --example fork_once
//! target/debug/examples/fork_once              # on its own
//! ONCE_FAIL=1 target/debug/examples/fork_once  # fails: exit status 3
//! ONCE_WORK_MS=60000 target/debug/examples/fork_once  # works for a minute
//! ```
//!
//! The seed's parent, `fork('./myscript', cb)`, is `infantd` running the job as a
//! `once` program, which honours its exit status:
//!
//! ```text
//! infantctl start job --kind once --wait -- target/debug/examples/fork_once
//! ```
//!
//! or, in a config file:
//!
//! ```toml
//! [program.job]
//! kind = "once"
//! command = ["target/debug/examples/fork_once"]
//! ```
//!
//! `infant::worker::once` itself exits 1 when `exec` fails; this example exits 3
//! on `ONCE_FAIL=1`, to show a job's own exit code reaching the daemon.

use std::process::ExitCode;
use std::time::Duration;

use infant::worker::{once, Handle, WorkerError};

/// The exit status of a failed run, as asked for by `ONCE_FAIL=1`.
const FAILED: u8 = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
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
    match outcome {
        Ok(()) => {
            println!("Child completed successfully");
            ExitCode::SUCCESS
        }
        Err(error @ WorkerError::JobFailed(_)) => {
            eprintln!("fork_once: {error}");
            ExitCode::from(FAILED)
        }
        Err(error) => {
            eprintln!("fork_once: {error}");
            ExitCode::FAILURE
        }
    }
}

/// How long the work takes: `ONCE_WORK_MS`, 100 ms by default.
fn work_time() -> Duration {
    let ms = std::env::var("ONCE_WORK_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(100);
    Duration::from_millis(ms)
}
