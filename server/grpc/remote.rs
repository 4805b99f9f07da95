//! The control API over TCP: [`RemoteListener`] (where, with which TLS identity,
//! which token), the bearer-token check, and [`serve_remote`].
//!
//! Over TCP there are no peer credentials to trust, so every call must carry
//! `authorization: Bearer <token>` instead; health and reflection too, since
//! reflection describes the whole API. Only the `Supervisor` service, health and
//! reflection are served here: the `WorkerChannel` stays on the Unix socket,
//! where the daemon can check which process is attaching.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tonic::service::Interceptor;
use tonic::transport::server::{TcpConnectInfo, TcpIncoming, TlsConnectInfo};
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};

use super::admission::{self, DEFAULT_MAX_CONNECTIONS, PING_INTERVAL, PING_TIMEOUT};
use super::{reflection, SupervisorService, MAX_REQUEST};
use crate::daemon::engine::EngineHandle;
use crate::daemon::error::{Error, Result};
use crate::proto::supervisor_server::SupervisorServer;

/// How long a client gets to finish its TLS handshake: a connection that stalls
/// in it holds a socket and a task, nothing more, but not forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP keepalive on accepted connections, so a client that vanished (cable
/// pulled, laptop closed) does not keep an `Events --follow` stream open forever.
const KEEPALIVE: Duration = Duration::from_secs(60);

/// The secret every remote call must present as `authorization: Bearer <token>`.
///
/// Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct BearerToken(Arc<[u8]>);

impl BearerToken {
    /// A token: one or more visible ASCII characters (`!` to `~`), so that any gRPC
    /// client can send it in a header unchanged.
    pub fn new(token: &str) -> Result<BearerToken> {
        let invalid = |reason: &str| Error::InvalidArgument {
            field: "token",
            reason: reason.to_owned(),
        };
        if token.is_empty() {
            return Err(invalid("the token is empty"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "the token may contain only visible ASCII characters, \
                 no spaces or control characters (it is sent in an HTTP header)",
            ));
        }
        Ok(BearerToken(Arc::from(token.as_bytes())))
    }

    /// Whether `presented` is the token, in time that does not depend on where
    /// the two first differ, so response times cannot be used to guess it byte by
    /// byte. (Only a difference in length returns early, and the length tells an
    /// attacker nothing useful about a random token.)
    fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_ref().ct_eq(presented).into()
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Where and how to serve the control API over TCP, in addition to the Unix socket.
#[derive(Debug, Clone)]
pub struct RemoteListener {
    address: SocketAddr,
    tls: Option<ServerTlsConfig>,
    token: BearerToken,
    max_connections: usize,
}

impl RemoteListener {
    /// Serves on `address` over TLS with the PEM certificate chain `cert_pem` and
    /// its PEM private key `key_pem`. Fails if they cannot be used together.
    pub fn tls(
        address: SocketAddr,
        cert_pem: &[u8],
        key_pem: &[u8],
        token: BearerToken,
    ) -> Result<RemoteListener> {
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert_pem, key_pem))
            .timeout(HANDSHAKE_TIMEOUT);
        // Building the acceptor parses both PEMs and checks that the key fits; do
        // it now so a bad file stops the daemon before it starts anything.
        Server::builder()
            .tls_config(tls.clone())
            .map_err(|e| Error::InvalidArgument {
                field: "TLS certificate and key",
                reason: error_chain(&e),
            })?;
        Ok(RemoteListener {
            address,
            tls: Some(tls),
            token,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        })
    }

    /// Serves on `address` without TLS: the token and every reply would cross the
    /// network in clear text, so only a loopback address is accepted.
    pub fn insecure_plaintext(address: SocketAddr, token: BearerToken) -> Result<RemoteListener> {
        if !address.ip().is_loopback() {
            return Err(Error::InvalidArgument {
                field: "address",
                reason: format!(
                    "plaintext is allowed only on a loopback address (127.0.0.1, ::1), not {address}"
                ),
            });
        }
        Ok(RemoteListener {
            address,
            tls: None,
            token,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        })
    }

    /// The address to bind.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Whether connections are encrypted.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Accepts at most `max` (at least 1) connections at once, 256 unless told
    /// otherwise; more wait in the kernel's backlog until one closes. Whatever
    /// the cap, connections are also held back while the daemon has few file
    /// descriptors free, so that supervision never runs short of them.
    pub fn max_connections(mut self, max: usize) -> RemoteListener {
        self.max_connections = max.max(1);
        self
    }
}

/// Serves the `Supervisor` service, health and reflection on `listener`, for
/// callers that present `remote`'s token, until `shutdown` resolves.
pub async fn serve_remote(
    engine: EngineHandle,
    listener: TcpListener,
    remote: RemoteListener,
    stats: std::sync::Arc<super::RpcStats>,
    reload: Option<crate::daemon::reload::ReloadHandle>,
    shutdown: impl Future<Output = ()>,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<SupervisorServer<SupervisorService>>()
        .await;
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    // The pings keep a quiet client's connection from counting as idle, and
    // drop one whose peer has gone.
    let mut server = Server::builder()
        .http2_keepalive_interval(Some(PING_INTERVAL))
        .http2_keepalive_timeout(Some(PING_TIMEOUT));
    if let Some(tls) = remote.tls {
        server = server.tls_config(tls)?;
    }
    let incoming = admission::admit(
        TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(KEEPALIVE)),
        remote.max_connections,
    );
    server
        .layer(super::stats::CountCalls(std::sync::Arc::clone(&stats)))
        .layer(tonic::service::InterceptorLayer::new(BearerAuth {
            token: remote.token,
        }))
        .add_service(
            SupervisorServer::new(SupervisorService::new(engine, stats).reload(reload))
                .max_decoding_message_size(MAX_REQUEST),
        )
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Admits a call only with `authorization: Bearer <the token>`.
#[derive(Clone)]
struct BearerAuth {
    token: BearerToken,
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> std::result::Result<Request<()>, Status> {
        let refused = match request.metadata().get("authorization") {
            None => "missing `authorization: Bearer <token>` metadata",
            Some(value) => match bearer_credentials(value.as_bytes()) {
                Some(presented) if self.token.matches(presented) => return Ok(request),
                Some(_) => "wrong bearer token",
                None => "the `authorization` metadata is not `Bearer <token>`",
            },
        };
        // The message never echoes what was presented: it may be a real token
        // sent to the wrong daemon.
        tracing::warn!(peer = %peer(&request), "remote control call refused: {refused}");
        Err(Status::unauthenticated(refused))
    }
}

/// The credentials of `Bearer <credentials>`; the scheme is case-insensitive
/// (RFC 7235).
fn bearer_credentials(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.starts_with(b" ") {
        return None;
    }
    Some(rest.trim_ascii())
}

/// The caller's address, for the log.
fn peer(request: &Request<()>) -> String {
    let extensions = request.extensions();
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .map(|info| info.get_ref())
        .or_else(|| extensions.get::<TcpConnectInfo>())
        .and_then(TcpConnectInfo::remote_addr)
        .map_or_else(|| "unknown".to_owned(), |addr| addr.to_string())
}

/// tonic's errors print "transport error" on top; the causes say what is wrong.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(token: &str) -> BearerAuth {
        BearerAuth {
            token: BearerToken::new(token).expect("a valid token"),
        }
    }

    fn call(auth: &mut BearerAuth, header: Option<&str>) -> std::result::Result<(), Status> {
        let mut request = Request::new(());
        if let Some(header) = header {
            request
                .metadata_mut()
                .insert("authorization", header.parse().expect("ascii"));
        }
        auth.call(request).map(|_| ())
    }

    #[test]
    fn tokens_must_be_visible_ascii() {
        assert!(BearerToken::new("s3cr3t-token_~").is_ok());
        for bad in ["", "two words", "tab\there", "caf\u{e9}", "line\n"] {
            assert!(BearerToken::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_right_token_passes_and_nothing_else_does() {
        let mut auth = auth("s3cr3t");
        assert!(call(&mut auth, Some("Bearer s3cr3t")).is_ok());
        assert!(call(&mut auth, Some("bearer s3cr3t")).is_ok());
        for header in [
            None,
            Some("Bearer s3cr3"),
            Some("Bearer s3cr3tt"),
            Some("Bearer "),
            Some("Basic s3cr3t"),
            Some("Bearers3cr3t"),
            Some("s3cr3t"),
        ] {
            let status = call(&mut auth, header).expect_err("refused");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{header:?}");
            assert!(!status.message().contains("s3cr3"), "{}", status.message());
        }
    }

    #[test]
    fn debug_output_hides_the_token() {
        let token = BearerToken::new("s3cr3t").expect("valid");
        assert!(!format!("{token:?}").contains("s3cr3t"));
    }

    #[test]
    fn plaintext_only_on_loopback() {
        let token = BearerToken::new("t").expect("valid");
        for ok in ["127.0.0.1:7000", "[::1]:7000", "127.8.9.10:1"] {
            let address = ok.parse().expect("address");
            assert!(RemoteListener::insecure_plaintext(address, token.clone()).is_ok());
        }
        for refused in ["0.0.0.0:7000", "[::]:7000", "192.168.1.2:7000"] {
            let address = refused.parse().expect("address");
            assert!(RemoteListener::insecure_plaintext(address, token.clone()).is_err());
        }
    }
}
