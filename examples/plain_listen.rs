//! A program that knows nothing of infant, only systemd-style socket
//! activation: it serves `plain <pid>` over HTTP on fd 3 when `LISTEN_FDS` and
//! `LISTEN_PID` say the socket is its own, else on `127.0.0.1:8080`. Plain std,
//! no SDK: run under infant with `listen = ["tcp://127.0.0.1:8080"]`, every worker
//! of the cluster serves on the daemon's socket.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::FromRawFd;

fn main() -> std::io::Result<()> {
    let passed = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id())
        && std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
            >= Some(1);
    let listener = if passed {
        // SAFETY: LISTEN_PID is ours, so fd 3 is the socket handed to us.
        unsafe { TcpListener::from_raw_fd(3) }
    } else {
        TcpListener::bind("127.0.0.1:8080")?
    };
    let body = format!("plain {}", std::process::id());
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    Ok(())
}
