//! Node infant's quick example: a cluster of two workers serving `Hello!` on one
//! port (3000, or `$PORT`), with graceful startup and shutdown.
//!
//! ```text
//! cargo run --example hello
//! curl http://127.0.0.1:3000/      # Hello!
//! # Ctrl-C stops it: each worker prints "Stopped", then "Cluster stopped!"
//! ```
//!
//! Like Node infant's `index.js` + `worker.js` — and Node's cluster module, whose
//! workers default to the master's own script — this one program is both: run by
//! you it is the master (an embedded infant supervisor); run by infant, it is a
//! worker.

#[path = "support/http.rs"]
mod http;
#[path = "support/master.rs"]
mod master;

use std::process::ExitCode;

use infant::daemon::{Kind, ProgramDef};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if master::is_worker() {
        // worker.js
        return http::run_worker("hello-worker", "127.0.0.1:3000", "Hello!").await;
    }
    // index.js: `infant.cluster('./mychild', {count: 2, enhanced: true})`.
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let cluster = ProgramDef {
        kind: Some(Kind::Cluster),
        count: Some(2),
        enhanced: Some(true),
        listen: Some(vec![format!("tcp://127.0.0.1:{port}")]),
        ..ProgramDef::default()
    };
    let started = format!("Cluster started!\nServing Hello! on http://127.0.0.1:{port}/");
    match master::supervise("hello", cluster, false, true, &started, "Cluster stopped!").await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello: {e}");
            ExitCode::FAILURE
        }
    }
}
