//! A tiny HTTP/1 server for the examples: serves on a counting listener and
//! drains gracefully when told to stop — no request that reached this worker is
//! dropped.
//!
//! Draining is more than hyper's `graceful_shutdown`: a connection accepted a
//! moment before the stop may hold a request the server has not read yet, and
//! closing it as "idle" would fail that request. So each connection that has not
//! seen a request yet gets [`FIRST_REQUEST_GRACE`] to deliver one; connections
//! that already served one close once idle.

// Each example uses only part of this module.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use infant::worker::{CountingListener, Handle};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long a connection accepted before the stop may take to send its request.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(5);

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
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.spawn(connection(stream, handle.clone(), stop.clone(), respond.clone()));
            }
            _ = stop.cancelled() => break,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Stop accepting first: the daemon's socket stays open, so connections not yet
    // accepted go to the other workers. Then let what is in flight finish.
    drop(listener);
    let _ = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

async fn connection<F, Fut>(
    stream: tokio::net::TcpStream,
    handle: Handle,
    stop: CancellationToken,
    respond: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let seen = Arc::new(AtomicBool::new(false));
    let first = Arc::new(Notify::new());
    let (seen_in, first_in) = (Arc::clone(&seen), Arc::clone(&first));
    let service = service_fn(move |request| {
        handle.request();
        seen_in.store(true, Ordering::SeqCst);
        first_in.notify_one();
        let respond = respond.clone();
        async move { Ok::<_, Infallible>(respond(request).await) }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.cancelled() => {}
    }
    if !seen.load(Ordering::SeqCst) {
        let wait_first = async {
            tokio::select! {
                _ = conn.as_mut() => true,
                _ = first.notified() => false,
            }
        };
        if let Ok(true) = tokio::time::timeout(FIRST_REQUEST_GRACE, wait_first).await {
            return; // finished while we waited
        }
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// A `text/plain` response.
pub fn text(body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::new(Full::new(body.into()))
}

/// `worker(server)` for an HTTP server answering `body`: an SDK worker whose start
/// hook starts serving on the daemon's socket (or `fallback` outside infant) and
/// whose stop hook drains it. Returns when the worker stops.
pub async fn run_worker(
    title: &str,
    fallback: &'static str,
    body: &'static str,
) -> std::process::ExitCode {
    let stop = CancellationToken::new();
    let server: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>> = Arc::default();
    let (stop_in_start, server_in_start) = (stop.clone(), Arc::clone(&server));
    let result = infant::worker::Worker::new(title)
        .run(
            move |handle: Handle| async move {
                let listener = infant::worker::tcp_listener(fallback).await?;
                let listener = CountingListener::new(listener, handle.clone());
                let task = tokio::spawn(serve(
                    listener,
                    handle,
                    stop_in_start,
                    Duration::from_secs(25),
                    move |_request| async move { text(body) },
                ));
                if let Ok(mut slot) = server_in_start.lock() {
                    *slot = Some(task);
                }
                Ok::<(), std::io::Error>(())
            },
            move |_handle: Handle| async move {
                stop.cancel();
                let task = server.lock().ok().and_then(|mut slot| slot.take());
                if let Some(task) = task {
                    let _ = task.await;
                }
                println!("Stopped");
                Ok::<(), std::io::Error>(())
            },
        )
        .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{title}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
