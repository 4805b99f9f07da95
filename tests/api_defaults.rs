//! The API as a generated client sees it: `Events {}` follows live events,
//! `-n N` replays the newest, a failing job's and a failing stop hook's text reach
//! their callers, and a planned exit (a `Kill` through the API, a SIGHUP'd SDK
//! worker exiting 0) respawns without the program turning `error`.

pub mod common;

use common::*;
use infant::proto::{self, EventKind, ProgramStatus};

/// A plain child that is `ok` quickly.
fn sleeper() -> proto::ProgramSpec {
    let mut s = spec(proto::ProgramKind::Child, &["sleep", "1000"]);
    s.start_grace_ms = Some(50);
    s
}

#[tokio::test]
async fn events_with_an_empty_request_follows_live_events() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    // What every generated client sends first: nothing set.
    let mut stream = client
        .events(proto::EventsRequest::default())
        .await
        .expect("Events")
        .into_inner();
    start_program(&mut client, "app", sleeper()).await;
    let event = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("an event within the deadline")
        .expect("the stream is healthy")
        .expect("the stream stays open and delivers live events");
    assert_eq!(event.program, "app");
    daemon.stop().await;
}

#[tokio::test]
async fn events_replays_only_the_last_n_when_asked() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    start_program(&mut client, "app", sleeper()).await;
    let mut stream = client
        .events(proto::EventsRequest {
            replay: true,
            follow: Some(false),
            last: Some(2),
            ..Default::default()
        })
        .await
        .expect("Events")
        .into_inner();
    let mut seen = Vec::new();
    while let Some(event) = stream.message().await.expect("Events stream") {
        seen.push(event);
    }
    assert_eq!(
        seen.len(),
        2,
        "{:?}",
        seen.iter().map(describe).collect::<Vec<_>>()
    );
    assert_eq!(seen[1].seq, seen[0].seq + 1);

    let (status, out, err) = daemon.ctl(&["events", "-n", "3"]);
    assert!(status.success(), "infantctl events -n 3: {err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    daemon.stop().await;
}

#[tokio::test]
async fn a_failing_jobs_error_text_reaches_start_wait_and_the_error_event() {
    let daemon = Daemon::start(&[]).await;
    let recorder = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let job = example_bin("fork_once");
    let mut s = spec(proto::ProgramKind::Once, &[&job.to_string_lossy()]);
    s.env.insert("ONCE_FAIL".into(), "1".into());
    let info = client
        .start(proto::StartRequest {
            name: "job".into(),
            spec: Some(s),
            wait: true,
        })
        .await
        .expect("Start --wait replies with the outcome")
        .into_inner();
    assert_eq!(info.status(), ProgramStatus::Error, "{info:?}");
    assert!(
        info.error.contains("ONCE_FAIL=1: failing on purpose"),
        "the job's own text, not just its exit code: {:?}",
        info.error
    );
    recorder
        .wait_for("an error event with the job's text", |e| {
            is(e, EventKind::Error) && e.reason.contains("ONCE_FAIL=1: failing on purpose")
        })
        .await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_failing_stop_hooks_error_reaches_stop_and_the_error_event() {
    let daemon = Daemon::start(&[]).await;
    let recorder = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let worker = example_bin("echo_worker");
    let mut s = spec(proto::ProgramKind::Child, &[&worker.to_string_lossy()]);
    s.env
        .insert("ECHO_FAIL_STOP".into(), "could not flush the queue".into());
    start_program(&mut client, "echo", s).await;
    let info = client
        .stop(proto::StopRequest {
            name: "echo".into(),
            timeout_ms: None,
        })
        .await
        .expect("Stop")
        .into_inner();
    assert!(
        info.error.contains("could not flush the queue"),
        "Stop's reply carries the stop hook's error: {info:?}"
    );
    recorder
        .wait_for("an error event with the stop hook's text", |e| {
            is(e, EventKind::Error) && e.reason.contains("could not flush the queue")
        })
        .await;
    daemon.stop().await;
}

/// Waits until `program` has respawned once and is `ok` again, then checks that
/// it never turned `error` nor published an `error` event.
async fn assert_respawned_without_error(
    recorder: &Recorder,
    client: &mut infant::proto::supervisor_client::SupervisorClient<tonic::transport::Channel>,
    program: &str,
) {
    recorder
        .wait_for("the respawn", |e| {
            is(e, EventKind::Respawn) && e.program == program
        })
        .await;
    wait_program(client, program, "ok again", DEADLINE, |p| {
        p.status() == ProgramStatus::Ok && p.restarts == 1
    })
    .await;
    let errors: Vec<String> = recorder
        .all()
        .iter()
        .filter(|e| {
            e.program == program
                && (is(e, EventKind::Error)
                    || e.program_status() == ProgramStatus::Error
                    || e.program_status() == ProgramStatus::Fatal)
        })
        .map(describe)
        .collect();
    assert!(
        errors.is_empty(),
        "a planned exit flashed error: {errors:#?}"
    );
    let info = client
        .list(proto::ListRequest {
            name: program.into(),
        })
        .await
        .expect("List")
        .into_inner();
    assert_eq!(info.programs[0].error, "", "{info:?}");
}

#[tokio::test]
async fn a_kill_through_the_api_respawns_without_error() {
    let daemon = Daemon::start(&[]).await;
    let recorder = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    start_program(&mut client, "app", sleeper()).await;
    client
        .kill(proto::KillRequest {
            name: "app".into(),
            worker: None,
            signal: "TERM".into(),
        })
        .await
        .expect("Kill");
    assert_respawned_without_error(&recorder, &mut client, "app").await;
    daemon.stop().await;
}

#[tokio::test]
async fn an_sdk_worker_exiting_0_after_sighup_respawns_without_error() {
    let daemon = Daemon::start(&[]).await;
    let recorder = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let worker = example_bin("echo_worker");
    let s = spec(proto::ProgramKind::Child, &[&worker.to_string_lossy()]);
    start_program(&mut client, "echo", s).await;
    let pids = ok_pids(&mut client, "echo").await;
    assert_eq!(pids.len(), 1);
    // The SDK's config-reload convention, sent by someone other than the daemon.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0] as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP the worker");
    assert_respawned_without_error(&recorder, &mut client, "echo").await;
    let exit = recorder
        .wait_for("the exit", |e| {
            is(e, EventKind::Exit) && e.program == "echo"
        })
        .await;
    assert_eq!(exit.code, Some(0), "{}", describe(&exit));
    daemon.stop().await;
}
