//! HTTP clients for serving tests: one GET on a new connection, a keep-alive
//! connection as wrk and browsers use, and a bounded `Load` of concurrent
//! clients.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::wait::{wait_until, DEADLINE};

/// One HTTP/1.1 GET on a new connection (`Connection: close`); the body on a
/// 200, an error otherwise (refused, reset, timed out, bad status).
pub async fn http_get(addr: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = addr.trim_start_matches("tcp://").to_string();
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&addr).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: infant\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        let text = String::from_utf8_lossy(&response).into_owned();
        match text.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
            _ => Err(std::io::Error::other(format!("bad response: {text:?}"))),
        }
    };
    tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .map_err(|_| std::io::Error::other("request timed out"))?
}

/// An HTTP/1.1 client that keeps its connection alive, as wrk and browsers do:
/// requests go back to back on one connection until the server answers with
/// `Connection: close`, then the next one opens a new connection. A request that
/// gets no whole answer (reset, closed before the answer, timed out) is an error:
/// this is how a server that closes an idle keep-alive connection at the wrong
/// moment loses requests.
pub struct KeepAlive {
    addr: String,
    stream: Option<tokio::io::BufReader<tokio::net::TcpStream>>,
    /// When the last request ended.
    last: std::time::Instant,
    /// Answers the current connection has carried.
    uses: u32,
}

impl KeepAlive {
    /// A client for `addr` (`HOST:PORT`, `tcp://` allowed); it connects on the
    /// first request.
    pub fn new(addr: &str) -> KeepAlive {
        KeepAlive {
            addr: addr.trim_start_matches("tcp://").to_string(),
            stream: None,
            last: std::time::Instant::now(),
            uses: 0,
        }
    }

    /// One GET; the body on a 200. An error says how long the connection had
    /// been idle and how many answers it had carried: a close racing a request
    /// shows as a reused connection.
    pub async fn get(&mut self) -> std::io::Result<String> {
        let idle = self.last.elapsed();
        let result = tokio::time::timeout(Duration::from_secs(15), self.exchange())
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("request timed out")));
        self.last = std::time::Instant::now();
        match result {
            Ok(body) => {
                self.uses += 1;
                Ok(body)
            }
            Err(e) => {
                let uses = self.uses;
                self.stream = None;
                Err(std::io::Error::other(format!(
                    "{e} (connection idle {idle:?}, after {uses} answers)"
                )))
            }
        }
    }

    async fn exchange(&mut self) -> std::io::Result<String> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        if self.stream.is_none() {
            let stream = tokio::net::TcpStream::connect(&self.addr).await?;
            self.stream = Some(tokio::io::BufReader::new(stream));
            self.uses = 0;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(std::io::Error::other("no connection"));
        };
        stream
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: infant\r\n\r\n")
            .await?;
        let (mut status, mut length, mut close) = (String::new(), None, false);
        stream.read_line(&mut status).await?;
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::other("closed inside the answer's head"));
            }
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(value) = line.strip_prefix("content-length:") {
                length = value.trim().parse::<usize>().ok();
            }
            if line == "connection: close" {
                close = true;
            }
        }
        if !status.starts_with("HTTP/1.1 200") {
            return Err(std::io::Error::other(format!("bad status: {status:?}")));
        }
        let length =
            length.ok_or_else(|| std::io::Error::other("an answer without Content-Length"))?;
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        if close {
            self.stream = None;
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// What a [`Load`] saw: (ok, failed, errors, bodies).
pub type LoadTotals = (u64, u64, Vec<String>, Vec<String>);

/// A bounded load: `clients` tasks sending requests back to back until `stop`
/// is set or `max` requests were sent in all. Returns (ok, failed, errors seen).
pub struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<LoadTotals>>,
}

impl Load {
    /// Starts the load against `addr`, a new connection per request.
    pub fn start(addr: &str, clients: usize, max_per_client: u64) -> Load {
        Load::run(addr, clients, max_per_client, false)
    }

    /// Starts the load against `addr` on keep-alive connections ([`KeepAlive`]).
    pub fn keep_alive(addr: &str, clients: usize, max_per_client: u64) -> Load {
        Load::run(addr, clients, max_per_client, true)
    }

    fn run(addr: &str, clients: usize, max_per_client: u64, keep_alive: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|_| {
                let addr = addr.to_string();
                let stop = Arc::clone(&stop);
                let answered = Arc::clone(&answered);
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0, 0);
                    let (mut errors, mut bodies) = (Vec::new(), Vec::new());
                    let mut connection = keep_alive.then(|| KeepAlive::new(&addr));
                    for _ in 0..max_per_client {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let answer = match connection.as_mut() {
                            Some(connection) => connection.get().await,
                            None => http_get(&addr).await,
                        };
                        match answer {
                            Ok(body) => {
                                ok += 1;
                                answered.fetch_add(1, Ordering::Relaxed);
                                bodies.push(body);
                            }
                            Err(e) => {
                                failed += 1;
                                errors.push(e.to_string());
                            }
                        }
                    }
                    (ok, failed, errors, bodies)
                })
            })
            .collect();
        Load {
            stop,
            answered,
            tasks,
        }
    }

    /// Waits until at least `n` requests were answered.
    pub async fn wait_answered(&self, n: u64) {
        let answered = Arc::clone(&self.answered);
        wait_until(&format!("{n} requests answered"), DEADLINE, || {
            let count = answered.load(Ordering::Relaxed);
            async move { count >= n }
        })
        .await;
    }

    /// Stops the load and returns (ok, failed, errors, bodies).
    pub async fn finish(self) -> LoadTotals {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = (0, 0, Vec::new(), Vec::new());
        for task in self.tasks {
            let (ok, failed, errors, bodies) = task.await.expect("load task");
            total.0 += ok;
            total.1 += failed;
            total.2.extend(errors);
            total.3.extend(bodies);
        }
        total
    }
}
