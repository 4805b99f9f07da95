//! The cluster bench's load generator: bounded HTTP/1.1 GET loops on loopback,
//! raw over `TcpStream` (less client CPU per request than a general-purpose
//! client, which matters when the load shares two cores with the servers).
//!
//! Two ways to connect:
//! - [`Mode::KeepAlive`]: each client holds one connection and sends requests
//!   back to back on it, reconnecting when the server closes it: throughput.
//! - [`Mode::NewConnection`]: each request on a new connection with
//!   `Connection: close`, so the kernel's accept distribution across workers
//!   shows.
//!
//! A keep-alive request that got no byte of response because the server closed
//! the reused connection under it (a worker retiring its idle connections) is
//! retried on a new connection, as RFC 9112 §9.3.1 lets a client do for an
//! idempotent request, and counted as `retried`, not `failed`. Every other error
//! (refused, reset mid-response, bad status, timeout) is a failed request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest a request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Error messages kept per load, for the report.
const KEPT_ERRORS: usize = 8;

const KEEP_ALIVE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
const CLOSE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

/// How a client connects.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    KeepAlive,
    NewConnection,
}

/// What a load did.
#[derive(Default, Debug)]
pub struct Totals {
    /// Requests answered `200`.
    pub ok: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Keep-alive requests retried on a new connection (see the module docs).
    pub retried: u64,
    /// The first few errors.
    pub errors: Vec<String>,
    /// Responses by body (`pid <pid>`), when the load records them.
    pub bodies: BTreeMap<String, u64>,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.retried += other.retried;
        for e in other.errors {
            if self.errors.len() < KEPT_ERRORS {
                self.errors.push(e);
            }
        }
        for (body, n) in other.bodies {
            *self.bodies.entry(body).or_default() += n;
        }
    }
}

/// A running load: `clients` tasks, each stopping at the first of
/// [`Load::finish`], its share of `max_requests`, or the time limit.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Totals>>,
}

/// What a load is told to do.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    pub mode: Mode,
    pub clients: usize,
    /// Requests in all, at most.
    pub max_requests: u64,
    /// Time, at most.
    pub limit: Duration,
    /// Count responses by body.
    pub record: bool,
}

impl Load {
    /// Starts `plan.clients` clients on the current runtime.
    pub fn start(plan: Plan) -> Load {
        assert!(
            plan.addr.ip().is_loopback(),
            "the bench loads loopback only"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + plan.limit;
        let per_client = plan.max_requests.div_ceil(plan.clients.max(1) as u64);
        let tasks = (0..plan.clients)
            .map(|_| {
                let client = Client {
                    plan,
                    stop: Arc::clone(&stop),
                    ok: Arc::clone(&ok),
                    deadline,
                    max: per_client,
                };
                tokio::spawn(client.run())
            })
            .collect();
        Load { stop, ok, tasks }
    }

    /// Requests answered so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the clients after their current request and sums up.
    pub async fn finish(mut self) -> Totals {
        self.stop.store(true, Ordering::Relaxed);
        let mut totals = Totals::default();
        for task in std::mem::take(&mut self.tasks) {
            match task.await {
                Ok(t) => totals.add(t),
                Err(e) => {
                    totals.failed += 1;
                    totals.errors.push(format!("load client panicked: {e}"));
                }
            }
        }
        totals
    }
}

impl Drop for Load {
    /// An error path dropped the load: its clients stop after their current
    /// request instead of running to the time limit.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One client's loop.
struct Client {
    plan: Plan,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    deadline: Instant,
    max: u64,
}

impl Client {
    async fn run(self) -> Totals {
        let mut totals = Totals::default();
        let mut conn: Option<Connection> = None;
        let mut sent = 0u64;
        while sent < self.max
            && !self.stop.load(Ordering::Relaxed)
            && Instant::now() < self.deadline
        {
            sent += 1;
            let reused = conn.is_some();
            let mut c = match conn.take() {
                Some(c) => c,
                None => match Connection::open(self.plan.addr).await {
                    Ok(c) => c,
                    Err(e) => {
                        self.fail(&mut totals, format!("connect: {e}"));
                        // Do not spin on a refusing port.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                },
            };
            let request = match self.plan.mode {
                Mode::KeepAlive => KEEP_ALIVE_REQUEST,
                Mode::NewConnection => CLOSE_REQUEST,
            };
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, c.exchange(request)).await;
            match outcome {
                Ok(Ok(response)) => {
                    totals.ok += 1;
                    self.ok.fetch_add(1, Ordering::Relaxed);
                    if self.plan.record {
                        *totals.bodies.entry(response.body).or_default() += 1;
                    }
                    if self.plan.mode == Mode::KeepAlive && !response.close {
                        conn = Some(c);
                    } else if self.plan.mode == Mode::NewConnection {
                        // Let the server close first, so TIME_WAIT stays on its
                        // side and the client's ephemeral ports are not used up.
                        c.wait_close().await;
                    }
                }
                Ok(Err(e)) if reused && e.before_response => {
                    totals.retried += 1;
                    // The retry is the next request, on a new connection; it
                    // does not count against the request budget.
                    sent -= 1;
                }
                Ok(Err(e)) => self.fail(&mut totals, e.message),
                Err(_) => self.fail(&mut totals, format!("no response in {REQUEST_TIMEOUT:?}")),
            }
        }
        totals
    }

    fn fail(&self, totals: &mut Totals, message: String) {
        totals.failed += 1;
        if totals.errors.len() < KEPT_ERRORS {
            totals.errors.push(message);
        }
    }
}

/// A response the bench cares about.
struct Response {
    body: String,
    /// The server said `Connection: close`.
    close: bool,
}

/// Why an exchange failed.
struct Failure {
    /// Not one byte of the response arrived.
    before_response: bool,
    message: String,
}

/// One client connection with its read buffer.
struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` and reads one response (status line, headers and a
    /// `Content-Length` body, or a body up to EOF without one).
    async fn exchange(&mut self, request: &[u8]) -> Result<Response, Failure> {
        self.buf.clear();
        if let Err(e) = self.stream.write_all(request).await {
            return Err(Failure {
                before_response: true,
                message: format!("sending the request: {e}"),
            });
        }
        let head_end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at + 4;
            }
            self.fill("the response head").await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        if !head.starts_with("HTTP/1.1 200") {
            return Err(self.bad(format!(
                "status {:?}",
                head.lines().next().unwrap_or_default()
            )));
        }
        let (mut length, mut close) = (None, false);
        for line in head.lines().skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(self.bad(format!("unsupported transfer-encoding {value:?}")));
            }
        }
        let body = match length {
            Some(length) => {
                while self.buf.len() < head_end + length {
                    self.fill("the response body").await?;
                }
                &self.buf[head_end..head_end + length]
            }
            None => {
                close = true;
                while self.fill_or_eof().await? {}
                &self.buf[head_end..]
            }
        };
        Ok(Response {
            body: String::from_utf8_lossy(body).into_owned(),
            close,
        })
    }

    /// Reads until the server closes the connection, for at most
    /// [`REQUEST_TIMEOUT`] (it closes right after a `Connection: close` response).
    async fn wait_close(mut self) {
        let mut sink = [0u8; 256];
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
            while let Ok(n) = self.stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }

    /// Reads more; EOF is an error here.
    async fn fill(&mut self, what: &str) -> Result<(), Failure> {
        if self.fill_or_eof().await? {
            Ok(())
        } else {
            Err(Failure {
                before_response: self.buf.is_empty(),
                message: format!("connection closed while reading {what}"),
            })
        }
    }

    /// Reads more; false at EOF.
    async fn fill_or_eof(&mut self) -> Result<bool, Failure> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(Failure {
                before_response: self.buf.is_empty(),
                message: format!("reading the response: {e}"),
            }),
        }
    }

    fn bad(&self, message: String) -> Failure {
        Failure {
            before_response: false,
            message,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
