//! The supervisor embedded in this test's own process: serving the control API
//! over TCP, and removing a program through the library. A file of its own: an
//! embedded supervisor owns its process's children (it reaps them, and kills
//! what is left at shutdown), so it must not share a test process with tests
//! that start `infantd`, and its tests take turns.

pub mod common;

use common::{free_port, short_tempdir};
use infant::control::Control;
use infant::daemon::{BearerToken, ProgramDef, RemoteListener, Supervisor, SupervisorOptions};

const TOKEN: &str = "embedded-remote-test-token-0123456789";

/// The tests take turns: a supervisor's shutdown kills whatever children of
/// this process are left, the other test's programs included.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An embedding program builds the remote listener from the library's own
/// types: `BearerToken` is public with `RemoteListener`.
#[tokio::test]
async fn an_embedded_supervisor_serves_the_control_api_over_tcp() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = short_tempdir();
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let token = BearerToken::new(TOKEN).expect("a valid token");
    let remote = RemoteListener::insecure_plaintext(address, token).expect("loopback plaintext");
    let supervisor = Supervisor::start_with(
        &dir.path().join("d.sock"),
        SupervisorOptions::new().remote(remote),
    )
    .await
    .expect("start the embedded supervisor");
    let url = format!("http://{address}");
    let control = Control::connect_remote(&url, TOKEN, None)
        .await
        .expect("connect over TCP");
    assert!(control.list(None).await.expect("List").is_empty());
    let wrong = Control::connect_remote(&url, "not-the-token", None)
        .await
        .expect("connect over TCP");
    assert!(wrong.list(None).await.is_err(), "a wrong token is refused");
    supervisor.shutdown().await;
}

/// An embedding program starts, stops and removes programs through the
/// library alone; a removed program is gone and its process with it.
#[tokio::test]
async fn an_embedded_supervisor_removes_a_program() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = short_tempdir();
    let supervisor = Supervisor::start(&dir.path().join("d.sock"))
        .await
        .expect("start the embedded supervisor");
    let def = ProgramDef {
        command: Some(vec!["sleep".into(), "1000".into()]),
        ..ProgramDef::default()
    };
    let info = supervisor
        .start_program("nap", Some(def), false)
        .await
        .expect("Start");
    let pid = supervisor.workers(Some("nap")).await.expect("workers")[0].pid;
    assert_eq!(info.name, "nap");
    supervisor
        .remove_program("nap", None)
        .await
        .expect("Remove");
    assert!(supervisor
        .programs(None)
        .await
        .expect("programs")
        .is_empty());
    assert!(
        supervisor.programs(Some("nap")).await.is_err(),
        "nap is unknown now"
    );
    common::wait_gone(&[pid], common::DEADLINE).await;
    supervisor.shutdown().await;
}
