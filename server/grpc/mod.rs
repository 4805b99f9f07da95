//! The gRPC front end: the `Supervisor` and `WorkerChannel` services, the standard
//! health service and server reflection (v1 and v1alpha) on one Unix socket; and,
//! optionally, the control API alone over TCP ([`serve_remote`]).
//!
//! This layer turns requests into engine calls and engine errors into statuses; it
//! knows nothing about processes. Every connection to the Unix socket is checked
//! against the socket's peer credentials: only the daemon's own uid and root may
//! call. Over TCP a bearer token takes their place.

mod admission;
mod convert;
pub mod health;
mod remote;
mod stats;
mod status;
mod supervisor;
mod worker_channel;

use std::future::Future;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::UdsConnectInfo;
use tonic::transport::Server;
use tonic::{Request, Status};

use crate::daemon::engine::EngineHandle;
use crate::daemon::reload::ReloadHandle;
use crate::proto::supervisor_server::SupervisorServer;
use crate::proto::worker_channel_server::WorkerChannelServer;

pub use remote::{serve_remote, BearerToken, RemoteListener};
pub use stats::RpcStats;
pub use supervisor::SupervisorService;
pub use worker_channel::WorkerChannelService;

/// The largest request message either service decodes: a 1 MiB payload and
/// room for the fields around it. A larger one ends with RESOURCE_EXHAUSTED
/// before it is ever buffered whole.
const MAX_REQUEST: usize = 1024 * 1024 + 64 * 1024;

/// Serves the control and worker APIs on `listener` until `shutdown` resolves.
/// `health` holds the statuses of the standard health service (see [`health`]);
/// `reload` serves `Reload` (without it, the daemon has no config file to reread).
pub async fn serve(
    engine: EngineHandle,
    listener: UnixListener,
    health: tonic_health::server::HealthReporter,
    stats: Arc<RpcStats>,
    reload: Option<ReloadHandle>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let health_service = health::service(&health);
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    Server::builder()
        .layer(stats::CountCalls(Arc::clone(&stats)))
        .layer(tonic::service::InterceptorLayer::new(check_peer))
        .add_service(
            SupervisorServer::new(SupervisorService::new(engine.clone(), stats).reload(reload))
                .max_decoding_message_size(MAX_REQUEST),
        )
        .add_service(
            WorkerChannelServer::new(WorkerChannelService::new(engine))
                .max_decoding_message_size(MAX_REQUEST),
        )
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

/// Serves the worker channel alone on `listener` (an abstract socket any user
/// can reach) until `shutdown` resolves. No peer check: each instance proves
/// who it is with its token, as on the control socket.
pub async fn serve_workers(
    engine: EngineHandle,
    listener: UnixListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Server::builder()
        .add_service(
            WorkerChannelServer::new(WorkerChannelService::new(engine))
                .max_decoding_message_size(MAX_REQUEST),
        )
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

/// Server reflection over the daemon's services and the health service.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// Admits only the daemon's own user and root, by the kernel's word (peer
/// credentials), whatever the socket file's mode says.
#[allow(clippy::result_large_err)]
fn check_peer(request: Request<()>) -> Result<Request<()>, Status> {
    let uid = request
        .extensions()
        .get::<UdsConnectInfo>()
        .and_then(|info| info.peer_cred)
        .map(|cred| cred.uid());
    let me = nix::unistd::geteuid().as_raw();
    match uid {
        Some(uid) if uid == me || uid == 0 => Ok(request),
        Some(uid) => Err(Status::permission_denied(format!(
            "uid {uid} may not use this infantd (it serves uid {me} and root)"
        ))),
        None => Err(Status::permission_denied("peer credentials unavailable")),
    }
}
