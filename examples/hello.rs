//! The seed's quick example: a cluster of two workers serving `Hello!` on one
//! port (3000, or `$PORT`), with graceful startup and shutdown.
//!
//! ```text
//! cargo run --example hello
//! curl http://127.0.0.1:3000/      # Hello!
//! # Ctrl-C stops it
//! ```
//!
//! Like the seed's `index.js` + `worker.js` — and Node's cluster module, whose
//! workers default to the master's own script — this one program is both: run
//! by you it is the master (an embedded infant supervisor); run by infant, with
//! `INFANT_WORKER_ID` set, it is a worker.

#[path = "support/http.rs"]
mod http;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infant::daemon::spec::{Kind, ProgramDef};
use infant::daemon::Supervisor;
use infant::worker::{CountingListener, Handle, Worker};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if std::env::var_os("INFANT_WORKER_ID").is_some() {
        return worker().await;
    }
    match master().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello: {e}");
            ExitCode::FAILURE
        }
    }
}

/// index.js: start a cluster of 2 enhanced workers, stop it on Ctrl-C.
async fn master() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let dir = std::env::temp_dir().join(format!("infant-hello-{}", std::process::id()));
    let supervisor = Supervisor::start(&dir.join("infantd.sock")).await?;

    let cluster = ProgramDef {
        kind: Some(Kind::Cluster),
        command: Some(vec![std::env::current_exe()?.display().to_string()]),
        count: Some(2),
        enhanced: Some(true),
        listen: Some(vec![format!("tcp://127.0.0.1:{port}")]),
        ..ProgramDef::default()
    };
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    match supervisor
        .engine()
        .start("hello".into(), Some(cluster), false)
        .await
    {
        Ok(_) => {
            println!("Cluster started!");
            println!("Serving Hello! on http://127.0.0.1:{port}/ (Ctrl-C to stop)");
            println!(
                "Control it with: infantctl --socket {} status",
                supervisor.socket().display()
            );
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(e) => eprintln!("hello: {e}"),
    }
    supervisor.shutdown().await;
    let _ = std::fs::remove_dir(&dir);
    println!("Cluster stopped!");
    Ok(())
}

/// worker.js: an HTTP server that starts listening in its start hook and drains
/// in its stop hook.
async fn worker() -> ExitCode {
    let stop = CancellationToken::new();
    let server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>> = Arc::default();
    let (stop_in_start, server_in_start) = (stop.clone(), Arc::clone(&server));
    let started = Worker::new("hello-worker")
        .run(
            move |handle: Handle| async move {
                let listener = infant::worker::tcp_listener("127.0.0.1:3000").await?;
                let listener = CountingListener::new(listener, handle.clone());
                let task = tokio::spawn(http::serve(
                    listener,
                    handle,
                    stop_in_start,
                    Duration::from_secs(25),
                    |_request| async { http::text("Hello!") },
                ));
                if let Ok(mut slot) = server_in_start.lock() {
                    *slot = Some(task);
                }
                Ok::<(), std::io::Error>(())
            },
            move |_handle: Handle| async move {
                stop.cancel();
                let task = server.lock().ok().and_then(|mut slot| slot.take());
                if let Some(task) = task {
                    let _ = task.await;
                }
                println!("Stopped");
                Ok::<(), std::io::Error>(())
            },
        )
        .await;
    match started {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello worker: {e}");
            ExitCode::FAILURE
        }
    }
}
