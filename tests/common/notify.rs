//! A fake service manager's notify socket (`NOTIFY_SOCKET`): what infantd
//! tells systemd, read back by the tests.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use super::wait::DEADLINE;

/// A fake service manager's notify socket: every datagram infantd sends.
pub struct NotifySocket {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl NotifySocket {
    /// Binds the socket at `path` (give infantd `NOTIFY_SOCKET=path`).
    pub fn bind(path: &Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        NotifySocket {
            socket,
            seen: Vec::new(),
        }
    }

    /// Reads datagrams until one has a line for which `wanted` is true; returns
    /// that datagram. Fails the test past [`DEADLINE`], listing what came.
    pub fn wait_for(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        let mut buffer = [0u8; 4096];
        while start.elapsed() < DEADLINE {
            if let Ok(n) = self.socket.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
                self.seen.push(message.clone());
                if message.lines().any(&wanted) {
                    return message;
                }
            }
        }
        panic!("no {what} within {DEADLINE:?}; seen: {:#?}", self.seen);
    }
}
