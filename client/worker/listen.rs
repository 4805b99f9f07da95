//! The sockets `infantd` hands a worker, and counting what it serves.
//!
//! A program's `listen` sockets arrive as fds 3, 4, … with `LISTEN_FDS`,
//! `LISTEN_PID` and `LISTEN_FDNAMES`, as under systemd socket activation; every
//! worker of the program accepts on the same sockets, which the daemon keeps open
//! across respawns, recycles and restarts. [`listeners`] turns them into tokio
//! listeners. [`tcp_listener`] takes the first TCP one, or binds an address of its
//! own when run outside infant, so one program works both ways.
//!
//! In an enhanced cluster the daemon recycles a worker after `max_connections`
//! connections or requests. [`CountingListener`] counts accepted connections;
//! [`CountRequestsLayer`] is a tower layer that counts requests, one line for any
//! axum, hyper or tonic server.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use nix::sys::socket::{getsockname, AddressFamily, SockaddrLike, SockaddrStorage};
use tokio::net::{TcpListener, TcpStream, UnixListener};

use super::Handle;

/// First fd of systemd-style socket passing.
const FIRST_FD: RawFd = 3;
/// The fds are owned once: a second call must not wrap (and later close) them again.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// A socket handed over by the daemon.
#[derive(Debug)]
#[non_exhaustive]
pub enum Listener {
    /// A TCP socket (`tcp://HOST:PORT`).
    Tcp(TcpListener),
    /// A Unix socket (`unix:///path`).
    Unix(UnixListener),
}

/// The sockets passed to this process (`LISTEN_FDS` for our own `LISTEN_PID`), in
/// the order of the program's `listen`. Empty when there are none or they were
/// already taken by an earlier call. Must run inside a tokio runtime.
///
/// Once taken, `LISTEN_FDS`, `LISTEN_PID` and `LISTEN_FDNAMES` are removed from
/// the environment (as systemd's `sd_listen_fds(1)` does), so a child of the
/// worker does not look for sockets it was not given.
///
/// # Errors
///
/// When `LISTEN_FDS` names sockets for *another* process (`LISTEN_PID` is not
/// ours), this fails, naming both pids, instead of acting as if none were
/// passed: that happens when the daemon's child is a wrapper, such as `sh -c
/// "worker; exit $?"`, and the worker would otherwise bind a port of its own that
/// nobody sends traffic to. Start the worker with `exec` (`sh -c "exec
/// worker"`) so that it is the process the sockets were passed to. The fds are
/// left open: they are not this process's to close.
pub fn listeners() -> std::io::Result<Vec<Listener>> {
    let count = passed_fd_count()?;
    if count == 0 || TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(Vec::new());
    }
    // The same reasoning as for `INFANT_*` (see `env`): std serializes its own
    // environment access, and the worker takes its sockets early.
    for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let mut out = Vec::with_capacity(count);
    for fd in FIRST_FD..FIRST_FD + count as RawFd {
        let family = getsockname::<SockaddrStorage>(fd)
            .map_err(std::io::Error::from)?
            .family();
        // SAFETY: LISTEN_PID names this process, so fds 3.. were handed to us by
        // the daemon and nothing else owns them; TAKEN ensures we wrap them once.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let listener = match family {
            Some(AddressFamily::Unix) => {
                let std = std::os::unix::net::UnixListener::from(owned);
                std.set_nonblocking(true)?;
                Listener::Unix(UnixListener::from_std(std)?)
            }
            _ => {
                let std = std::net::TcpListener::from(owned);
                std.set_nonblocking(true)?;
                Listener::Tcp(TcpListener::from_std(std)?)
            }
        };
        out.push(listener);
    }
    Ok(out)
}

/// The first TCP socket the daemon passed, or, outside infant (or with no
/// `listen` configured), a socket bound to `fallback`. Fails, rather than binding
/// `fallback`, when the sockets were passed to another process (see
/// [`listeners`]).
pub async fn tcp_listener(fallback: &str) -> std::io::Result<TcpListener> {
    for listener in listeners()? {
        if let Listener::Tcp(tcp) = listener {
            return Ok(tcp);
        }
    }
    TcpListener::bind(fallback).await
}

/// How many fds were passed to this very process; an error when they were
/// passed to another one.
fn passed_fd_count() -> std::io::Result<usize> {
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    if count == 0 {
        return Ok(0);
    }
    let me = std::process::id();
    match std::env::var("LISTEN_PID").ok() {
        Some(pid) if pid.trim().parse::<u32>().ok() == Some(me) => Ok(count),
        Some(pid) => Err(std::io::Error::other(format!(
            "LISTEN_FDS passes {count} socket(s) to process {pid} (LISTEN_PID), but this is \
             process {me}: they were passed to a wrapper that runs this worker; start the \
             worker with `exec` (sh -c \"exec worker\") so it is the process they are for"
        ))),
        // Without LISTEN_PID nobody says the fds are ours (systemd's rule).
        None => Ok(0),
    }
}

/// A TCP listener that counts every accepted connection on the worker's
/// [`Counters`](super::Counters).
#[derive(Debug)]
pub struct CountingListener {
    inner: TcpListener,
    handle: Handle,
}

impl CountingListener {
    /// Counts connections accepted on `inner` for `handle`'s worker.
    pub fn new(inner: TcpListener, handle: Handle) -> Self {
        CountingListener { inner, handle }
    }

    /// Accepts a connection and counts it.
    pub async fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        let accepted = self.inner.accept().await?;
        self.handle.connection();
        Ok(accepted)
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The listener underneath.
    pub fn into_inner(self) -> TcpListener {
        self.inner
    }
}

/// A tower layer counting every request its service handles on the worker's
/// [`Counters`](super::Counters): `ServiceBuilder::new().layer(CountRequestsLayer::new(handle))`.
#[derive(Debug, Clone)]
pub struct CountRequestsLayer {
    handle: Handle,
}

impl CountRequestsLayer {
    /// Counts for `handle`'s worker.
    pub fn new(handle: Handle) -> Self {
        CountRequestsLayer { handle }
    }
}

impl<S> tower::Layer<S> for CountRequestsLayer {
    type Service = CountRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequests {
            inner,
            handle: self.handle.clone(),
        }
    }
}

/// The service made by [`CountRequestsLayer`].
#[derive(Debug, Clone)]
pub struct CountRequests<S> {
    inner: S,
    handle: Handle,
}

impl<S, R> tower::Service<R> for CountRequests<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.handle.request();
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service, ServiceExt};

    #[tokio::test]
    async fn the_layer_counts_every_request() {
        let handle = Handle::standalone("test".into());
        let inner =
            tower::service_fn(|n: u32| async move { Ok::<u32, std::convert::Infallible>(n * 2) });
        let mut service = CountRequestsLayer::new(handle.clone()).layer(inner);
        for n in 0..3 {
            let doubled = service
                .ready()
                .await
                .expect("ready")
                .call(n)
                .await
                .expect("call");
            assert_eq!(doubled, n * 2);
        }
        assert_eq!(handle.counters().requests(), 3);
        assert_eq!(handle.counters().connections(), 0);
    }

    /// The one line in a real tonic server: every gRPC call over a real TCP
    /// connection is counted. (tonic's server comes with the daemon feature.)
    #[cfg(feature = "daemon")]
    #[tokio::test]
    async fn a_tonic_server_counts_its_calls_with_one_layer() {
        use tonic_health::pb::health_client::HealthClient;
        use tonic_health::pb::HealthCheckRequest;

        let handle = Handle::standalone("test".into());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (_reporter, health) = tonic_health::server::health_reporter();
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .layer(CountRequestsLayer::new(handle.clone()))
                .add_service(health)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    stop.clone().cancelled_owned(),
                ),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut client = HealthClient::new(channel);
        for _ in 0..3 {
            client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .expect("Check");
        }
        assert_eq!(handle.counters().requests(), 3);
        drop(client);
        stop.cancel();
        server.await.expect("join").expect("serve");
    }

    #[tokio::test]
    async fn the_counting_listener_counts_connections() {
        let handle = Handle::standalone("test".into());
        let listener = CountingListener::new(
            TcpListener::bind("127.0.0.1:0").await.expect("bind"),
            handle.clone(),
        );
        let addr = listener.local_addr().expect("addr");
        for _ in 0..2 {
            let client = tokio::spawn(TcpStream::connect(addr));
            listener.accept().await.expect("accept");
            client.await.expect("join").expect("connect");
        }
        assert_eq!(handle.counters().connections(), 2);
    }

    #[test]
    fn no_sockets_are_taken_without_listen_fds() {
        // LISTEN_FDS is not set in tests: nothing is passed.
        assert_eq!(passed_fd_count().ok(), Some(0));
    }
}
