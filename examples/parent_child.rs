//! Node infant's Parent/Child example: a parent starts one supervised child with
//! graceful startup and shutdown, then stops it.
//!
//! ```text
//! cargo run --example parent_child          # start, then stop at once (like the original)
//! STAY=1 cargo run --example parent_child   # keep the child until Ctrl-C
//! ```

#[path = "support/master.rs"]
mod master;

use std::process::ExitCode;

use infant::daemon::{Kind, ProgramDef};
use infant::worker::Handle;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if master::is_worker() {
        // Child: `child('mychild', start, stop)`.
        let result = infant::worker::child(
            "mychild",
            |_handle: Handle| async {
                // startup operations
                Ok::<(), std::io::Error>(())
            },
            |_handle: Handle| async {
                // shutdown operations
                Ok::<(), std::io::Error>(())
            },
        )
        .await;
        return if result.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    // Parent: `parent('./myscript')`, `child.start(...)`, `child.stop(...)`.
    let child = ProgramDef {
        kind: Some(Kind::Child),
        ..ProgramDef::default()
    };
    let stay = std::env::var_os("STAY").is_some();
    match master::supervise(
        "mychild",
        child,
        false,
        stay,
        "Child started successfully",
        "Child stopped successfully",
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parent: {e}");
            ExitCode::FAILURE
        }
    }
}
