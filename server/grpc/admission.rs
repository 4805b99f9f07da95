//! Which remote connections the daemon takes, and for how long.
//!
//! A TCP client costs a descriptor before it has presented any token, so
//! without bounds idle connections could take every descriptor the daemon has
//! and leave none to spawn a worker or answer the Unix socket. [`admit`]
//! accepts a connection only while fewer than the cap are open and enough
//! descriptors are free ([`fds::RESERVE`]); past either, new connections wait
//! in the kernel's backlog. [`Admitted`] closes a connection that has sent
//! nothing for [`IDLE_TIMEOUT`]: a live HTTP/2 client answers the server's
//! keepalive pings well within it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::server::{Connected, TcpIncoming};

use crate::daemon::fds;

/// Remote connections open at once, unless `--max-remote-connections` says
/// otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// A remote connection that sends nothing (no request, no answer to a
/// keepalive ping) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the server pings each remote connection; a client that does not
/// answer within [`PING_TIMEOUT`] is dropped. Well under [`IDLE_TIMEOUT`], so
/// that a quiet but live client (an `events --follow` with nothing to report)
/// is never taken for an idle one.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// See [`PING_INTERVAL`].
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the acceptor waits before looking again when descriptors are short
/// or `accept` failed.
const RETRY: Duration = Duration::from_millis(200);

/// Accepts connections from `incoming` into the returned stream, each holding
/// one of `max` places while it is open, and only while more than
/// [`fds::RESERVE`] descriptors are free. Logs once each time the cap or the
/// reserve starts holding connections back. Ends when the stream is dropped.
pub fn admit(
    mut incoming: TcpIncoming,
    max: usize,
) -> ReceiverStream<io::Result<Admitted<tokio::net::TcpStream>>> {
    let (tx, rx) = mpsc::channel(1);
    let places = Arc::new(Semaphore::new(max));
    tokio::spawn(async move {
        let mut held_back = false;
        loop {
            let place = match Arc::clone(&places).try_acquire_owned() {
                Ok(place) => place,
                Err(_) => {
                    if !held_back {
                        tracing::warn!(
                            max,
                            "remote control: {max} connections open, the most allowed \
                             (--max-remote-connections); new ones wait until one closes"
                        );
                        held_back = true;
                    }
                    tokio::select! {
                        place = Arc::clone(&places).acquire_owned() => match place {
                            Ok(place) => place,
                            Err(_) => return,
                        },
                        () = tx.closed() => return,
                    }
                }
            };
            let free = fds::free();
            if free <= fds::RESERVE {
                if !held_back {
                    tracing::warn!(
                        free,
                        reserve = fds::RESERVE,
                        "remote control: few file descriptors left; new remote \
                         connections wait so that supervision keeps enough"
                    );
                    held_back = true;
                }
                drop(place);
                tokio::select! {
                    () = sleep(RETRY) => continue,
                    () = tx.closed() => return,
                }
            }
            let accepted = tokio::select! {
                accepted = incoming.next() => accepted,
                () = tx.closed() => return,
            };
            match accepted {
                Some(Ok(stream)) => {
                    held_back = false;
                    if tx.send(Ok(Admitted::new(stream, place))).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    // Out of descriptors despite the reserve (another thread took
                    // them), or a connection reset before it was accepted.
                    tracing::debug!("remote control: accept failed: {e}");
                    tokio::select! {
                        () = sleep(RETRY) => {}
                        () = tx.closed() => return,
                    }
                }
                None => return,
            }
        }
    });
    ReceiverStream::new(rx)
}

/// An accepted connection: holds its place until closed, and fails its reads
/// once it has sent nothing for [`IDLE_TIMEOUT`].
pub struct Admitted<IO> {
    io: IO,
    idle: Pin<Box<Sleep>>,
    timeout: Duration,
    _place: Option<OwnedSemaphorePermit>,
}

impl<IO> Admitted<IO> {
    fn new(io: IO, place: OwnedSemaphorePermit) -> Self {
        Admitted::with_timeout(io, Some(place), IDLE_TIMEOUT)
    }

    fn with_timeout(io: IO, place: Option<OwnedSemaphorePermit>, timeout: Duration) -> Self {
        Admitted {
            io,
            idle: Box::pin(sleep(timeout)),
            timeout,
            _place: place,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Admitted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + this.timeout;
                    this.idle.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("remote connection idle for {:?}", this.timeout),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Admitted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<IO: Connected> Connected for Admitted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_is_closed() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = Admitted::with_timeout(server, None, Duration::from_secs(60));
        let mut byte = [0u8; 1];

        tokio::time::sleep(Duration::from_secs(50)).await;
        client.write_all(b"x").await.expect("write");
        server.read_exact(&mut byte).await.expect("read in time");

        // Traffic 50 s in moved the deadline: 59 s after it, still open.
        let quiet = tokio::time::timeout(Duration::from_secs(59), server.read(&mut byte)).await;
        assert!(quiet.is_err(), "closed too early: {quiet:?}");
        let error = server.read(&mut byte).await.expect_err("idle");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
