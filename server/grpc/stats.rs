//! What the gRPC servers count for the metrics page: calls by method and status
//! code (a tower layer around both servers), the `Events` watchers open, and
//! the events they lost by falling behind.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tonic::codegen::http;
use tonic::Code;
use tower::{Layer, Service};

/// The counters, shared by the servers and the metrics page.
#[derive(Debug, Default)]
pub struct RpcStats {
    /// Calls by (method, code). Methods outside the daemon's services count as
    /// one `other` method, so a caller cannot grow the table.
    calls: Mutex<HashMap<(&'static str, Code), u64>>,
    watchers: AtomicU64,
    drops: AtomicU64,
}

/// Every method the daemon serves, as a static name to count under.
const METHODS: &[&str] = &[
    "/infant.v1.Supervisor/Start",
    "/infant.v1.Supervisor/Stop",
    "/infant.v1.Supervisor/Restart",
    "/infant.v1.Supervisor/Send",
    "/infant.v1.Supervisor/Kill",
    "/infant.v1.Supervisor/Scale",
    "/infant.v1.Supervisor/List",
    "/infant.v1.Supervisor/EachWorker",
    "/infant.v1.Supervisor/Events",
    "/infant.v1.WorkerChannel/Attach",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
];

impl RpcStats {
    /// Calls so far: (method without its leading `/`, code name, count).
    pub fn calls(&self) -> Vec<(&'static str, &'static str, u64)> {
        let Ok(calls) = self.calls.lock() else {
            return Vec::new();
        };
        let mut out: Vec<_> = calls
            .iter()
            .map(|((method, code), count)| (*method, code_name(*code), *count))
            .collect();
        out.sort_unstable();
        out
    }

    /// `Events` streams open and following.
    pub fn watchers(&self) -> u64 {
        self.watchers.load(Ordering::Relaxed)
    }

    /// Events that watchers lost because they fell behind.
    pub fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }

    /// A watcher fell `lost` events behind.
    pub fn dropped(&self, lost: u64) {
        self.drops.fetch_add(lost, Ordering::Relaxed);
    }

    /// Counts an open watcher until the guard is dropped.
    pub fn watching(self: &Arc<Self>) -> WatcherGuard {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        WatcherGuard(Arc::clone(self))
    }

    fn count(&self, path: &str, code: Code) {
        let method = METHODS
            .iter()
            .find(|m| **m == path)
            .map_or("other", |m| &m[1..]);
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry((method, code)).or_default() += 1;
        }
    }
}

/// One open `Events` watcher.
#[derive(Debug)]
pub struct WatcherGuard(Arc<RpcStats>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// gRPC's name for a code, as grpc-go and Prometheus exporters print it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The layer that counts every call a server answers.
#[derive(Debug, Clone)]
pub struct CountCalls(pub Arc<RpcStats>);

impl<S> Layer<S> for CountCalls {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            stats: Arc::clone(&self.0),
        }
    }
}

/// A service whose calls are counted by method and code.
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    stats: Arc<RpcStats>,
}

impl<S, B, R> Service<http::Request<B>> for Counted<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let stats = Arc::clone(&self.stats);
        let reply = self.inner.call(request);
        Box::pin(async move {
            let response = reply.await;
            if let Ok(response) = &response {
                // A refused or failed call answers with its status in the
                // headers; a call that got going sends it in the trailers, and
                // counts as OK here (a stream failing midway is not seen).
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<i32>().ok())
                    .map_or(Code::Ok, Code::from_i32);
                stats.count(&path, code);
            }
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_name() {
        let stats = RpcStats::default();
        stats.count("/infant.v1.Supervisor/Start", Code::Ok);
        stats.count("/infant.v1.Supervisor/Start", Code::NotFound);
        stats.count("/x/Y", Code::Unimplemented);
        stats.count("/x/Z", Code::Unimplemented);
        assert_eq!(
            stats.calls(),
            [
                ("infant.v1.Supervisor/Start", "NotFound", 1),
                ("infant.v1.Supervisor/Start", "OK", 1),
                ("other", "Unimplemented", 2),
            ]
        );
    }

    #[test]
    fn watchers_are_counted_while_open() {
        let stats = Arc::new(RpcStats::default());
        let first = stats.watching();
        let second = stats.watching();
        assert_eq!(stats.watchers(), 2);
        drop(first);
        drop(second);
        assert_eq!(stats.watchers(), 0);
    }
}
