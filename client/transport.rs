//! gRPC channels over Unix sockets, shared by the worker SDK and the control client.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

/// Opens a gRPC channel to the Unix socket at `path`.
///
/// The channel connects eagerly, so a missing or dead socket is reported here, with
/// the path, rather than on the first call.
pub async fn connect_unix(path: &Path) -> Result<Channel, ConnectError> {
    let socket: PathBuf = path.to_path_buf();
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
