//! A tiny HTTP/1 server for the examples: serves on a counting listener and
//! drains gracefully — in-flight requests finish, idle keep-alive connections
//! close — when told to stop.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use infant::worker::{CountingListener, Handle};
use tokio_util::sync::CancellationToken;

/// Serves `respond` on `listener` until `stop` is cancelled, then waits up to
/// `drain` for in-flight requests. Every request is counted on `handle`.
pub async fn serve<F, Fut>(
    listener: CountingListener,
    handle: Handle,
    stop: CancellationToken,
    drain: Duration,
    respond: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let handle = handle.clone();
                let respond = respond.clone();
                let service = service_fn(move |request| {
                    handle.request();
                    let respond = respond.clone();
                    async move { Ok::<_, Infallible>(respond(request).await) }
                });
                let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = watched.await;
                });
            }
            _ = stop.cancelled() => break,
        }
    }
    // Stop accepting first (the daemon's socket stays open for the other
    // workers), then let what is in flight finish.
    drop(listener);
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
}

/// A `text/plain` response.
pub fn text(body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::new(Full::new(body.into()))
}
