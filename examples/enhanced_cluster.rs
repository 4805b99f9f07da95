//! Node infant's enhanced Cluster example: 4 SDK workers (`worker(server)`) sharing
//! port 3000 (or `$PORT`), answering `foo`, counting connections and requests so
//! the master recycles a worker after `max_connections` (here `$MAX_CONNECTIONS`,
//! default 1000000; a count per worker, not for the cluster) or when its memory
//! grows past `max_memory_gain`.
//!
//! ```text
//! cargo run --example enhanced_cluster
//! curl http://127.0.0.1:3000/      # foo
//! ```

#[path = "support/http.rs"]
mod http;
#[path = "support/master.rs"]
mod master;

use std::process::ExitCode;

use infant::daemon::{Kind, ProgramDef};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if master::is_worker() {
        // `worker(server)` with graceful startup and shutdown.
        return http::run_worker("enhanced-worker", "127.0.0.1:3000", "foo").await;
    }
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let max_connections = std::env::var("MAX_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok());
    let cluster = ProgramDef {
        kind: Some(Kind::Cluster),
        count: Some(4),
        enhanced: Some(true),
        max_connections,
        listen: Some(vec![format!("tcp://127.0.0.1:{port}")]),
        ..ProgramDef::default()
    };
    match master::supervise(
        "enhanced",
        cluster,
        false,
        true,
        "cluster started",
        "cluster stopped",
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("enhanced_cluster: {e}");
            ExitCode::FAILURE
        }
    }
}
