//! `once` jobs (exit codes, timeouts, retries) and multi-program configs whose
//! `after` orders start-up and shutdown.

pub mod common;

use std::process::{Command, Stdio};

use common::*;
use infant::control::Control;
use infant::proto::{self, EventKind, ProgramKind, ProgramStatus};

async fn run_job(daemon: &Daemon, name: &str, s: proto::ProgramSpec) -> proto::ProgramInfo {
    let control = daemon.control().await;
    control
        .start(name, Some(s), true)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The `exit` and `error` events of job `name`'s failed run.
async fn failure_events(events: &Recorder, name: &str) -> (proto::Event, proto::Event) {
    let exit = events
        .wait_for(&format!("{name}'s exit"), |e| {
            is(e, EventKind::Exit) && e.program == name
        })
        .await;
    let error = events
        .wait_for(&format!("{name}'s error"), |e| {
            is(e, EventKind::Error) && e.program == name
        })
        .await;
    (exit, error)
}

#[tokio::test]
async fn job_exit_codes_are_honoured() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let ok = run_job(&daemon, "good", spec(ProgramKind::Once, &["true"])).await;
    assert_eq!(ok.status, ProgramStatus::Ready as i32, "{ok:?}");
    assert_eq!(ok.exit_code, Some(0));
    assert!(ok.error.is_empty());
    let exit = events
        .wait_for("good's exit", |e| {
            is(e, EventKind::Exit) && e.program == "good"
        })
        .await;
    assert_eq!(exit.code, Some(0), "{}", describe(&exit));
    events
        .wait_for("good completed", |e| {
            is(e, EventKind::Stopped) && e.program == "good" && e.reason == "completed"
        })
        .await;

    let bad = run_job(
        &daemon,
        "bad",
        spec(ProgramKind::Once, &["sh", "-c", "exit 3"]),
    )
    .await;
    assert_eq!(
        bad.status,
        ProgramStatus::Error as i32,
        "a failure, not a success: {bad:?}"
    );
    assert_eq!(bad.exit_code, Some(3));
    assert!(bad.error.contains("code 3"), "{}", bad.error);
    // Watchers learn the same from events: the exit carries the code, and the
    // failure is an `error`, never a `completed` stop.
    let (exit, error) = failure_events(&events, "bad").await;
    assert_eq!(
        (exit.code, exit.signal),
        (Some(3), None),
        "{}",
        describe(&exit)
    );
    assert!(
        error.reason.contains("code 3") && error.pid == exit.pid,
        "{}",
        describe(&error)
    );
    assert!(
        !events
            .all()
            .iter()
            .any(|e| is(e, EventKind::Stopped) && e.program == "bad"),
        "a failed job is not reported completed"
    );

    // The CLI's `start --wait` exits non-zero for a failed job.
    let (status, _, stderr) = daemon.ctl(&["start", "bad", "--wait"]);
    assert!(!status.success(), "{stderr}");
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_job_past_its_timeout_is_killed_with_its_children() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let marker = daemon.dir.path().join("child");
    let script = format!("sleep 1000 & echo $! > {}; wait", marker.display());
    let mut s = spec(ProgramKind::Once, &["sh", "-c", &script]);
    s.timeout_ms = Some(500);
    let info = run_job(&daemon, "slow", s).await;
    assert_eq!(info.status, ProgramStatus::Error as i32);
    assert!(
        info.error.contains("timed out after 500ms"),
        "{}",
        info.error
    );
    assert_eq!(info.exit_signal, Some(9));
    let (exit, error) = failure_events(&events, "slow").await;
    assert_eq!(exit.signal, Some(9), "{}", describe(&exit));
    assert!(
        exit.reason.contains("timed out after 500ms"),
        "{}",
        describe(&exit)
    );
    assert!(
        error.reason.contains("timed out after 500ms"),
        "{}",
        describe(&error)
    );
    let child: u32 = std::fs::read_to_string(&marker)
        .expect("the job wrote its child's pid")
        .trim()
        .parse()
        .expect("pid");
    wait_gone(&[child], DEADLINE).await;
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_failing_job_is_retried_then_reported() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut s = spec(ProgramKind::Once, &["sh", "-c", "exit 1"]);
    s.respawn = Some(true);
    s.max_retries = Some(2);
    let info = run_job(&daemon, "flaky", s).await;
    let exits = events
        .all()
        .into_iter()
        .filter(|e| is(e, EventKind::Exit) && e.program == "flaky")
        .count();
    assert_eq!(exits, 3, "one run and two retries");
    assert_eq!(
        info.status,
        ProgramStatus::Fatal as i32,
        "gave up: {info:?}"
    );
    assert!(info.error.contains("run 3"), "{}", info.error);
    let respawns: Vec<u64> = events
        .all()
        .iter()
        .filter(|e| is(e, EventKind::Respawn))
        .map(|e| e.delay_ms)
        .collect();
    assert_eq!(respawns.len(), 2);
    assert!(respawns[1] > respawns[0], "retries back off: {respawns:?}");
    assert!(daemon.stop().await.success());
}

fn position(events: &[proto::Event], what: impl Fn(&proto::Event) -> bool) -> usize {
    events.iter().position(what).unwrap_or_else(|| {
        panic!(
            "event missing from:\n{}",
            events.iter().map(describe).collect::<Vec<_>>().join("\n")
        )
    })
}

/// `infantctl start web`, and the events from just before it until web started.
async fn start_web_recording(daemon: &Daemon) -> Vec<proto::Event> {
    let recorder = Recorder::new(daemon).await;
    let (status, stdout, stderr) = daemon.ctl(&["start", "web"]);
    assert!(status.success(), "{stdout}{stderr}");
    recorder
        .wait_for("web started", |e| {
            is(e, EventKind::Started) && e.program == "web"
        })
        .await;
    recorder.all()
}

/// Every event the daemon still holds, oldest first (a replay, not a follow).
async fn history(control: &Control) -> Vec<proto::Event> {
    let mut stream = control
        .events(None, true, false)
        .await
        .expect("watch events");
    let mut events = Vec::new();
    while let Some(e) = stream.message().await.expect("history") {
        events.push(e);
    }
    events
}

#[tokio::test]
async fn after_orders_start_and_shutdown() {
    let mut daemon = Daemon::start_with(&["--config", "app.toml"], |dir| {
        std::fs::write(dir.join("app.toml"), APP).expect("config");
    })
    .await;
    let control = daemon.control().await;
    control
        .wait_program("web", "web is ok", DEADLINE, |p| {
            p.status == ProgramStatus::Ok as i32
        })
        .await;
    let events = history(&control).await;
    // Compare first spawns, not completions: a migrate spawned before db was ok
    // would still complete after it.
    let db_ok = position(&events, |e| is(e, EventKind::Started) && e.program == "db");
    let migrate_spawned = position(&events, |e| e.program == "migrate" && e.pid != 0);
    let migrated = position(&events, |e| {
        is(e, EventKind::Stopped) && e.program == "migrate" && e.reason == "completed"
    });
    let web_spawned = position(&events, |e| e.program == "web" && e.pid != 0);
    let order = events.iter().map(describe).collect::<Vec<_>>().join("\n");
    assert!(
        db_ok < migrate_spawned,
        "migrate spawned only once db was ok:\n{order}"
    );
    assert!(
        migrate_spawned < migrated && migrated < web_spawned,
        "web spawned only once migrate completed:\n{order}"
    );

    let mut pids = control.ok_pids("db").await;
    pids.extend(control.ok_pids("web").await);
    let recorder = Recorder::new(&daemon).await;
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(daemon.wait_exit(DEADLINE).await.success());
    let stops = recorder.all();
    let web_stopped = position(&stops, |e| is(e, EventKind::Stopped) && e.program == "web");
    let db_stopping = position(&stops, |e| is(e, EventKind::Stopping) && e.program == "db");
    assert!(web_stopped < db_stopping, "web stops before db");
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn a_failed_migration_leaves_web_down_with_the_error_visible() {
    let daemon = Daemon::start_with(&["--config", "app.toml"], |dir| {
        std::fs::write(dir.join("app.toml"), APP.replace("${MIGRATE_EXIT:-0}", "4"))
            .expect("config");
    })
    .await;
    let control = daemon.control().await;
    control
        .wait_program("web", "web gave up", DEADLINE, |p| {
            p.status == ProgramStatus::Error as i32
        })
        .await;
    let web = control.program("web").await;
    assert!(
        web.error.contains("migrate") && web.error.contains("code 4"),
        "{}",
        web.error
    );
    assert!(
        control.workers_of("web").await.is_empty(),
        "web never started"
    );
    // The failure is an event too: an `error` for web naming migrate's failure,
    // and no web process was ever spawned.
    let events = history(&control).await;
    let error = events
        .iter()
        .find(|e| is(e, EventKind::Error) && e.program == "web")
        .unwrap_or_else(|| panic!("no error event for web in {events:#?}"));
    assert!(
        error.reason.contains("migrate") && error.reason.contains("code 4"),
        "{}",
        describe(error)
    );
    assert!(
        !events.iter().any(|e| e.program == "web" && e.pid != 0),
        "no web process was spawned"
    );
    let (_, status, _) = daemon.ctl(&["status"]);
    assert!(
        status.contains("migrate") && status.contains("error"),
        "{status}"
    );
    let db = control.ok_pids("db").await;
    assert!(daemon.stop().await.success());
    wait_gone(&db, DEADLINE).await;
}

/// Runs `infantd --config` on `text` and expects it to refuse to start.
fn refused(text: &str) -> String {
    refused_in(&short_tempdir(), text)
}

/// [`refused`], with the config file and socket in `dir`.
fn refused_in(dir: &tempfile::TempDir, text: &str) -> String {
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, text).expect("config");
    let socket = dir.path().join("d.sock");
    let mut child = Command::new(infantd_bin())
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn infantd");
    // A bad config never gets as far as serving: infantd exits on its own.
    wait_child_blocking(&mut child, DEADLINE);
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success());
    assert!(!socket.exists(), "it did not start half-configured");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_configs_are_refused_with_the_line_or_program() {
    let cycle = refused("[program.a]\ncommand=[\"x\"]\nafter=[\"b\"]\n[program.b]\ncommand=[\"x\"]\nafter=[\"a\"]\n");
    assert!(
        cycle.contains("cycle") && cycle.contains("a → b → a"),
        "{cycle}"
    );
    let unknown = refused("[program.a]\ncommand=[\"x\"]\nafter=[\"ghost\"]\n");
    assert!(
        unknown.contains("ghost") && unknown.contains("line 1"),
        "{unknown}"
    );
    let duplicate = refused("[program.a]\ncommand=[\"x\"]\n[program.a]\ncommand=[\"y\"]\n");
    assert!(duplicate.contains("line 3"), "{duplicate}");
    let duration = refused("[program.a]\ncommand=[\"x\"]\nstop_timeout=\"soon\"\n");
    assert!(
        duration.contains("line 3") && duration.contains("soon"),
        "{duration}"
    );
}

#[tokio::test]
async fn stopping_a_dependency_stops_its_dependents_first() {
    let daemon = Daemon::start_with(&["--config", "app.toml"], |dir| {
        std::fs::write(dir.join("app.toml"), APP).expect("config");
    })
    .await;
    let control = daemon.control().await;
    control
        .wait_program("web", "web is ok", DEADLINE, |p| {
            p.status == ProgramStatus::Ok as i32
        })
        .await;
    let mut pids = control.ok_pids("db").await;
    pids.extend(control.ok_pids("web").await);
    let recorder = Recorder::new(&daemon).await;
    // web needs db through migrate, a job that has completed and is not running.
    let (status, _, stderr) = daemon.ctl(&["stop", "db"]);
    assert!(status.success(), "{stderr}");
    recorder
        .wait_for("db stopped", |e| {
            is(e, EventKind::Stopped) && e.program == "db"
        })
        .await;
    let events = recorder.all();
    let web_stopped = position(&events, |e| is(e, EventKind::Stopped) && e.program == "web");
    let db_stopping = position(&events, |e| is(e, EventKind::Stopping) && e.program == "db");
    assert!(web_stopped < db_stopping, "web stops before db");
    wait_gone(&pids, DEADLINE).await;
    assert!(daemon.stop().await.success());
}

#[test]
fn a_bad_config_spawns_nothing_at_all() {
    // The valid program comes first: a daemon that started programs while it
    // read the file would run it before it found the bad one.
    let dir = short_tempdir();
    let marker = dir.path().join("spawned");
    let text = format!(
        "[program.good]\ncommand = [\"sh\", \"-c\", \"touch '{}'; exec sleep 1000\"]\n\
         [program.bad]\ncommand = [\"true\"]\nafter = [\"ghost\"]\n",
        marker.display()
    );
    let stderr = refused_in(&dir, &text);
    assert!(stderr.contains("ghost"), "{stderr}");
    assert!(
        !marker.exists(),
        "the valid program was spawned from a config that was refused"
    );
}

#[tokio::test]
async fn starting_a_program_brings_up_what_it_needs_in_order() {
    let daemon = daemon_with_config(APP).await;
    let control = daemon.control().await;
    control
        .wait_program("web", "web is ok", DEADLINE, |p| {
            p.status == ProgramStatus::Ok as i32
        })
        .await;
    let mut pids = control.ok_pids("db").await;
    pids.extend(control.ok_pids("web").await);
    // Stopping db stops web first; migrate, a completed job, is not running.
    let (status, _, stderr) = daemon.ctl(&["stop", "db"]);
    assert!(status.success(), "{stderr}");
    for name in ["db", "web"] {
        control
            .wait_program(name, &format!("{name} is stopped"), DEADLINE, |p| {
                p.status == ProgramStatus::Ready as i32 && p.running == 0
            })
            .await;
    }
    wait_gone(&pids, DEADLINE).await;

    let events = start_web_recording(&daemon).await;
    let db_ok = position(&events, |e| is(e, EventKind::Started) && e.program == "db");
    let migrate_spawned = position(&events, |e| e.program == "migrate" && e.pid != 0);
    let migrated = position(&events, |e| {
        is(e, EventKind::Stopped) && e.program == "migrate" && e.reason == "completed"
    });
    let web_spawned = position(&events, |e| e.program == "web" && e.pid != 0);
    let order = events.iter().map(describe).collect::<Vec<_>>().join("\n");
    assert!(
        db_ok < migrate_spawned && migrate_spawned < migrated && migrated < web_spawned,
        "db ok → migrate rerun and completed → web started:\n{order}"
    );
    let mut pids = control.ok_pids("db").await;
    assert_eq!(pids.len(), 1, "db is up again");
    pids.extend(control.ok_pids("web").await);
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

/// The SDK's `childOnce`: a job built on `infant::worker::once` (the
/// `fork_once` example, run by the daemon as its child half) exits 0 when its
/// `exec` succeeds and 1 when it fails, and the daemon sees that code.
#[tokio::test]
async fn an_sdk_job_exits_0_or_1_and_the_daemon_sees_the_code() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let job = example_bin("fork_once");
    let job = job.to_str().expect("UTF-8 path");

    let ok = run_job(&daemon, "sdk-ok", spec(ProgramKind::Once, &[job])).await;
    assert_eq!(ok.status, ProgramStatus::Ready as i32, "{ok:?}");
    assert_eq!(ok.exit_code, Some(0), "{ok:?}");

    let mut failing = spec(ProgramKind::Once, &[job]);
    failing.env.insert("ONCE_FAIL".into(), "1".into());
    let bad = run_job(&daemon, "sdk-bad", failing).await;
    assert_eq!(bad.status, ProgramStatus::Error as i32, "{bad:?}");
    assert_eq!(bad.exit_code, Some(1), "{bad:?}");
    assert!(bad.error.contains("code 1"), "{}", bad.error);

    for (name, code) in [("sdk-ok", 0), ("sdk-bad", 1)] {
        let exit = events
            .wait_for(&format!("{name}'s exit"), |e| {
                is(e, EventKind::Exit) && e.program == name
            })
            .await;
        assert_eq!(exit.code, Some(code), "{}", describe(&exit));
    }
    // The same job through `infantctl start --wait`: a failure naming code 1.
    let (status, _, stderr) = daemon.ctl(&[
        "start",
        "sdk-cli",
        "--kind",
        "once",
        "--wait",
        "--env",
        "ONCE_FAIL=1",
        "--",
        job,
    ]);
    assert!(!status.success());
    assert!(stderr.contains("code 1"), "{stderr}");
    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

/// A completed job holds only for the launch of what it ran after: once `db`
/// was stopped and started again by itself, starting `web` runs `migrate`
/// again first.
#[tokio::test]
async fn a_job_runs_again_once_what_it_ran_after_was_started_again() {
    let daemon = daemon_with_config(APP).await;
    let control = daemon.control().await;
    control
        .wait_program("web", "web is ok", DEADLINE, |p| {
            p.status == ProgramStatus::Ok as i32
        })
        .await;
    let old = control.ok_pids("db").await;
    let (status, _, stderr) = daemon.ctl(&["stop", "db"]);
    assert!(status.success(), "{stderr}");
    let (status, _, stderr) = daemon.ctl(&["start", "db"]);
    assert!(status.success(), "{stderr}");
    wait_gone(&old, DEADLINE).await;

    let events = start_web_recording(&daemon).await;
    let order = events.iter().map(describe).collect::<Vec<_>>().join("\n");
    let migrated = position(&events, |e| {
        is(e, EventKind::Stopped) && e.program == "migrate" && e.reason == "completed"
    });
    let web_spawned = position(&events, |e| e.program == "web" && e.pid != 0);
    assert!(
        migrated < web_spawned,
        "migrate ran again before web:\n{order}"
    );
    let mut pids = control.ok_pids("db").await;
    pids.extend(control.ok_pids("web").await);
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

/// The start-up launches a job and goes on: a program later in the file that
/// does not need the job starts while the job still runs.
#[tokio::test]
async fn a_long_job_holds_up_only_what_needs_it() {
    let daemon = daemon_with_config(
        r#"
[program.backfill]
kind = "once"
command = ["sleep", "1000"]

[program.report]
kind = "once"
command = ["true"]
after = ["backfill"]

[program.web]
command = ["sleep", "1000"]
start_grace = "50ms"
"#,
    )
    .await;
    let control = daemon.control().await;
    control
        .wait_program("web", "web is ok", DEADLINE, |p| {
            p.status == ProgramStatus::Ok as i32
        })
        .await;
    let backfill = control.ok_pids("backfill").await;
    assert_eq!(backfill.len(), 1, "backfill still runs");
    let report = control.program("report").await;
    assert_eq!(report.status, ProgramStatus::Starting as i32, "{report:?}");
    assert_eq!(report.running, 0, "report waits for backfill");
    let mut pids = backfill;
    pids.extend(control.ok_pids("web").await);
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

/// The daemon stops in reverse start order: a program started over the API
/// after start-up stops before the configured ones.
#[tokio::test]
async fn shutdown_stops_what_the_api_started_first() {
    let mut daemon = daemon_with_config(APP).await;
    let control = daemon.control().await;
    control
        .wait_program("web", "web is ok", DEADLINE, |p| {
            p.status == ProgramStatus::Ok as i32
        })
        .await;
    let mut s = spec(ProgramKind::Child, &["sleep", "1000"]);
    s.start_grace_ms = Some(50);
    control.start_spec("extra", s).await;
    let mut pids = control.ok_pids("extra").await;
    pids.extend(control.ok_pids("db").await);
    pids.extend(control.ok_pids("web").await);
    let recorder = Recorder::new(&daemon).await;
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(daemon.wait_exit(DEADLINE).await.success());
    let stops = recorder.all();
    let order = stops.iter().map(describe).collect::<Vec<_>>().join("\n");
    let extra = position(&stops, |e| {
        is(e, EventKind::Stopped) && e.program == "extra"
    });
    let web = position(&stops, |e| is(e, EventKind::Stopping) && e.program == "web");
    let db = position(&stops, |e| is(e, EventKind::Stopping) && e.program == "db");
    assert!(
        extra < web && web < db,
        "extra, then web, then db:\n{order}"
    );
    wait_gone(&pids, DEADLINE).await;
}
