//! Clients generated from `proto/infant.proto` in other languages, as
//! docs/grpc-clients.md shows them: the Python grpcio client of
//! `examples/grpc_clients/infant_client.py`, and a grpcurl session. Each runs when
//! its tools are on the machine and says so in the test output when skipped.

pub mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// The repository's root (proto/, examples/).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `python3` can import grpc and grpc_tools.
fn python_with_grpcio() -> bool {
    Command::new("python3")
        .args(["-c", "import grpc, grpc_tools.protoc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[tokio::test]
async fn the_python_grpcio_client_drives_start_each_worker_and_events() {
    if !python_with_grpcio() {
        println!(
            "skipped: python3 with grpcio and grpcio-tools is not available \
             (pip install grpcio grpcio-tools)"
        );
        return;
    }
    let generated = short_tempdir();
    let protoc = Command::new("python3")
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(root().join("proto"))
        .arg(format!("--python_out={}", generated.path().display()))
        .arg(format!("--grpc_python_out={}", generated.path().display()))
        .arg(root().join("proto/infant.proto"))
        .output()
        .expect("run grpc_tools.protoc");
    assert!(
        protoc.status.success(),
        "protoc: {}",
        String::from_utf8_lossy(&protoc.stderr)
    );

    let daemon = Daemon::start(&[]).await;
    let client = root().join("examples/grpc_clients/infant_client.py");
    let socket = daemon.socket.clone();
    let generated_path = generated.path().to_path_buf();
    let run = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(client)
            .arg(socket)
            .env("PYTHONPATH", generated_path)
            .stdin(Stdio::null())
            .output()
    })
    .await
    .expect("join")
    .expect("run the Python client");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "the Python client failed:\n{out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        out.contains("started py-demo: PROGRAM_STATUS_OK, 2/2"),
        "{out}"
    );
    assert_eq!(out.matches("INSTANCE_STATUS_OK").count(), 2, "{out}");
    assert!(out.contains("EVENT_KIND_STOPPED py-demo"), "{out}");
    daemon.stop().await;
}

#[tokio::test]
async fn the_documented_grpcurl_session_works() {
    let available = Command::new("grpcurl")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !available {
        println!("skipped: grpcurl is not on this machine");
        return;
    }
    let daemon = Daemon::start(&[]).await;
    let socket = daemon.socket.to_string_lossy().into_owned();
    let grpcurl = |args: &[&str]| {
        let out = Command::new("grpcurl")
            .args(["-plaintext", "-unix", "-authority", "localhost"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run grpcurl");
        assert!(
            out.status.success(),
            "grpcurl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let services = grpcurl(&[&socket, "list"]);
    assert!(services.contains("infant.v1.Supervisor"), "{services}");
    let started = grpcurl(&[
        "-d",
        r#"{"name": "demo", "spec": {"command": ["sleep", "1000"], "start_grace_ms": 50}}"#,
        &socket,
        "infant.v1.Supervisor/Start",
    ]);
    assert!(started.contains("PROGRAM_STATUS_OK"), "{started}");
    let workers = grpcurl(&[
        "-d",
        r#"{"name": "demo"}"#,
        &socket,
        "infant.v1.Supervisor/EachWorker",
    ]);
    assert!(workers.contains("INSTANCE_STATUS_OK"), "{workers}");
    let history = grpcurl(&[
        "-d",
        r#"{"replay": true, "follow": false, "last": 3}"#,
        &socket,
        "infant.v1.Supervisor/Events",
    ]);
    assert_eq!(history.matches("\"seq\"").count(), 3, "{history}");
    let health = grpcurl(&[
        "-d",
        r#"{"service": "demo"}"#,
        &socket,
        "grpc.health.v1.Health/Check",
    ]);
    assert!(health.contains("SERVING"), "{health}");
    daemon.stop().await;
}
