//! Workers that link the SDK (`examples/echo_worker`): graceful startup gated on the
//! start hook, a failing start hook and its backoff, messages both ways, graceful
//! stop, the stop window's SIGKILL of a whole tree, SIGHUP as a graceful restart,
//! and the daemon's own graceful shutdown.

pub mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use infant::control::{Control, ControlError};
use infant::proto::{self, EventKind, InstanceStatus, ProgramKind, ProgramStatus};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

async fn start(
    control: &Control,
    name: &str,
    spec: proto::ProgramSpec,
) -> Result<proto::ProgramInfo, ControlError> {
    control.start(name, Some(spec), false).await
}

async fn stop(control: &Control, name: &str) -> proto::ProgramInfo {
    control
        .stop(name, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits until the file at `path` has a line `WORD <pid>`; returns the pid.
async fn wait_for_line(path: &Path, word: &str) -> u32 {
    let mut pid = 0;
    wait_until(
        &format!("`{word} <pid>` in {}", path.display()),
        DEADLINE,
        || {
            pid = read_lines(path, word).first().copied().unwrap_or(0);
            async move { pid != 0 }
        },
    )
    .await;
    pid
}

/// The pids of every line `WORD <pid>` in the file at `path`.
fn read_lines(path: &Path, word: &str) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.strip_prefix(word)?.trim().parse().ok())
        .collect()
}

fn kill(pid: u32, signal: Signal) {
    nix::sys::signal::kill(Pid::from_raw(pid as i32), signal).expect("kill");
}

#[tokio::test]
async fn an_sdk_child_is_ok_only_after_its_start_hook_finished() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let out = daemon.dir.path().join("out");

    let called = Instant::now();
    let info = start(
        &control,
        "echo",
        echo_spec(&out, &[("ECHO_START_DELAY_MS", "300")]),
    )
    .await
    .expect("Start echo");
    let took = called.elapsed();
    assert_eq!(info.status, ProgramStatus::Ok as i32, "Start replies ok");
    assert_eq!(info.running, 1);
    assert!(
        took >= Duration::from_millis(300),
        "Start must wait for the 300 ms start hook, replied after {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "the worker's Ready, not the 10 s start grace, made it ok ({took:?})"
    );
    // The start hook printed its line before the SDK sent Ready.
    let started = read_lines(&out, "started");
    assert_eq!(started.len(), 1, "one `started` line when Start replied");

    let listed = control.workers_of("echo").await;
    assert_eq!(listed.len(), 1, "EachWorker lists the child: {listed:?}");
    let worker = &listed[0];
    assert_eq!(worker.pid, started[0], "EachWorker has the worker's pid");
    assert_eq!(worker.status, InstanceStatus::Ok as i32);
    assert!(worker.attached, "the SDK worker is attached");
    assert!(exists(worker.pid));

    let starting = events
        .wait_for("starting status", |e| {
            is(e, EventKind::Status)
                && e.pid == worker.pid
                && e.instance_status == InstanceStatus::Starting as i32
        })
        .await;
    let online = events
        .wait_for("online event", |e| {
            is(e, EventKind::Online) && e.pid == worker.pid
        })
        .await;
    assert!(
        online.seq > starting.seq && online.time_ms - starting.time_ms >= 300,
        "online comes after the start hook: starting at {}, online at {}",
        starting.time_ms,
        online.time_ms
    );

    stop(&control, "echo").await;
    wait_gone(&[worker.pid], DEADLINE).await;
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

#[tokio::test]
async fn a_failing_start_hook_fails_start_and_respawns_with_backoff() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let out = daemon.dir.path().join("out");

    let error = start(
        &control,
        "broken",
        echo_spec(&out, &[("ECHO_FAIL_START", "database unreachable")]),
    )
    .await
    .expect_err("Start of a worker whose start hook fails");
    assert_eq!(
        error.code(),
        Some(tonic::Code::FailedPrecondition),
        "{error:?}"
    );
    let message = match &error {
        ControlError::Status { status, .. } => status.message(),
        _ => panic!("the daemon answered: {error}"),
    };
    assert!(
        message.contains("database unreachable") && message.contains("broken"),
        "the error carries the worker's text and the program: {message}"
    );
    events
        .wait_for("an error event with the worker's text", |e| {
            is(e, EventKind::Error) && e.reason.contains("database unreachable")
        })
        .await;

    // Respawns back off: 0, 100, 200, 400, 800 ms …, never a storm.
    let respawns = events
        .wait_for_n("five respawns", 5, |e| {
            is(e, EventKind::Respawn) && e.program == "broken"
        })
        .await;
    let delays: Vec<u64> = respawns.iter().map(|e| e.delay_ms).collect();
    assert!(
        delays.windows(2).all(|w| w[1] > w[0]) && delays[4] >= 800,
        "each hold-down is longer than the one before: {delays:?}"
    );
    let span = respawns[4].time_ms - respawns[0].time_ms;
    assert!(
        span >= 1500,
        "five respawns spread over the hold-downs, not a storm: {span} ms"
    );
    let all = events.all();
    let within: Vec<_> = all
        .iter()
        .filter(|e| is(e, EventKind::Respawn) && e.time_ms <= respawns[4].time_ms)
        .collect();
    assert_eq!(within.len(), 5, "no other respawn in that time");
    let program = &control.program("broken").await;
    // `error` between attempts, `starting` while a respawned worker runs its hook.
    assert!(
        [ProgramStatus::Error as i32, ProgramStatus::Starting as i32].contains(&program.status),
        "the program is failing: {program:?}"
    );
    assert!(
        program.error.contains("database unreachable"),
        "List shows the worker's error: {program:?}"
    );

    let info = stop(&control, "broken").await;
    assert_eq!(info.status, ProgramStatus::Ready as i32);
    let pids: Vec<u32> = all.iter().filter(|e| e.pid != 0).map(|e| e.pid).collect();
    wait_gone(&pids, DEADLINE).await;
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

#[tokio::test]
async fn send_reaches_the_worker_and_its_reply_is_an_event() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let out = daemon.dir.path().join("out");
    start(&control, "echo", echo_spec(&out, &[]))
        .await
        .expect("Start echo");
    let worker = control.workers_of("echo").await.remove(0);

    let delivered = control
        .send("echo", None, "hello")
        .await
        .expect("send to every worker");
    assert_eq!(delivered, 1);
    let message = events
        .wait_for("the echo of hello", |e| {
            is(e, EventKind::Message) && e.payload == b"echo: hello"
        })
        .await;
    assert_eq!(message.program, "echo");
    assert_eq!((message.worker, message.pid), (worker.id, worker.pid));

    // To one worker by id.
    control
        .send("echo", Some(worker.id), r#"{"n":2}"#)
        .await
        .expect("send to one worker");
    events
        .wait_for("the echo of the JSON message", |e| {
            is(e, EventKind::Message) && e.payload == br#"echo: {"n":2}"#
        })
        .await;

    stop(&control, "echo").await;
    wait_gone(&[worker.pid], DEADLINE).await;
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

#[tokio::test]
async fn stop_runs_the_stop_hook() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let out = daemon.dir.path().join("out");
    let marker = daemon.dir.path().join("marker");
    start(
        &control,
        "echo",
        echo_spec(&out, &[("ECHO_STOP_MARKER", &marker.to_string_lossy())]),
    )
    .await
    .expect("Start echo");
    let pid = control.ok_pids("echo").await[0];
    assert!(read_lines(&marker, "stopped").is_empty(), "not stopped yet");

    let info = stop(&control, "echo").await;
    assert_eq!(info.status, ProgramStatus::Ready as i32);
    assert_eq!(
        read_lines(&marker, "stopped"),
        [pid],
        "the stop hook ran once, in the worker, before Stop replied"
    );
    let exit = events
        .wait_for("exit of the worker", |e| {
            is(e, EventKind::Exit) && e.pid == pid
        })
        .await;
    assert_eq!(exit.code, Some(0), "a graceful stop exits 0: {exit:?}");
    assert!(
        !events.all().iter().any(|e| is(e, EventKind::Respawn)),
        "a stop is never respawned"
    );
    wait_gone(&[pid], DEADLINE).await;
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

#[tokio::test]
async fn a_worker_that_ignores_stop_is_killed_with_its_grandchild() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let out = daemon.dir.path().join("out");
    let marker = daemon.dir.path().join("marker");
    let mut s = echo_spec(
        &out,
        &[
            ("ECHO_HANG_STOP", "1"),
            ("ECHO_SPAWN_CHILD", "1"),
            ("ECHO_STOP_MARKER", &marker.to_string_lossy()),
        ],
    );
    s.stop_timeout_ms = Some(500);
    start(&control, "hang", s).await.expect("Start hang");
    let pid = control.ok_pids("hang").await[0];
    let grandchild = wait_for_line(&out, "grandchild").await;
    assert!(
        group_members(pid).contains(&grandchild),
        "the grandchild {grandchild} is in the worker's process group"
    );

    let called = Instant::now();
    stop(&control, "hang").await;
    let took = called.elapsed();
    assert!(
        took >= Duration::from_millis(450),
        "the hung stop hook held the worker until the 500 ms window ended ({took:?})"
    );
    assert_eq!(read_lines(&marker, "stopped"), [pid], "the stop hook began");
    let exit = events
        .wait_for("exit of the worker", |e| {
            is(e, EventKind::Exit) && e.pid == pid
        })
        .await;
    assert_eq!(exit.signal, Some(9), "SIGKILLed at the window: {exit:?}");
    events
        .wait_for("an error event about the window", |e| {
            is(e, EventKind::Error) && e.pid == pid && e.reason.contains("stop window")
        })
        .await;
    // Not even a zombie: /proc/PID is gone for both.
    wait_gone(&[pid, grandchild], DEADLINE).await;
    assert!(group_members(pid).is_empty(), "nothing left in the group");
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

#[tokio::test]
async fn sighup_stops_an_sdk_worker_gracefully_and_it_is_respawned() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let out = daemon.dir.path().join("out");
    let marker = daemon.dir.path().join("marker");
    start(
        &control,
        "echo",
        echo_spec(&out, &[("ECHO_STOP_MARKER", &marker.to_string_lossy())]),
    )
    .await
    .expect("Start echo");
    let first = control.ok_pids("echo").await[0];

    kill(first, Signal::SIGHUP);
    let exit = events
        .wait_for("exit after SIGHUP", |e| {
            is(e, EventKind::Exit) && e.pid == first
        })
        .await;
    assert_eq!(exit.code, Some(0), "SIGHUP is a graceful stop: {exit:?}");
    assert_eq!(read_lines(&marker, "stopped"), [first], "the stop hook ran");
    let respawn = events
        .wait_for("respawn after SIGHUP", |e| {
            is(e, EventKind::Respawn) && e.program == "echo"
        })
        .await;
    assert_ne!(respawn.pid, first, "a new process");
    assert_eq!(
        respawn.code,
        Some(0),
        "the respawn carries the exit it replaces"
    );
    wait_until("the new worker attached and ok", DEADLINE, || {
        let control = &control;
        async move {
            control.workers_of("echo").await.iter().any(|w| {
                w.pid == respawn.pid && w.attached && w.status == InstanceStatus::Ok as i32
            })
        }
    })
    .await;
    wait_gone(&[first], DEADLINE).await;

    assert!(daemon.stop().await.success(), "infantd exits 0");
    wait_gone(&[respawn.pid], DEADLINE).await;
}

#[tokio::test]
async fn sigterm_to_infantd_runs_stop_hooks_exits_0_and_removes_its_socket() {
    let mut daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let out = daemon.dir.path().join("out");
    let marker: PathBuf = daemon.dir.path().join("marker");
    let knobs = [("ECHO_STOP_MARKER", marker.to_str().expect("UTF-8 path"))];
    start(&control, "one", echo_spec(&out, &knobs))
        .await
        .expect("Start one");
    let mut pool = echo_spec(&out, &knobs);
    pool.kind = ProgramKind::Cluster as i32;
    pool.count = Some(2);
    start(&control, "pool", pool).await.expect("Start pool");
    let mut pids = control.ok_pids("one").await;
    pids.extend(control.ok_pids("pool").await);
    assert_eq!(pids.len(), 3, "three SDK workers up");
    drop(control);

    daemon.signal(Signal::SIGTERM);
    let status = daemon.wait_exit(DEADLINE).await;
    assert!(
        status.success(),
        "infantd exits 0 after SIGTERM: {status:?}"
    );
    let mut stopped = read_lines(&marker, "stopped");
    stopped.sort_unstable();
    pids.sort_unstable();
    assert_eq!(stopped, pids, "every worker's stop hook ran");
    assert!(
        !daemon.socket.exists(),
        "the socket file {} is removed",
        daemon.socket.display()
    );
    wait_gone(&pids, DEADLINE).await;
}
