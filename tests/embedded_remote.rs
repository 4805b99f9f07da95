//! The supervisor embedded in this test's own process, serving the control API
//! over TCP. A file of its own: an embedded supervisor owns its process's
//! children (it reaps them, and kills what is left at shutdown), so it must not
//! share a test process with tests that start `infantd`.

pub mod common;

use common::{free_port, short_tempdir};
use infant::control::Control;
use infant::daemon::{BearerToken, RemoteListener, Supervisor, SupervisorOptions};

const TOKEN: &str = "embedded-remote-test-token-0123456789";

/// An embedding program builds the remote listener from the library's own
/// types: `BearerToken` is public with `RemoteListener`.
#[tokio::test]
async fn an_embedded_supervisor_serves_the_control_api_over_tcp() {
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
