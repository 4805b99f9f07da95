//! The standard gRPC health service, per program, with a real tonic health
//! client: on the control socket, and alone over TCP with `--health-listen`.

pub mod common;

use common::*;
use infant::proto::{self, supervisor_client::SupervisorClient};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn check(
    client: &mut HealthClient<Channel>,
    service: &str,
) -> Result<ServingStatus, tonic::Status> {
    let reply = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?
        .into_inner();
    Ok(reply.status())
}

async fn wait_status(client: &HealthClient<Channel>, service: &str, wanted: ServingStatus) {
    wait_until(&format!("{service:?} {wanted:?}"), DEADLINE, || {
        let mut client = client.clone();
        async move { check(&mut client, service).await.ok() == Some(wanted) }
    })
    .await;
}

const WEB: &str = r#"
[program.web]
command = ["sleep", "1000"]
start_grace = "50ms"
"#;

#[tokio::test]
async fn health_listen_serves_per_program_statuses_and_nothing_else() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with(
        &["--config", "app.toml", "--health-listen", &address],
        |dir| std::fs::write(dir.join("app.toml"), WEB).expect("write app.toml"),
    )
    .await;
    let channel = Channel::from_shared(format!("http://{address}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to --health-listen");
    let mut health = HealthClient::new(channel.clone());
    wait_status(&health, "web", ServingStatus::Serving).await;
    assert_eq!(
        check(&mut health, "").await.ok(),
        Some(ServingStatus::Serving)
    );
    let unknown = check(&mut health, "nope")
        .await
        .expect_err("unknown program");
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // Only health: the control API is not reachable there.
    let refused = SupervisorClient::new(channel)
        .list(proto::ListRequest::default())
        .await
        .expect_err("no control API over the health listener");
    assert_eq!(refused.code(), tonic::Code::Unimplemented, "{refused}");

    // Watch follows web as it stops and starts again.
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "web".into(),
        })
        .await
        .expect("Watch")
        .into_inner();
    let first = watch
        .message()
        .await
        .expect("Watch")
        .expect("a first status");
    assert_eq!(first.status(), ServingStatus::Serving);
    let mut control = daemon.client().await;
    control
        .stop(proto::StopRequest {
            name: "web".into(),
            timeout_ms: None,
        })
        .await
        .expect("Stop web");
    let next = tokio::time::timeout(DEADLINE, watch.message())
        .await
        .expect("a change within the deadline")
        .expect("Watch")
        .expect("a status");
    assert_eq!(next.status(), ServingStatus::NotServing);
    assert_eq!(
        check(&mut health, "web").await.ok(),
        Some(ServingStatus::NotServing)
    );
    control
        .start(proto::StartRequest {
            name: "web".into(),
            ..Default::default()
        })
        .await
        .expect("Start web");
    let mut serving_again = false;
    while let Ok(Some(Ok(Some(status)))) = tokio::time::timeout(DEADLINE, watch.message())
        .await
        .map(Some)
    {
        if status.status() == ServingStatus::Serving {
            serving_again = true;
            break;
        }
    }
    assert!(serving_again, "Watch reported web serving again");
    drop(watch);
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_program_that_cannot_run_makes_the_daemon_unhealthy_but_alive() {
    let daemon = Daemon::start(&[]).await;
    let mut health = HealthClient::new(
        infant::transport::connect_unix(&daemon.socket)
            .await
            .expect("connect"),
    );
    wait_status(&health, "", ServingStatus::Serving).await;
    let mut control = daemon.client().await;
    let missing = spec(proto::ProgramKind::Child, &["/nonexistent/program"]);
    let refused = start_program_result(&mut control, "broken", missing).await;
    assert!(refused.is_err(), "{refused:?}");
    wait_status(&health, "", ServingStatus::NotServing).await;
    assert_eq!(
        check(&mut health, "broken").await.ok(),
        Some(ServingStatus::NotServing)
    );
    assert_eq!(
        check(&mut health, "infant.v1.Supervisor").await.ok(),
        Some(ServingStatus::Serving),
        "the daemon itself is alive"
    );
    daemon.stop().await;
}
