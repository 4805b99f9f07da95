//! `infantctl` against a real daemon: inline starts, tables and `--json` lines,
//! messages, scaling, kill, restart and stop; and its failures, each a non-zero
//! exit with one line on stderr.

pub mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// Runs `infantctl ARGS` against `daemon`, asserts it succeeded, returns stdout.
fn ctl_ok(daemon: &Daemon, args: &[&str]) -> String {
    let (status, stdout, stderr) = daemon.ctl(args);
    assert!(
        status.success(),
        "infantctl {args:?} should succeed, got {status:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    stdout
}

/// Every line of `stdout` as a JSON object.
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"))
        })
        .collect()
}

/// Asserts `object` has exactly the `keys` (and maybe more), naming what is missing.
fn assert_keys(object: &Value, keys: &[&str]) {
    for key in keys {
        assert!(object.get(key).is_some(), "`{key}` missing from {object}");
    }
}

/// `workers NAME --json`, parsed.
fn workers_json(daemon: &Daemon, name: &str) -> Vec<Value> {
    json_lines(&ctl_ok(daemon, &["workers", name, "--json"]))
}

/// The pids of `workers NAME --json` whose status is `ok`.
fn ok_pids_json(daemon: &Daemon, name: &str) -> Vec<u32> {
    workers_json(daemon, name)
        .iter()
        .filter(|w| w["status"] == "ok")
        .filter_map(|w| w["pid"].as_u64())
        .map(|pid| pid as u32)
        .collect()
}

/// Asserts a failed `infantctl` run: non-zero status and exactly one line on
/// stderr that contains `needle`.
fn assert_one_line_failure(
    what: &str,
    (status, stdout, stderr): (std::process::ExitStatus, String, String),
    needle: &str,
) {
    assert!(
        !status.success(),
        "{what}: should fail, got {status:?}\nstdout: {stdout}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one line on stderr, got {stderr:?}");
    assert!(
        lines[0].contains(needle),
        "{what}: stderr should name `{needle}`: {stderr:?}"
    );
}

#[tokio::test]
async fn a_child_started_inline_is_listed_messaged_killed_restarted_and_stopped() {
    let daemon = Daemon::start(&[]).await;
    let worker = example_bin("echo_worker");
    let worker = worker.to_str().expect("UTF-8 path");

    let started = ctl_ok(&daemon, &["start", "echo", "--", worker]);
    assert!(
        started.starts_with("echo: ok (child, 1/1 running"),
        "start prints the program's state: {started:?}"
    );

    // `status`: a table for people …
    let table = ctl_ok(&daemon, &["status"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        &header[..4],
        ["NAME", "KIND", "STATUS", "RUNNING/COUNT"],
        "{table}"
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["echo", "child", "ok", "1/1"], "{table}");
    // … and JSON lines for scripts.
    let programs = json_lines(&ctl_ok(&daemon, &["status", "--json"]));
    assert_eq!(programs.len(), 1, "{programs:?}");
    let program = &programs[0];
    assert_keys(
        program,
        &["name", "kind", "status", "count", "running", "restarts"],
    );
    assert_eq!(
        (&program["name"], &program["kind"], &program["status"]),
        (&"echo".into(), &"child".into(), &"ok".into()),
    );
    assert_eq!(
        (&program["count"], &program["running"]),
        (&1.into(), &1.into())
    );

    // `workers`: the keys docs/cli.md names, and the pid the daemon reports.
    let listed = workers_json(&daemon, "echo");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let w = &listed[0];
    assert_keys(
        w,
        &[
            "program",
            "id",
            "pid",
            "status",
            "restarts",
            "connections",
            "rss_bytes",
            "uptime_ms",
        ],
    );
    assert_eq!(
        (&w["program"], &w["id"], &w["status"]),
        (&"echo".into(), &1.into(), &"ok".into())
    );
    let first = w["pid"].as_u64().expect("pid") as u32;
    let control = daemon.control().await;
    assert_eq!(control.ok_pids("echo").await, [first]);
    assert!(w["rss_bytes"].as_u64() > Some(0), "rss is read: {w}");
    let table = ctl_ok(&daemon, &["workers"]);
    assert!(
        table.starts_with("PROGRAM") && table.contains(&first.to_string()),
        "{table}"
    );

    // `send`, then the worker's reply in `events`.
    assert_eq!(
        ctl_ok(&daemon, &["send", "echo", "hello"]).trim(),
        "delivered to 1 worker"
    );
    wait_until("the echo in `infantctl events echo`", DEADLINE, || {
        let (_, stdout, _) = daemon.ctl(&["events", "echo"]);
        async move { stdout.contains(r#"payload="echo: hello""#) }
    })
    .await;
    let events = json_lines(&ctl_ok(&daemon, &["events", "echo", "--json"]));
    let message = events
        .iter()
        .find(|e| e["kind"] == "message")
        .unwrap_or_else(|| panic!("a message event in {events:?}"));
    assert_keys(
        message,
        &["seq", "time", "program", "worker", "pid", "kind"],
    );
    assert_eq!(message["payload"], "echo: hello");
    assert_eq!(message["pid"], first);

    // `kill NAME/ID 9`: a crash, respawned with a new pid.
    assert_eq!(
        ctl_ok(&daemon, &["kill", "echo/1", "9"]).trim(),
        "signalled 1"
    );
    let mut second = 0;
    wait_until("a new ok pid after kill -9", DEADLINE, || {
        let pids = ok_pids_json(&daemon, "echo");
        second = pids.first().copied().unwrap_or(first);
        async move { pids.len() == 1 && pids[0] != first }
    })
    .await;

    // `restart`: a new process again.
    let restarted = ctl_ok(&daemon, &["restart", "echo"]);
    assert!(restarted.starts_with("echo: ok"), "{restarted:?}");
    let third = ok_pids_json(&daemon, "echo");
    assert!(
        third.len() == 1 && third[0] != second,
        "restart replaced {second}: {third:?}"
    );

    // `stop`: nothing left running.
    let stopped = ctl_ok(&daemon, &["stop", "echo", "--json"]);
    let stopped = json_lines(&stopped);
    // With --json, the steps come first (objects with a `step` key), the program last.
    let program = stopped.last().expect("the program");
    assert_eq!(program["status"], "ready", "{stopped:?}");
    assert!(
        stopped.iter().any(|s| s["step"] == "stopped"),
        "{stopped:?}"
    );
    assert!(workers_json(&daemon, "echo").is_empty());
    wait_gone(&[first, second, third[0]], DEADLINE).await;
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

#[tokio::test]
async fn a_cluster_started_inline_scales_and_restarts() {
    let daemon = Daemon::start(&[]).await;
    let started = ctl_ok(
        &daemon,
        &[
            "start", "pool", "--kind", "cluster", "--count", "2", "--", "sleep", "1000",
        ],
    );
    assert!(
        started.starts_with("pool: ok (cluster, 2/2 running"),
        "{started:?}"
    );
    let two = ok_pids_json(&daemon, "pool");
    assert_eq!(two.len(), 2, "two workers: {two:?}");

    let grown = ctl_ok(&daemon, &["scale", "pool", "4"]);
    assert!(
        grown.starts_with("pool: ok (cluster, 4/4 running"),
        "{grown:?}"
    );
    let four = ok_pids_json(&daemon, "pool");
    assert_eq!(four.len(), 4, "{four:?}");
    assert!(
        two.iter().all(|pid| four.contains(pid)),
        "growing keeps the old ones"
    );

    let shrunk = ctl_ok(&daemon, &["scale", "pool", "1", "--json"]);
    let shrunk = json_lines(&shrunk);
    assert_eq!(
        shrunk.last().expect("the program")["count"],
        1,
        "{shrunk:?}"
    );
    let stopped = shrunk.iter().filter(|s| s["step"] == "stopped").count();
    assert_eq!(stopped, 3, "one step per worker stopped: {shrunk:?}");
    assert_eq!(shrunk[shrunk.len() - 2]["step"], "done", "{shrunk:?}");
    let one = ok_pids_json(&daemon, "pool");
    assert_eq!(one, [two[0]], "shrinking stops the newest workers");
    let dropped: Vec<u32> = four.iter().copied().filter(|p| *p != two[0]).collect();
    wait_gone(&dropped, DEADLINE).await;

    // A rolling restart replaces the worker.
    ctl_ok(&daemon, &["restart", "pool"]);
    let replaced = ok_pids_json(&daemon, "pool");
    assert!(
        replaced.len() == 1 && replaced[0] != two[0],
        "rolling restart replaced {}: {replaced:?}",
        two[0]
    );

    ctl_ok(&daemon, &["stop", "pool"]);
    let status = json_lines(&ctl_ok(&daemon, &["--json", "status"]));
    assert_eq!(
        (&status[0]["status"], &status[0]["running"]),
        (&"ready".into(), &0.into())
    );
    wait_gone(&[four.as_slice(), replaced.as_slice()].concat(), DEADLINE).await;
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

#[tokio::test]
async fn failures_exit_non_zero_with_one_line_naming_the_problem() {
    let daemon = Daemon::start(&[]).await;
    for args in [
        &["stop", "ghost"][..],
        &["restart", "ghost"],
        &["send", "ghost", "hi"],
        &["kill", "ghost", "9"],
        &["scale", "ghost", "2"],
        &["start", "ghost"],
        &["workers", "ghost"],
    ] {
        assert_one_line_failure(&format!("{args:?}"), daemon.ctl(args), "ghost");
    }
    assert_one_line_failure(
        "a missing executable",
        daemon.ctl(&["start", "nobin", "--", "/nonexistent/x"]),
        "/nonexistent/x",
    );
    // The daemon still answers.
    ctl_ok(&daemon, &["status"]);

    // No daemon on the socket at all.
    let dir = short_tempdir();
    let missing = dir.path().join("none.sock");
    let out = Command::new(infantctl_bin())
        .arg("--socket")
        .arg(&missing)
        .arg("status")
        .stdin(Stdio::null())
        .output()
        .expect("run infantctl");
    assert_one_line_failure(
        "no daemon",
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        "none.sock",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "infantd is not running at",
        "infantd --config",
        "INFANT_SOCKET",
    ] {
        assert!(stderr.contains(needle), "`{needle}` missing: {stderr}");
    }
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

// ---------------------------------------------------------------------------
// Programs defined in a config file
// ---------------------------------------------------------------------------

/// Lines of `path` (0 when it does not exist yet).
fn line_count(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

#[tokio::test]
async fn start_wait_runs_a_configured_job_and_reports_its_outcome() {
    let daemon = daemon_with_config(
        r#"
[program.migrate]
kind = "once"
command = ["sh", "-c", "echo run >> runs"]

[program.broken]
kind = "once"
command = ["sh", "-c", "exit 3"]
"#,
    )
    .await;
    let runs = daemon.dir.path().join("runs");
    let control = daemon.control().await;
    // Both jobs also ran once when the daemon started.
    control
        .wait_program("migrate", "the boot run completed", DEADLINE, |p| {
            p.exit_code == Some(0) && p.running == 0
        })
        .await;
    control
        .wait_program("broken", "the boot run failed", DEADLINE, |p| {
            p.exit_code == Some(3)
        })
        .await;
    assert_eq!(line_count(&runs), 1);

    // By name only: the definition is the config's.
    let done = ctl_ok(&daemon, &["start", "migrate", "--wait"]);
    assert!(
        done.starts_with("migrate: ready (once, 0/1 running")
            && done.contains("last run exited with code 0"),
        "completed, nothing left running: {done:?}"
    );
    assert_eq!(line_count(&runs), 2, "--wait returned after the run");
    let done = json_lines(&ctl_ok(&daemon, &["start", "migrate", "--wait", "--json"]));
    assert_eq!(
        (&done[0]["status"], &done[0]["exit_code"], &done[0]["error"]),
        (&"ready".into(), &0.into(), &"".into()),
        "{done:?}"
    );
    assert_eq!(line_count(&runs), 3);

    let failed = daemon.ctl(&["start", "broken", "--wait"]);
    assert!(
        failed.1.starts_with("broken: error (once") && failed.1.contains("exited with code 3"),
        "the outcome is printed: {:?}",
        failed.1
    );
    assert_one_line_failure("a failed job", failed, "exited with code 3");
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

#[tokio::test]
async fn status_shows_every_configured_program_and_why_web_is_down() {
    let daemon = daemon_with_config(&APP.replace("${MIGRATE_EXIT:-0}", "4")).await;
    let control = daemon.control().await;
    control
        .wait_program("web", "web gave up", DEADLINE, |p| {
            p.status == infant::proto::ProgramStatus::Error as i32
        })
        .await;

    let table = ctl_ok(&daemon, &["status"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|row| row[0]).collect();
    assert_eq!(names, ["db", "migrate", "web"], "in config order:\n{table}");
    assert_eq!(&rows[0][..3], ["db", "child", "ok"], "{table}");
    assert_eq!(&rows[1][..3], ["migrate", "once", "error"], "{table}");
    assert_eq!(&rows[2][..4], ["web", "cluster", "error", "0/2"], "{table}");
    let web_row = table.lines().nth(3).unwrap_or_default();
    assert!(
        web_row.contains("`migrate` failed") && web_row.contains("code 4"),
        "web's error names migrate's failure: {web_row:?}"
    );

    let programs = json_lines(&ctl_ok(&daemon, &["status", "--json"]));
    let web = programs
        .iter()
        .find(|p| p["name"] == "web")
        .unwrap_or_else(|| panic!("web in {programs:?}"));
    let error = web["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("migrate") && error.contains("code 4"),
        "{error}"
    );
    let db = control.ok_pids("db").await;
    assert!(daemon.stop().await.success(), "infantd exits 0");
    wait_gone(&db, DEADLINE).await;
}

#[tokio::test]
async fn start_without_wait_returns_before_the_job_completes() {
    // The boot run is quick; every later run takes 5 s.
    let daemon = daemon_with_config(
        r#"
[program.slow]
kind = "once"
command = ["sh", "-c", "echo run >> runs; [ $(wc -l < runs) -eq 1 ] || sleep 5"]
"#,
    )
    .await;
    let control = daemon.control().await;
    control
        .wait_program("slow", "the boot run completed", DEADLINE, |p| {
            p.exit_code == Some(0) && p.running == 0
        })
        .await;
    let events = Recorder::new(&daemon).await;

    let asked = std::time::Instant::now();
    let started = ctl_ok(&daemon, &["start", "slow"]);
    let returned = std::time::Instant::now();
    let returned_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    assert!(
        returned - asked < std::time::Duration::from_secs(3),
        "Start returned after {:?}, not at once",
        returned - asked
    );
    assert!(
        started.starts_with("slow: ") && started.contains("1/1 running"),
        "the job is running: {started:?}"
    );

    // The outcome arrives later, as events.
    let completed = events
        .wait_for("slow completed", |e| {
            is(e, infant::proto::EventKind::Stopped)
                && e.program == "slow"
                && e.reason == "completed"
        })
        .await;
    assert!(
        completed.time_ms > returned_ms,
        "completed after Start returned"
    );
    let exit = events
        .wait_for("slow's exit", |e| {
            is(e, infant::proto::EventKind::Exit) && e.program == "slow"
        })
        .await;
    assert_eq!(exit.code, Some(0), "{}", describe(&exit));
    assert_eq!(line_count(&daemon.dir.path().join("runs")), 2);
    let pids = events.pids();
    assert!(daemon.stop().await.success(), "infantd exits 0");
    wait_gone(&pids, DEADLINE).await;
}

// Inline `--listen`, and rolling and full restarts from the command line.

/// The `listen` addresses `status --json` reports for `name`.
fn listen_json(daemon: &Daemon, name: &str) -> Vec<String> {
    json_lines(&ctl_ok(daemon, &["status", "--json"]))
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["listen"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// One request to `addr`; asserts a worker among `pids` answered it.
async fn served_by_one_of(addr: &str, pids: &[u32]) {
    let body = http_get(addr).await.expect("the cluster serves");
    assert!(
        pids.iter().any(|p| body == format!("pid {p}")),
        "one of {pids:?} answered: {body:?}"
    );
}

#[tokio::test]
async fn an_inline_cluster_with_listen_serves_and_restarts_rolling_and_full() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let worker = example_bin("http_worker");
    let worker = worker.to_str().expect("UTF-8 path");
    let started = ctl_ok(
        &daemon,
        &[
            "start",
            "web",
            "--kind",
            "cluster",
            "--count",
            "3",
            "--enhanced",
            "--listen",
            "tcp://127.0.0.1:0",
            "--",
            worker,
        ],
    );
    let listen = listen_json(&daemon, "web");
    assert_eq!(listen.len(), 1, "{listen:?}");
    let addr = listen[0].clone();
    assert!(
        addr.starts_with("tcp://127.0.0.1:") && !addr.ends_with(":0"),
        "port 0 is resolved: {addr}"
    );
    assert!(
        started.starts_with("web: ok (cluster, 3/3 running")
            && started.trim_end().ends_with(&format!(" on {addr}")),
        "{started:?}"
    );
    let first = ok_pids_json(&daemon, "web");
    assert_eq!(first.len(), 3, "{first:?}");
    served_by_one_of(&addr, &first).await;

    // `restart NAME`: rolling, every worker replaced, the port kept.
    let rolled = ctl_ok(&daemon, &["restart", "web"]);
    assert!(
        rolled.starts_with("web: ok (cluster, 3/3 running"),
        "{rolled:?}"
    );
    let second = ok_pids_json(&daemon, "web");
    assert_eq!(second.len(), 3, "{second:?}");
    assert!(
        second.iter().all(|p| !first.contains(p)),
        "a rolling restart replaces every worker: {first:?} → {second:?}"
    );
    wait_gone(&first, DEADLINE).await;
    assert_eq!(listen_json(&daemon, "web"), std::slice::from_ref(&addr));
    served_by_one_of(&addr, &second).await;

    // `restart --full NAME`: every worker replaced, all old ones gone before
    // the first new one starts; the port is kept here too.
    let full = ctl_ok(&daemon, &["restart", "--full", "web"]);
    assert!(
        full.starts_with("web: ok (cluster, 3/3 running"),
        "{full:?}"
    );
    let third = ok_pids_json(&daemon, "web");
    assert_eq!(third.len(), 3, "{third:?}");
    assert!(
        third.iter().all(|p| !second.contains(p)),
        "a full restart replaces every worker: {second:?} → {third:?}"
    );
    events
        .assert_all_exited_before_any_started(&second, &third)
        .await;
    assert_eq!(listen_json(&daemon, "web"), std::slice::from_ref(&addr));
    served_by_one_of(&addr, &third).await;

    ctl_ok(&daemon, &["stop", "web"]);
    let pids = events.pids();
    wait_gone(&pids, DEADLINE).await;
    assert!(daemon.stop().await.success(), "infantd exits 0");
}
