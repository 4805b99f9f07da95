//! The `ready` modes: `spawn`, `grace`, `sdk`, and `notify` with plain workers
//! in other languages (Python, Node.js) that speak systemd's notify protocol on
//! the private `NOTIFY_SOCKET` the daemon gives them. The workers in other
//! languages run when their interpreter is on the machine; the test output says
//! when they were skipped.

pub mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use infant::proto::{self, EventKind, InstanceStatus, ProgramStatus};

fn has(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn example(path: &str) -> String {
    format!("{}/examples/platform/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn ready_spawn_is_ok_at_exec_without_waiting_out_the_grace() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let mut s = spec(proto::ProgramKind::Child, &["sleep", "1000"]);
    s.start_grace_ms = Some(60_000);
    s.ready = "spawn".into();
    let started = Instant::now();
    let info = start_program(&mut client, "quick", s).await;
    assert_eq!(info.status(), ProgramStatus::Ok);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    daemon.stop().await;
}

#[tokio::test]
async fn ready_sdk_never_takes_a_plain_program_for_ready() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let mut s = spec(proto::ProgramKind::Child, &["sleep", "1000"]);
    s.start_grace_ms = Some(50);
    s.ready = "sdk".into();
    let start = start_program_result(&mut client, "sdk-only", s);
    // Many start graces later it still waits for an SDK `Ready` that never comes.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), start)
            .await
            .is_err(),
        "Start replied for a program that never reported Ready"
    );
    let list = client
        .list(proto::ListRequest {
            name: "sdk-only".into(),
        })
        .await
        .expect("List")
        .into_inner();
    assert_eq!(list.programs[0].status(), ProgramStatus::Starting);
    daemon.stop().await;
}

#[tokio::test]
async fn ready_grace_waits_out_the_grace_even_for_an_sdk_worker() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let worker = example_bin("echo_worker");
    let mut s = spec(proto::ProgramKind::Child, &[&worker.to_string_lossy()]);
    s.start_grace_ms = Some(1500);
    s.ready = "grace".into();
    let started = Instant::now();
    start_program(&mut client, "graceful", s).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "ok after {:?}, before its start grace",
        started.elapsed()
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_bad_ready_mode_is_refused_naming_the_field() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let mut s = spec(proto::ProgramKind::Child, &["sleep", "1000"]);
    s.ready = "whenever".into();
    let refused = start_program_result(&mut client, "bad", s)
        .await
        .expect_err("a bad ready mode");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("ready"), "{}", refused.message());
    daemon.stop().await;
}

/// A cluster of `web.py` workers on a shared socket, ready by `READY=1`.
fn python_cluster(count: u32) -> proto::ProgramSpec {
    let script = example("web.py");
    let mut s = spec(proto::ProgramKind::Cluster, &["python3", &script]);
    s.count = Some(count);
    s.listen = vec!["tcp://127.0.0.1:0".into()];
    s.ready = "notify".into();
    s.start_grace_ms = Some(50);
    s
}

#[tokio::test]
async fn python_notify_workers_are_ok_on_ready_and_roll_without_a_failed_request() {
    if !has("python3") {
        println!("skipped: python3 is not on this machine");
        return;
    }
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let info = start_program(&mut client, "py", python_cluster(2)).await;
    assert_eq!(info.status(), ProgramStatus::Ok);

    // Each worker got a private NOTIFY_SOCKET and its STATUS= text shows.
    let workers = workers(&mut client, "py").await;
    assert_eq!(workers.len(), 2);
    for worker in &workers {
        assert_eq!(worker.status(), InstanceStatus::Ok);
        assert_eq!(worker.notify_status, format!("serving as {}", worker.pid));
        let environ = std::fs::read(format!("/proc/{}/environ", worker.pid)).expect("environ");
        let environ = String::from_utf8_lossy(&environ);
        assert!(environ.contains("NOTIFY_SOCKET=@"), "{environ}");
    }
    let (status, out, err) = daemon.ctl(&["workers", "py"]);
    assert!(status.success(), "{err}");
    assert!(out.contains("ok (serving as"), "{out}");

    let before: Vec<u32> = workers.iter().map(|w| w.pid).collect();
    let load = Load::start(&info.listen[0], 4, 5_000);
    load.wait_answered(20).await;
    let restarted = client
        .restart(proto::RestartRequest {
            name: "py".into(),
            full: false,
        })
        .await
        .expect("rolling restart")
        .into_inner();
    assert_eq!(restarted.status(), ProgramStatus::Ok);
    let after = ok_pids(&mut client, "py").await;
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "every worker replaced"
    );
    load.wait_answered(40).await;
    let (ok, failed, errors, _) = load.finish().await;
    println!("Python workers, rolling restart under load: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "no failed request: {errors:?}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_notify_worker_that_stops_sending_watchdog_is_killed_as_hung() {
    if !has("python3") {
        println!("skipped: python3 is not on this machine");
        return;
    }
    // READY=1 and one WATCHDOG=1, then silence.
    let script = r#"
import os, socket, time
path = os.environ["NOTIFY_SOCKET"]
path = "\0" + path[1:] if path.startswith("@") else path
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\nSTATUS=working\nWATCHDOG=1", path)
time.sleep(1000)
"#;
    let daemon = Daemon::start(&[]).await;
    let recorder = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let mut s = spec(proto::ProgramKind::Child, &["python3", "-c", script]);
    s.ready = "notify".into();
    s.heartbeat_ms = Some(100);
    start_program(&mut client, "quiet", s).await;
    let hung = recorder
        .wait_for("killed as hung", |e| {
            is(e, EventKind::Error) && e.program == "quiet" && e.reason.contains("hung")
        })
        .await;
    recorder
        .wait_for("respawned", |e| {
            is(e, EventKind::Respawn) && e.program == "quiet"
        })
        .await;
    println!("{}", describe(&hung));
    daemon.stop().await;
}

#[tokio::test]
async fn node_workers_share_the_socket_and_roll_without_a_failed_request() {
    if !has("node") {
        println!("skipped: node is not on this machine");
        return;
    }
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let script = example("web.js");
    let mut s = spec(proto::ProgramKind::Cluster, &["node", &script]);
    s.count = Some(2);
    s.listen = vec!["tcp://127.0.0.1:0".into()];
    // Node's standard library has no Unix datagram sockets, so no READY=1: the
    // daemon-bound socket queues what comes before the worker accepts.
    s.ready = "grace".into();
    s.start_grace_ms = Some(300);
    let info = start_program(&mut client, "node", s).await;
    assert_eq!(info.status(), ProgramStatus::Ok);
    let workers = workers(&mut client, "node").await;
    let before: Vec<u32> = workers.iter().map(|w| w.pid).collect();
    let load = Load::start(&info.listen[0], 4, 5_000);
    load.wait_answered(20).await;
    client
        .restart(proto::RestartRequest {
            name: "node".into(),
            full: false,
        })
        .await
        .expect("rolling restart");
    let after = ok_pids(&mut client, "node").await;
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "every worker replaced"
    );
    load.wait_answered(40).await;
    let (ok, failed, errors, _) = load.finish().await;
    println!("Node.js workers, rolling restart under load: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "no failed request: {errors:?}");
    daemon.stop().await;
}
