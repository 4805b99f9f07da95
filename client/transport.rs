//! gRPC channels: over Unix sockets, shared by the worker SDK and the control
//! client; and over TCP (TLS, or plaintext to a loopback address) to a daemon's
//! remote control address.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::codegen::http::Uri;
#[cfg(feature = "tls")]
use tonic::transport::{Certificate, ClientTlsConfig};
use tonic::transport::{Channel, Endpoint};

/// How long connecting to a remote daemon (TCP and TLS handshake) may take: a
/// firewall that drops packets must not hang `infantctl` for minutes.
const REMOTE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a gRPC channel to the Unix socket at `path`.
///
/// The channel connects eagerly, so a missing or dead socket is reported here, with
/// the path, rather than on the first call.
///
/// A path that starts with `@` names a socket in Linux's abstract namespace (as
/// `NOTIFY_SOCKET` does): the daemon gives one to instances that run as another
/// user than its own.
pub async fn connect_unix(path: &Path) -> Result<Channel, ConnectError> {
    let socket: PathBuf = abstract_to_nul(path);
    // The URI is never dialled: the connector below ignores it. gRPC over a Unix
    // socket sends `localhost` as the authority, which is what external clients
    // (grpcurl -authority localhost) send too.
    let endpoint = Endpoint::from_static("http://localhost");
    endpoint
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|source| ConnectError {
            path: path.to_path_buf(),
            source,
        })
}

/// `@name` as tokio spells an abstract socket address: a leading NUL byte.
fn abstract_to_nul(path: &Path) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    match path.as_os_str().as_bytes().strip_prefix(b"@") {
        Some(name) => {
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(name);
            PathBuf::from(std::ffi::OsString::from_vec(bytes))
        }
        None => path.to_path_buf(),
    }
}

/// Opens a gRPC channel to a daemon's remote control address (`infantd
/// --control-listen`): `https://HOST:PORT`, whose certificate is verified against
/// the PEM CA certificates `ca_pem` if given, else against the system's trusted
/// roots; or `http://HOST:PORT` for a loopback address served with
/// `--insecure-plaintext`.
///
/// Connects eagerly, so an unreachable daemon or a failed TLS handshake (an
/// untrusted certificate, a name that does not match) is reported here.
pub async fn connect_remote(
    url: &str,
    ca_pem: Option<&[u8]>,
) -> Result<Channel, RemoteConnectError> {
    let uri = parse_remote_url(url)?;
    let bad_url = |reason: &str| RemoteConnectError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let mut endpoint = Endpoint::from(uri.clone())
        .connect_timeout(REMOTE_CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    if uri.scheme_str() == Some("https") {
        endpoint = tls_endpoint(endpoint, ca_pem)?;
    } else if ca_pem.is_some() {
        return Err(bad_url(
            "a CA certificate is for https:// addresses; http:// is not encrypted",
        ));
    }
    endpoint
        .connect()
        .await
        .map_err(|source| RemoteConnectError::Connect {
            url: url.to_owned(),
            source,
        })
}

/// Sets up TLS for an `https://` address: `ca_pem` as the only trusted roots if
/// given, else the system's trusted roots.
#[cfg(feature = "tls")]
fn tls_endpoint(endpoint: Endpoint, ca_pem: Option<&[u8]>) -> Result<Endpoint, RemoteConnectError> {
    let (tls, roots) = match ca_pem {
        Some(pem) => {
            if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(RemoteConnectError::CaCert {
                    reason: "no PEM `-----BEGIN CERTIFICATE-----` block in it".to_owned(),
                });
            }
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            (tls, None)
        }
        None => (
            ClientTlsConfig::new().with_native_roots(),
            Some("the system's trusted root certificates"),
        ),
    };
    endpoint
        .tls_config(tls.timeout(REMOTE_CONNECT_TIMEOUT))
        .map_err(|e| match roots {
            None => RemoteConnectError::CaCert {
                reason: describe(&e),
            },
            Some(roots) => RemoteConnectError::Roots {
                reason: format!("{roots}: {}", describe(&e)),
            },
        })
}

/// Built without the `tls` feature: `https://` addresses cannot be reached.
#[cfg(not(feature = "tls"))]
fn tls_endpoint(_: Endpoint, _: Option<&[u8]>) -> Result<Endpoint, RemoteConnectError> {
    Err(RemoteConnectError::CaCert {
        reason: "this build of infant has no TLS support (cargo feature `tls`)".to_owned(),
    })
}

/// Checks a remote daemon's address: `https://HOST:PORT`, or `http://HOST:PORT`
/// with a loopback HOST (`localhost`, `127.0.0.1`, `[::1]`), since plain HTTP
/// would carry the bearer token in clear text.
pub fn parse_remote_url(url: &str) -> Result<Uri, RemoteConnectError> {
    let bad = |reason: &str| RemoteConnectError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
    let host = uri.host().filter(|h| !h.is_empty());
    let (Some(scheme), Some(host)) = (uri.scheme_str(), host) else {
        return Err(bad("expected https://HOST:PORT"));
    };
    if uri.port_u16().is_none() {
        return Err(bad("the port is missing: expected https://HOST:PORT"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("expected https://HOST:PORT, with no path"));
    }
    match scheme {
        "https" => Ok(uri),
        "http" if is_loopback(host) => Ok(uri),
        "http" => Err(bad(
            "http:// would send the token unencrypted: it is allowed only to a loopback \
             address (localhost, 127.0.0.1, [::1]); use https://",
        )),
        _ => Err(bad(
            "the scheme must be https:// (or http:// to a loopback address)",
        )),
    }
}

/// `localhost` or a loopback IP (`[::1]` comes with its brackets).
fn is_loopback(host: &str) -> bool {
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A remote daemon could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum RemoteConnectError {
    /// The address is not one a daemon can be reached at.
    #[error("`{url}`: {reason}")]
    Url {
        /// The address as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA certificate given cannot be used.
    #[error("CA certificate: {reason}")]
    CaCert {
        /// What is wrong with it.
        reason: String,
    },
    /// No CA certificate was given and the system's trusted roots cannot be
    /// loaded (a container without CA certificates, say).
    #[error("{reason}: give a CA certificate")]
    Roots {
        /// What went wrong.
        reason: String,
    },
    /// Connecting failed: refused, timed out, or the TLS handshake failed.
    #[error("cannot connect to infantd at {url}: {}", describe(source))]
    Connect {
        /// The address that was dialled.
        url: String,
        /// What the transport reported.
        #[source]
        source: tonic::transport::Error,
    },
}

/// The daemon's socket could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to infantd at {}: {}", path.display(), describe(source))]
pub struct ConnectError {
    /// The socket that was dialled.
    pub path: PathBuf,
    /// What the transport reported.
    #[source]
    pub source: tonic::transport::Error,
}

/// tonic's transport error prints only "transport error"; the cause underneath is
/// what a user needs ("No such file or directory", "Connection refused").
fn describe(error: &tonic::transport::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = cause.to_string();
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls() {
        for ok in [
            "https://example.com:7000",
            "https://10.1.2.3:7000/",
            "http://127.0.0.1:7000",
            "http://localhost:7000",
            "http://[::1]:7000",
        ] {
            assert!(parse_remote_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("example.com:7000", "https://HOST:PORT"),
            ("https://example.com", "port"),
            ("https://example.com:7000/infant", "no path"),
            ("ftp://example.com:7000", "scheme"),
            ("http://10.1.2.3:7000", "loopback"),
            ("http://0.0.0.0:7000", "loopback"),
            ("not a url", "not a url"),
        ] {
            match parse_remote_url(bad) {
                Ok(uri) => panic!("{bad} was accepted as {uri}"),
                Err(error) => assert!(error.to_string().contains(why), "{bad}: {error}"),
            }
        }
    }
}
