//! An SDK worker that echoes every message back to the daemon as `echo: <message>`.
//!
//! Used by the end-to-end tests and as the smallest example of the worker SDK:
//!
//! ```text
//! infantd -- target/debug/examples/echo_worker     # under the daemon
//! infantctl send echo_worker hello                 # -> message event "echo: hello"
//! target/debug/examples/echo_worker                # standalone: Ctrl-C stops it
//! ```
//!
//! On stdout it prints `started <pid>` at the end of a successful start hook
//! (just before the SDK reports `Ready`) and `stopped <pid>` at the end of the stop
//! hook, each flushed at once. `RUST_LOG=debug` shows what the SDK does, on stderr.
//!
//! Test knobs, read from the environment (unset or empty: off):
//!
//! | variable | effect |
//! | --- | --- |
//! | `ECHO_START_DELAY_MS=N` | the start hook sleeps N ms first |
//! | `ECHO_FAIL_START=TEXT` | the start hook fails with TEXT |
//! | `ECHO_SPAWN_CHILD=1` | the start hook spawns a grandchild `sleep 1000`, never waited for, and prints `grandchild <pid>` |
//! | `ECHO_STOP_MARKER=PATH` | the stop hook appends `stopped <pid>` to PATH |
//! | `ECHO_HANG_STOP=1` | the stop hook never finishes (after writing the marker) |
//! | `ECHO_FAIL_STOP=TEXT` | the stop hook fails with TEXT (after printing `stopped <pid>`) |
//!
//! Messages `flood N` (answer N messages at once) and `big N` (try to send N
//! bytes, then report the outcome as `big: …`) exercise the channel's bounds.

use std::io::{IsTerminal, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use infant::worker::{Handle, Worker, WorkerError};
use tokio::io::AsyncWriteExt;
use tracing_subscriber::filter::{LevelFilter, Targets};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), WorkerError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::WARN));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .init();

    Worker::new("echo_worker")
        .on_message(echo)
        .run(start, stop)
        .await
}

fn echo(payload: Vec<u8>, handle: Handle) {
    // Test knobs: `flood N` answers N messages at once; `big N` tries to send N
    // bytes and reports what the SDK said.
    let text = String::from_utf8_lossy(&payload);
    if let Some(n) = text
        .strip_prefix("flood ")
        .and_then(|n| n.parse::<u64>().ok())
    {
        for i in 0..n {
            let _ = handle.send(format!("flood {i}"));
        }
        return;
    }
    if let Some(n) = text
        .strip_prefix("big ")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let outcome = match handle.send(vec![b'x'; n]) {
            Ok(()) => "sent".to_string(),
            Err(error) => error.to_string(),
        };
        let _ = handle.send(format!("big: {outcome}"));
        return;
    }
    let mut reply = b"echo: ".to_vec();
    reply.extend_from_slice(&payload);
    if let Err(error) = handle.send(reply) {
        eprintln!("echo_worker: {error}");
    }
}

async fn start(_handle: Handle) -> Result<(), String> {
    if let Some(delay) = knob("ECHO_START_DELAY_MS") {
        let ms: u64 = delay
            .parse()
            .map_err(|error| format!("ECHO_START_DELAY_MS={delay:?}: {error}"))?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(text) = knob("ECHO_FAIL_START") {
        return Err(text);
    }
    if knob("ECHO_SPAWN_CHILD").as_deref() == Some("1") {
        // Deliberately never waited for: the test checks that stopping the worker
        // takes its whole process group, grandchild included. Its stdio is not the
        // worker's, so it cannot hold a test's pipes open.
        #[allow(clippy::zombie_processes)]
        let grandchild = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot spawn `sleep 1000`: {error}"))?;
        say(&format!("grandchild {}", grandchild.id()));
    }
    say(&format!("started {}", std::process::id()));
    Ok(())
}

async fn stop(handle: Handle) -> Result<(), String> {
    let pid = std::process::id();
    if let Some(path) = knob("ECHO_STOP_MARKER") {
        let mut marker = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|error| format!("cannot open {path}: {error}"))?;
        marker
            .write_all(format!("stopped {pid}\n").as_bytes())
            .await
            .map_err(|error| format!("cannot write {path}: {error}"))?;
    }
    if knob("ECHO_HANG_STOP").as_deref() == Some("1") {
        std::future::pending::<()>().await;
    }
    tracing::debug!(reason = ?handle.stop_reason(), "stopped");
    say(&format!("stopped {pid}"));
    if let Some(text) = knob("ECHO_FAIL_STOP") {
        return Err(text);
    }
    Ok(())
}

/// A test knob: `None` when unset or empty.
fn knob(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// One line on stdout, flushed at once: tests read it through a pipe.
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not fail the worker.
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}
