//! The worker SDK under stress (`examples/echo_worker` with its test knobs): an
//! infantd that is PID 1, a Stop behind a full message queue, a worker that blocks
//! its runtime, panicking hooks, huge error texts, the environment a worker's
//! children inherit, sockets passed to a wrapper, an SDK worker that attaches
//! after its start grace, and what the recycle event says it counted.

pub mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use infant::proto::{self, EventKind, InstanceStatus, ProgramKind, ProgramStatus};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

type Client = proto::supervisor_client::SupervisorClient<tonic::transport::Channel>;

/// [`common::echo_spec`], not respawned, with a start grace long enough for
/// the slowest start below.
fn echo_spec(out: &Path, knobs: &[(&str, &str)]) -> proto::ProgramSpec {
    let mut s = common::echo_spec(out, knobs);
    s.start_grace_ms = Some(30_000);
    s.respawn = Some(false);
    s
}

async fn start(
    client: &mut Client,
    name: &str,
    spec: proto::ProgramSpec,
) -> Result<proto::ProgramInfo, tonic::Status> {
    client
        .start(proto::StartRequest {
            name: name.into(),
            spec: Some(spec),
            wait: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn stop(client: &mut Client, name: &str) {
    client
        .stop(proto::StopRequest {
            name: name.into(),
            timeout_ms: None,
        })
        .await
        .unwrap_or_else(|e| panic!("Stop {name}: {e}"));
}

async fn send(client: &mut Client, name: &str, payload: impl Into<Vec<u8>>) {
    client
        .send(proto::SendRequest {
            name: name.into(),
            worker: None,
            payload: payload.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("Send to {name}: {e}"));
}

async fn program(client: &mut Client, name: &str) -> proto::ProgramInfo {
    client
        .list(proto::ListRequest::default())
        .await
        .expect("List")
        .into_inner()
        .programs
        .into_iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} is not listed"))
}

/// The lines of the file at `path` that start with `word`, without it.
fn lines(path: &Path, word: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| Some(line.strip_prefix(word)?.trim().to_string()))
        .collect()
}

async fn wait_for_line(path: &Path, word: &str) -> String {
    let mut found = None;
    wait_until(&format!("`{word}` in {}", path.display()), DEADLINE, || {
        found = lines(path, word).into_iter().next();
        let done = found.is_some();
        async move { done }
    })
    .await;
    found.unwrap_or_default()
}

/// Defect 1: in a container infantd is PID 1, and an SDK worker's parent is 1.
#[tokio::test]
async fn an_sdk_worker_runs_under_an_infantd_that_is_pid_1() {
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--map-root-user", "true"])
        .output();
    if !probe.is_ok_and(|out| out.status.success()) {
        eprintln!("skipped: this machine cannot make a PID namespace (unshare --pid --fork --map-root-user)");
        return;
    }
    let daemon = Daemon::start_wrapped(
        &[
            "unshare",
            "--pid",
            "--fork",
            "--map-root-user",
            "--kill-child",
        ],
        &[],
    )
    .await;
    let mut client = daemon.client().await;
    let out = daemon.dir.path().join("out");
    let info = start(&mut client, "echo", echo_spec(&out, &[]))
        .await
        .expect("an SDK worker starts under an infantd that is PID 1");
    assert_eq!(info.status, ProgramStatus::Ok as i32, "{info:?}");
    let workers = workers(&mut client, "echo").await;
    assert!(
        workers.len() == 1 && workers[0].attached,
        "one attached worker: {workers:?}"
    );
    assert!(lines(&out, "stopped").is_empty(), "it did not stop itself");
    stop(&mut client, "echo").await;
    wait_for_line(&out, "stopped").await;
}

/// Defect 2: a Stop must not queue behind the worker's messages.
#[tokio::test]
async fn a_stop_is_not_lost_behind_a_full_message_queue() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let out = daemon.dir.path().join("out");
    let marker = daemon.dir.path().join("marker");
    let marker_path = marker.to_string_lossy().into_owned();
    let mut s = echo_spec(&out, &[("ECHO_STOP_MARKER", &marker_path)]);
    s.stop_timeout_ms = Some(15_000);
    start(&mut client, "echo", s).await.expect("Start echo");
    // The handler blocks 6 s; meanwhile the daemon's queue for it fills up.
    send(&mut client, "echo", "block 6000").await;
    let mut refused = 0;
    for _ in 0..200 {
        let sent = client
            .send(proto::SendRequest {
                name: "echo".into(),
                worker: None,
                payload: vec![b'x'; 100 * 1024],
            })
            .await;
        if sent.is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0, "the burst filled the worker's queue");
    stop(&mut client, "echo").await;
    let exit = events
        .wait_for("echo's exit", |e| {
            is(e, EventKind::Exit) && e.program == "echo"
        })
        .await;
    assert!(
        !lines(&marker, "stopped").is_empty(),
        "the stop hook ran; the worker exited with {}",
        describe(&exit)
    );
    assert_eq!(exit.signal, None, "not killed: {}", describe(&exit));
}

/// Defect 4: heartbeats do not depend on the worker's runtime; a blocked start
/// hook or CPU-bound handler is not taken for a hung worker.
#[tokio::test]
async fn a_blocked_runtime_still_heartbeats() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let out = daemon.dir.path().join("out");
    // 8 intervals are 800 ms: the start hook blocks its thread for twice that.
    let mut s = echo_spec(&out, &[("ECHO_BLOCK_START_MS", "1600")]);
    s.heartbeat_ms = Some(100);
    let info = start(&mut client, "echo", s)
        .await
        .expect("a start hook that blocks its thread is not hung");
    assert_eq!(info.status, ProgramStatus::Ok as i32, "{info:?}");
    let pid = wait_for_line(&out, "started").await;
    send(&mut client, "echo", "spin 1600").await;
    send(&mut client, "echo", "ping").await;
    events
        .wait_for("the echo after the spin", |e| {
            is(e, EventKind::Message) && e.payload == b"echo: ping"
        })
        .await;
    let workers = workers(&mut client, "echo").await;
    assert_eq!(
        workers
            .iter()
            .map(|w| w.pid.to_string())
            .collect::<Vec<_>>(),
        vec![pid],
        "the same worker, never killed"
    );
    assert!(
        !events.all().iter().any(|e| e.reason.contains("hung")),
        "nothing was hung"
    );
    stop(&mut client, "echo").await;
}

/// Defect 4: a worker that really is hung (stopped by SIGSTOP) is killed, and the
/// caller of `Start` is told why.
#[tokio::test]
async fn a_hung_worker_is_reported_as_hung_to_start() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let out = daemon.dir.path().join("out");
    let mut s = echo_spec(&out, &[("ECHO_START_DELAY_MS", "60000")]);
    s.heartbeat_ms = Some(100);
    let starting = tokio::spawn(async move { start(&mut client, "echo", s).await });
    let spawned = events
        .wait_for("echo spawned", |e| e.program == "echo" && e.pid != 0)
        .await;
    // Let it attach, then freeze it.
    wait_until("echo attached", DEADLINE, || {
        let daemon = &daemon;
        async move {
            let mut client = daemon.client().await;
            workers(&mut client, "echo")
                .await
                .iter()
                .any(|w| w.attached)
        }
    })
    .await;
    nix::sys::signal::kill(Pid::from_raw(spawned.pid as i32), Signal::SIGSTOP).expect("SIGSTOP");
    let result = starting.await.expect("join");
    let error = result.expect_err("a hung worker fails the start");
    assert!(
        error.message().contains("hung"),
        "Start says it was hung: {error}"
    );
    let mut client = daemon.client().await;
    let _ = client
        .stop(proto::StopRequest {
            name: "echo".into(),
            timeout_ms: None,
        })
        .await;
}

/// Defect 7: a panicking start hook is a failed start that says it panicked.
#[tokio::test]
async fn a_panicking_start_hook_is_reported_as_a_panic() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let out = daemon.dir.path().join("out");
    let error = start(
        &mut client,
        "echo",
        echo_spec(&out, &[("ECHO_PANIC", "start")]),
    )
    .await
    .expect_err("the start fails");
    assert!(
        error.message().contains("panicked") && error.message().contains("told to panic"),
        "Start reports the panic: {error}"
    );
}

/// Defect 7: a panicking message handler runs the stop hook and reports the panic;
/// a panicking stop hook still exits as a failed stop, not a crash.
#[tokio::test]
async fn panicking_handlers_and_stop_hooks_are_reported() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let out = daemon.dir.path().join("out");
    let marker = daemon.dir.path().join("marker");
    let marker_path = marker.to_string_lossy().into_owned();
    start(
        &mut client,
        "echo",
        echo_spec(&out, &[("ECHO_STOP_MARKER", &marker_path)]),
    )
    .await
    .expect("Start echo");
    send(&mut client, "echo", "panic").await;
    let exit = events
        .wait_for("echo's exit", |e| {
            is(e, EventKind::Exit) && e.program == "echo"
        })
        .await;
    assert!(
        !lines(&marker, "stopped").is_empty(),
        "the stop hook ran after the handler panicked ({})",
        describe(&exit)
    );
    events
        .wait_for("the panic reported", |e| {
            e.program == "echo" && e.reason.contains("panicked")
        })
        .await;

    let before = events.all().len();
    start(
        &mut client,
        "bad_stop",
        echo_spec(&out, &[("ECHO_PANIC", "stop")]),
    )
    .await
    .expect("Start bad_stop");
    stop(&mut client, "bad_stop").await;
    let exit = events
        .wait_for("bad_stop's exit", |e| {
            is(e, EventKind::Exit) && e.program == "bad_stop"
        })
        .await;
    assert_eq!(
        exit.code,
        Some(1),
        "a failed stop hook exits 1, not 101: {}",
        describe(&exit)
    );
    assert!(events.all().len() > before);
}

/// Defect 8: start errors of any length reach the caller, cut short.
#[tokio::test]
async fn huge_start_errors_are_truncated_not_lost() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let out = daemon.dir.path().join("out");
    for (name, len) in [("twenty_k", "20000"), ("two_mib", "2000000")] {
        let error = start(
            &mut client,
            name,
            echo_spec(&out, &[("ECHO_FAIL_START_LEN", len)]),
        )
        .await
        .expect_err("the start fails");
        assert_eq!(
            error.code(),
            tonic::Code::FailedPrecondition,
            "{name}: {error:?}"
        );
        assert!(
            error.message().contains("eeeeeeee") && error.message().len() < 16 * 1024,
            "{name}: the start hook's text, cut short: {} bytes",
            error.message().len()
        );
        let listed = program(&mut client, name).await;
        assert!(listed.error.contains("eeee"), "{name}: {listed:?}");
        assert!(listed.error.len() < 16 * 1024);
    }
    let (status, stdout, stderr) = daemon.ctl(&["status"]);
    assert!(status.success(), "infantctl status: {stdout}{stderr}");
}

/// Defect 9: a worker's children do not inherit its `INFANT_*` variables.
#[tokio::test]
async fn a_workers_children_do_not_inherit_infant_variables() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let out = daemon.dir.path().join("out");
    start(
        &mut client,
        "echo",
        echo_spec(&out, &[("ECHO_CHILD_ENV", "1")]),
    )
    .await
    .expect("Start echo");
    assert_eq!(wait_for_line(&out, "inherited").await, "0");
    stop(&mut client, "echo").await;
}

/// Defect 10: sockets passed to a wrapper (`sh -c "worker; exit $?"`) are not the
/// worker's: it fails naming both pids instead of binding a port of its own.
#[tokio::test]
async fn sockets_passed_to_a_wrapper_fail_the_start_naming_both_pids() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let worker = example_bin("echo_worker");
    let mut s = spec(
        ProgramKind::Child,
        &["sh", "-c", r#""$0"; exit $?"#, &worker.to_string_lossy()],
    );
    s.env.insert("ECHO_LISTEN".into(), "1".into());
    s.listen = vec!["tcp://127.0.0.1:0".into()];
    s.start_grace_ms = Some(30_000);
    s.respawn = Some(false);
    let error = start(&mut client, "wrapped", s)
        .await
        .expect_err("the worker does not take sockets passed to its parent");
    assert!(
        error.message().contains("LISTEN_PID") && error.message().contains("exec"),
        "the error explains the mismatch: {error}"
    );
}

/// Defect 11: an SDK worker that attaches after its start grace (it was counted
/// as a plain program) still reports its failed start hook.
#[tokio::test]
async fn a_late_attaching_worker_still_reports_its_failed_start() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let worker = example_bin("echo_worker");
    let mut s = spec(
        ProgramKind::Child,
        &[
            "sh",
            "-c",
            r#"sleep 0.5; exec "$0""#,
            &worker.to_string_lossy(),
        ],
    );
    s.env.insert("ECHO_FAIL_START".into(), "late boom".into());
    s.start_grace_ms = Some(50);
    s.respawn = Some(false);
    start(&mut client, "late", s)
        .await
        .expect("ok after the start grace");
    events
        .wait_for("the start hook's failure", |e| {
            e.program == "late" && is(e, EventKind::Error) && e.reason.contains("late boom")
        })
        .await;
    wait_until("the failure in status", DEADLINE, || {
        let daemon = &daemon;
        async move {
            let mut client = daemon.client().await;
            program(&mut client, "late")
                .await
                .error
                .contains("late boom")
        }
    })
    .await;
}

/// Defect 12: the recycle event names what it counted.
#[tokio::test]
async fn the_recycle_event_says_requests_when_it_counted_requests() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let out = daemon.dir.path().join("out");
    let mut s = echo_spec(&out, &[]);
    s.kind = ProgramKind::Cluster as i32;
    s.count = Some(1);
    s.enhanced = true;
    s.max_connections = Some(3);
    s.respawn = Some(true);
    start(&mut client, "counted", s)
        .await
        .expect("Start counted");
    send(&mut client, "counted", "request 3").await;
    let recycle = events
        .wait_for("the recycle", |e| is(e, EventKind::Recycle))
        .await;
    assert!(
        recycle.reason.contains("served 3 requests"),
        "{}",
        describe(&recycle)
    );
    events
        .wait_for("the replacement ok", |e| {
            e.program == "counted"
                && e.instance_status == InstanceStatus::Ok as i32
                && e.worker != recycle.worker
        })
        .await;
    stop(&mut client, "counted").await;
}

/// Defect 5: what the stop hook sends is delivered, not dropped after a second.
#[tokio::test]
async fn messages_sent_by_the_stop_hook_all_arrive() {
    const N: usize = 100;
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let out = daemon.dir.path().join("out");
    let marker = daemon.dir.path().join("marker");
    let marker_path = marker.to_string_lossy().into_owned();
    let n = N.to_string();
    let mut s = echo_spec(
        &out,
        &[
            ("ECHO_STOP_MARKER", &marker_path),
            ("ECHO_SEND_ON_STOP", &n),
        ],
    );
    s.stop_timeout_ms = Some(60_000);
    start(&mut client, "echo", s).await.expect("Start echo");
    stop(&mut client, "echo").await;
    // 100 MiB through the daemon to the recorder: slow in a debug build.
    let exit = events
        .wait_for_within("echo's exit", Duration::from_secs(90), |e| {
            is(e, EventKind::Exit) && e.program == "echo"
        })
        .await;
    assert_eq!(
        lines(&marker, "sent"),
        vec![n.clone()],
        "every send said Ok"
    );
    // Events are published before the exit that follows them.
    let all = events.all();
    let missed: u64 = all.iter().map(|e| e.missed).sum();
    let arrived = all
        .iter()
        .filter(|e| is(e, EventKind::Message) && e.payload.len() == 1024 * 1024)
        .count();
    // The event bus keeps at most 4 MiB of payload for its watchers, so a
    // recorder in a debug build may fall behind 1 MiB messages; what it missed
    // it is told about. Every message reached the daemon and was published:
    // those seen plus those missed (the messages are all that happens between
    // the stop and the exit, bar a status event or two).
    assert!(
        arrived as u64 + missed >= N as u64 && arrived as u64 + missed <= N as u64 + 4,
        "every message arrived: {arrived} seen, {missed} missed ({})",
        describe(&exit)
    );
}

/// `Handle::fail` and `Handle::shutdown` end a worker after `Ready`, through its
/// stop hook, which knows whether the start hook completed.
#[tokio::test]
async fn a_worker_can_fail_or_shut_itself_down() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let out = daemon.dir.path().join("out");
    let marker = daemon.dir.path().join("marker");
    let marker_path = marker.to_string_lossy().into_owned();
    for (name, message) in [("failing", "fail oops"), ("leaving", "shutdown")] {
        let s = echo_spec(&out, &[("ECHO_STOP_MARKER", &marker_path)]);
        start(&mut client, name, s).await.expect("Start");
        send(&mut client, name, message).await;
        let exit = events
            .wait_for("the exit", |e| is(e, EventKind::Exit) && e.program == name)
            .await;
        let code = if name == "failing" { 1 } else { 0 };
        assert_eq!(exit.code, Some(code), "{name}: {}", describe(&exit));
    }
    events
        .wait_for("the failure reported", |e| {
            e.program == "failing" && is(e, EventKind::Error) && e.reason.contains("oops")
        })
        .await;
    assert!(program(&mut client, "failing").await.error.contains("oops"));
    assert_eq!(lines(&marker, "stopped").len(), 2, "both ran the stop hook");
    assert_eq!(lines(&marker, "started"), vec!["true", "true"]);

    // A stop during the start hook abandons it; the stop hook knows.
    let s = echo_spec(
        &out,
        &[
            ("ECHO_STOP_MARKER", &marker_path),
            ("ECHO_START_DELAY_MS", "60000"),
        ],
    );
    let starting = tokio::spawn(async move { start(&mut client, "slow", s).await });
    wait_until("slow attached", DEADLINE, || {
        let daemon = &daemon;
        async move {
            let mut client = daemon.client().await;
            workers(&mut client, "slow")
                .await
                .iter()
                .any(|w| w.attached)
        }
    })
    .await;
    let mut client = daemon.client().await;
    stop(&mut client, "slow").await;
    let _ = starting.await;
    assert_eq!(lines(&marker, "started"), vec!["true", "true", "false"]);
}
