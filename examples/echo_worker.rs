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
//! | `ECHO_BLOCK_START_MS=N` | the start hook blocks its thread (`std::thread::sleep`) N ms |
//! | `ECHO_PANIC=start` or `stop` | that hook panics |
//! | `ECHO_FAIL_START_LEN=N` | the start hook fails with a text of N characters |
//! | `ECHO_CHILD_ENV=1` | the start hook prints `inherited N`: how many `INFANT_*` variables a child sees |
//! | `ECHO_LISTEN=1` | the start hook takes the daemon's TCP socket (or binds one) and prints `listening ADDR` |
//! | `ECHO_SEND_ON_STOP=N` | the stop hook sends N messages of 1 MiB, then appends `sent N` to the marker |
//! | `ECHO_SEND_IN_STOP=1` | the stop hook sends one message and appends `send: OUTCOME` to the marker |
//!
//! Messages `flood N` (answer N messages at once) and `big N` (try to send N
//! bytes, then report the outcome as `big: …`) exercise the channel's bounds;
//! `block N` answers `blocking N`, then blocks the handler's thread N ms, `spin N` computes for N ms,
//! `panic` panics in the handler, `request N` counts N requests, `shutdown` and
//! `fail TEXT` end the worker through its `Handle`. With a stop marker, the stop
//! hook also appends `started true|false`: whether the start hook completed.

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

async fn echo(payload: Vec<u8>, handle: Handle) {
    // Test knobs: `flood N` answers N messages at once; `big N` tries to send N
    // bytes and reports what the SDK said.
    let text = String::from_utf8_lossy(&payload);
    if let Some(n) = text
        .strip_prefix("flood ")
        .and_then(|n| n.parse::<u64>().ok())
    {
        for i in 0..n {
            let _ = handle.send(format!("flood {i}")).await;
        }
        return;
    }
    if let Some(n) = text
        .strip_prefix("big ")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let outcome = match handle.send(vec![b'x'; n]).await {
            Ok(()) => "sent".to_string(),
            Err(error) => error.to_string(),
        };
        let _ = handle.send(format!("big: {outcome}")).await;
        return;
    }
    if let Some(ms) = text.strip_prefix("block ").and_then(|n| n.parse().ok()) {
        // Says so first (the SDK's own thread delivers it), so that a test can
        // wait for the block to have begun.
        let _ = handle.send(format!("blocking {ms}")).await;
        // Deliberately blocks the runtime's only thread.
        std::thread::sleep(Duration::from_millis(ms));
        return;
    }
    if let Some(ms) = text.strip_prefix("spin ").and_then(|n| n.parse().ok()) {
        let until = std::time::Instant::now() + Duration::from_millis(ms);
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
        return;
    }
    if text == "shutdown" {
        handle.shutdown();
        return;
    }
    if let Some(why) = text.strip_prefix("fail ") {
        handle.fail(why.to_string());
        return;
    }
    if text == "panic" {
        panic!("the message handler was told to panic");
    }
    if let Some(n) = text.strip_prefix("request ").and_then(|n| n.parse().ok()) {
        for _ in 0..n {
            handle.request();
        }
        return;
    }
    let mut reply = b"echo: ".to_vec();
    reply.extend_from_slice(&payload);
    if let Err(error) = handle.send(reply).await {
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
    if let Some(delay) = knob("ECHO_BLOCK_START_MS") {
        let ms: u64 = delay
            .parse()
            .map_err(|error| format!("ECHO_BLOCK_START_MS={delay:?}: {error}"))?;
        std::thread::sleep(Duration::from_millis(ms));
    }
    if knob("ECHO_PANIC").as_deref() == Some("start") {
        panic!("the start hook was told to panic");
    }
    if let Some(text) = knob("ECHO_FAIL_START") {
        return Err(text);
    }
    if let Some(len) = knob("ECHO_FAIL_START_LEN").and_then(|n| n.parse().ok()) {
        return Err("e".repeat(len));
    }
    if knob("ECHO_CHILD_ENV").as_deref() == Some("1") {
        let counted = Command::new("sh")
            .args(["-c", "env | grep -c '^INFANT_'"])
            .output()
            .map_err(|error| format!("cannot run sh: {error}"))?;
        let n = String::from_utf8_lossy(&counted.stdout).trim().to_string();
        say(&format!("inherited {n}"));
    }
    if knob("ECHO_LISTEN").as_deref() == Some("1") {
        let listener = infant::worker::tcp_listener("127.0.0.1:0")
            .await
            .map_err(|error| format!("cannot listen: {error}"))?;
        let addr = listener
            .local_addr()
            .map_err(|error| format!("no local address: {error}"))?;
        say(&format!("listening {addr}"));
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
    mark(&format!("started {}", handle.started())).await?;
    if knob("ECHO_PANIC").as_deref() == Some("stop") {
        panic!("the stop hook was told to panic");
    }
    if let Some(n) = knob("ECHO_SEND_ON_STOP").and_then(|n| n.parse::<usize>().ok()) {
        let mut sent = 0;
        for _ in 0..n {
            if handle.send(vec![b'm'; 1024 * 1024]).await.is_ok() {
                sent += 1;
            }
        }
        mark(&format!("sent {sent}")).await?;
    }
    if knob("ECHO_SEND_IN_STOP").as_deref() == Some("1") {
        let outcome = match handle.send("from the stop hook").await {
            Ok(()) => "ok".to_string(),
            Err(error) => error.to_string(),
        };
        mark(&format!("send: {outcome}")).await?;
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

/// Appends `line` to the stop marker file, if there is one.
async fn mark(line: &str) -> Result<(), String> {
    let Some(path) = knob("ECHO_STOP_MARKER") else {
        return Ok(());
    };
    let mut marker = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .await
        .map_err(|error| format!("cannot open {path}: {error}"))?;
    marker
        .write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(|error| format!("cannot write {path}: {error}"))
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
