//! A tiny HTTP/1 server for the examples: serves on a counting listener and
//! drains gracefully when told to stop — no request that reached this worker is
//! dropped.
//!
//! Draining is more than hyper's `graceful_shutdown`: a connection that looks
//! idle may hold a request the server has not read yet (accepted a moment before
//! the stop, or a keep-alive client sending its next request), and closing it
//! would fail that request; so would closing a kept-alive connection right after
//! an answer that did not say `Connection: close`. So after the stop every answer
//! says `Connection: close` (the client's next request opens a new connection,
//! which another worker accepts), and a connection is closed by the server only
//! once it has stayed idle for a moment ([`FIRST_REQUEST_GRACE`] if it never sent
//! a request, [`NEXT_REQUEST_GRACE`] otherwise).

// Each example uses only part of this module.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION};
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
/// How long an idle keep-alive connection is kept at the stop, for a request the
/// client may be sending right then (it gets `Connection: close` with its answer).
const NEXT_REQUEST_GRACE: Duration = Duration::from_millis(500);

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
    // Requests started and finished on this connection. Every answer produced
    // after the stop says `Connection: close`, so hyper closes the connection
    // right after it and the client opens a new one (to another worker) for its
    // next request: the connection is never closed under a request.
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(Notify::new());
    let (started_in, finished_in, next_in, stop_in) = (
        Arc::clone(&started),
        Arc::clone(&finished),
        Arc::clone(&next),
        stop.clone(),
    );
    let service = service_fn(move |request| {
        handle.request();
        started_in.fetch_add(1, Ordering::SeqCst);
        // Wakes a drain waiting for this request; stores no permit otherwise
        // (`notify_one` would, and a permit left by an earlier request would end
        // that wait at once).
        next_in.notify_waiters();
        let respond = respond.clone();
        let finished = Arc::clone(&finished_in);
        let stop = stop_in.clone();
        async move {
            let mut response = respond(request).await;
            if stop.is_cancelled() {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            finished.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(response)
        }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.cancelled() => {}
    }
    // A request in flight, or one the client sends now on this kept-alive
    // connection (its previous answer may have gone out just before the stop),
    // is answered with `Connection: close`, and the connection ends after it.
    // Only a connection that stays idle for a grace period is closed by us.
    let served = started.load(Ordering::SeqCst);
    let grace = if served == 0 {
        FIRST_REQUEST_GRACE
    } else {
        NEXT_REQUEST_GRACE
    };
    let closing_answer = async {
        loop {
            // Registered before the check, so a request starting between the
            // two is not missed.
            let notified = next.notified();
            let now = started.load(Ordering::SeqCst);
            if now > served || now != finished.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    };
    tokio::select! {
        _ = conn.as_mut() => return,
        answered = tokio::time::timeout(grace, closing_answer) => {
            if answered.is_err() {
                // Idle all along: nothing can be lost by closing it now.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
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
