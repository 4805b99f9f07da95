//! The standard health service (`grpc.health.v1.Health`), per program.
//!
//! - `Check(service = "web")` is `SERVING` only while program `web` is `ok`,
//!   `NOT_SERVING` otherwise (starting, stopping, stopped, in error);
//!   a name the daemon does not know is `NOT_FOUND`.
//! - `Check(service = "")` is the daemon as a whole: `SERVING` while no program
//!   is `error` or `fatal`. A program that cannot run at all (a missing
//!   executable in a container image) stays `error`, so the daemon reports
//!   itself unhealthy instead of looking fine while running nothing.
//! - `Check(service = "infant.v1.Supervisor")` is the daemon process alone:
//!   `SERVING` until it shuts down (a liveness probe that a crashing program
//!   must not trip).
//!
//! `Watch` streams each change. The statuses follow the engine's events; the
//! same statuses are served on the control socket and, with `--health-listen`,
//! alone over plain TCP for probes ([`serve_health`]).

use std::collections::BTreeMap;
use std::future::Future;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use crate::daemon::engine::events::EventKind;
use crate::daemon::engine::state::ProgramStatus;
use crate::daemon::engine::EngineHandle;

/// The service name that stands for the daemon process alone.
const DAEMON: &str = "infant.v1.Supervisor";

/// A reporter whose statuses follow the engine's programs from now on, until the
/// engine stops (then everything is `NOT_SERVING`).
pub fn track(engine: EngineHandle) -> HealthReporter {
    let reporter = HealthReporter::new();
    tokio::spawn(follow(engine, reporter.clone()));
    reporter
}

/// The health service over `reporter`'s statuses.
pub fn service(reporter: &HealthReporter) -> HealthServer<HealthService> {
    HealthServer::new(HealthService::from_health_reporter(reporter.clone()))
}

/// Serves only the health service on `listener`, plain TCP, no token: it tells
/// nothing but statuses, which is what kubelet's gRPC probes need.
pub async fn serve_health(
    reporter: HealthReporter,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Server::builder()
        .add_service(service(&reporter))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

async fn follow(engine: EngineHandle, mut reporter: HealthReporter) {
    reporter
        .set_service_status(DAEMON, ServingStatus::Serving)
        .await;
    // Subscribe first, then list: nothing falls between the two.
    let Ok(mut events) = engine.subscribe().await else {
        return stopped(&reporter, &BTreeMap::new()).await;
    };
    events.skip_history();
    let mut statuses = BTreeMap::new();
    let mut published = BTreeMap::new();
    loop {
        let Ok(programs) = engine.list(None).await else {
            break;
        };
        for program in programs {
            statuses.insert(program.name, program.status);
        }
        publish(&reporter, &statuses, &mut published).await;
        // Status changes until the watcher falls behind; then list again.
        loop {
            let Some(delivery) = events.next().await else {
                return stopped(&reporter, &statuses).await;
            };
            if delivery.event.kind == EventKind::Removed {
                // Forgotten: no longer a service the daemon knows.
                statuses.remove(&delivery.event.program);
                published.remove(&delivery.event.program);
                reporter.clear_service_status(&delivery.event.program).await;
                publish(&reporter, &statuses, &mut published).await;
            }
            if let Some(status) = delivery.event.program_status {
                statuses.insert(delivery.event.program.clone(), status);
                publish(&reporter, &statuses, &mut published).await;
            }
            if delivery.missed > 0 {
                // Fell behind: what was missed may have changed a status.
                break;
            }
        }
    }
    stopped(&reporter, &statuses).await;
}

/// Sets each program's status and the daemon's overall one where they changed
/// (`published`: what watchers were last told), so that `Watch` sends changes
/// only.
async fn publish(
    reporter: &HealthReporter,
    statuses: &BTreeMap<String, ProgramStatus>,
    published: &mut BTreeMap<String, ServingStatus>,
) {
    let healthy = !statuses
        .values()
        .any(|status| matches!(status, ProgramStatus::Error | ProgramStatus::Fatal));
    let wanted = statuses
        .iter()
        .map(|(name, status)| (name.as_str(), serving(*status == ProgramStatus::Ok)))
        .chain([("", serving(healthy))]);
    for (name, status) in wanted {
        if published.get(name) != Some(&status) {
            reporter.set_service_status(name, status).await;
            published.insert(name.to_owned(), status);
        }
    }
}

/// The engine is gone: nothing serves any more.
async fn stopped(reporter: &HealthReporter, statuses: &BTreeMap<String, ProgramStatus>) {
    for name in statuses.keys().map(String::as_str).chain(["", DAEMON]) {
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
}

fn serving(yes: bool) -> ServingStatus {
    if yes {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}
