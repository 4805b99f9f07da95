//! `infantd --metrics-listen HOST:PORT`: `GET /metrics` in the Prometheus text
//! format, or OpenMetrics when the scraper's `Accept` header asks for it.
//!
//! A scrape asks the engine for its program and worker snapshots, reads the
//! daemon's own RSS and open descriptors, and encodes them with
//! `prometheus-client` into a buffer dropped after the reply: nothing is kept
//! between scrapes except the counters [`tally`] derives from the event bus (one
//! entry per program), so memory does not grow with scrapes. Nothing is sampled
//! between scrapes either: an idle daemon that is not scraped does no work here.
//!
//! - `collect`: the snapshot and its encoding;
//! - `tally`: counts from the event stream (recycles, failed starts, drops).
//!
//! Calls by method and code, watchers and their drops are counted by the gRPC
//! servers ([`RpcStats`]).

mod collect;
pub mod tally;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::daemon::engine::EngineHandle;
use crate::daemon::error::{Error, Result};
use crate::daemon::grpc::RpcStats;

pub use tally::Tally;

/// The Prometheus text format (version 0.0.4), what a plain request gets.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// OpenMetrics, for a scraper whose `Accept` names it.
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Where to serve metrics, checked: a loopback address, unless the user said the
/// port sits behind a proxy that guards it (the page has no authentication).
#[derive(Debug, Clone, Copy)]
pub struct MetricsListener {
    address: SocketAddr,
}

impl MetricsListener {
    /// `address`, if it is loopback or `behind_proxy` says exposing it is meant.
    pub fn new(address: SocketAddr, behind_proxy: bool) -> Result<MetricsListener> {
        if !address.ip().is_loopback() && !behind_proxy {
            return Err(Error::InvalidArgument {
                field: "--metrics-listen",
                reason: format!(
                    "{address} is not a loopback address; the metrics page has no \
                     authentication, so serve it on 127.0.0.1 or ::1, or pass \
                     --metrics-behind-proxy if a proxy in front of it controls access"
                ),
            });
        }
        Ok(MetricsListener { address })
    }

    /// The address to bind.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    engine: EngineHandle,
    listener: TcpListener,
    tally: Arc<Tally>,
    rpcs: Arc<RpcStats>,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, say: the next accept may work.
                    tracing::warn!("metrics: accept failed: {error}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let engine = engine.clone();
        let tally = Arc::clone(&tally);
        let rpcs = Arc::clone(&rpcs);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let engine = engine.clone();
                let tally = Arc::clone(&tally);
                let rpcs = Arc::clone(&rpcs);
                async move { Ok::<_, Infallible>(respond(&engine, &tally, &rpcs, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!("metrics: connection ended: {error}");
                    }
                }
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// One request: the page, or why not.
async fn respond(
    engine: &EngineHandle,
    tally: &Tally,
    rpcs: &RpcStats,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "only /metrics is served here\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
    }
    let openmetrics = request
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"));
    let snapshot = match collect::Snapshot::take(engine, tally, rpcs).await {
        Ok(snapshot) => snapshot,
        Err(error) => {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the supervisor is not answering: {error}\n"),
            )
        }
    };
    let mut body = match snapshot.encode() {
        Ok(body) => body,
        Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
    };
    let content_type = if openmetrics {
        OPENMETRICS_TEXT
    } else {
        // The same exposition without OpenMetrics' end marker is valid
        // Prometheus text: every type used here exists in both formats.
        if let Some(stripped) = body.strip_suffix("# EOF\n") {
            body.truncate(stripped.len());
        }
        PROMETHEUS_TEXT
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_unless_behind_a_proxy() {
        let public: SocketAddr = "0.0.0.0:9100".parse().unwrap();
        let error = MetricsListener::new(public, false).unwrap_err().to_string();
        assert!(error.contains("--metrics-listen"), "{error}");
        assert!(error.contains("--metrics-behind-proxy"), "{error}");
        assert!(MetricsListener::new(public, true).is_ok());
        assert!(MetricsListener::new("127.0.0.1:9100".parse().unwrap(), false).is_ok());
        assert!(MetricsListener::new("[::1]:9100".parse().unwrap(), false).is_ok());
    }
}
