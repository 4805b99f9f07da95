//! Node infant's Cluster example: plain workers (no SDK at all) sharing port 3000
//! (or `$PORT`), each answering `foo`. Like Node's cluster workers calling
//! `server.listen(3000)`, they serve on the socket the master holds — here passed
//! systemd-style as fd 3 (`LISTEN_FDS`).
//!
//! ```text
//! cargo run --example cluster
//! curl http://127.0.0.1:3000/    # foo
//! ```

#[path = "support/master.rs"]
mod master;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::FromRawFd;
use std::process::ExitCode;

use infant::daemon::{Kind, ProgramDef};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if master::is_worker() {
        return match plain_worker() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let cluster = ProgramDef {
        kind: Some(Kind::Cluster),
        listen: Some(vec![format!("tcp://127.0.0.1:{port}")]),
        ..ProgramDef::default()
    };
    match master::supervise(
        "cluster",
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
            eprintln!("cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A worker that knows nothing of infant: plain std, blocking, on fd 3.
fn plain_worker() -> std::io::Result<()> {
    // SAFETY: infant passed our listen socket as fd 3 (LISTEN_FDS=1).
    let listener = unsafe { TcpListener::from_raw_fd(3) };
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nfoo");
    }
    Ok(())
}
