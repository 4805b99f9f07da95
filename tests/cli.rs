//! `infantctl` against a real daemon: inline starts, tables and `--json` lines,
//! messages, scaling, kill, restart and stop; and its failures, each a non-zero
//! exit with one line on stderr.

mod common;

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

    // `workers`: the keys DESIGN.md names, and the pid the daemon reports.
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
    let mut client = daemon.client().await;
    assert_eq!(ok_pids(&mut client, "echo").await, [first]);
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
    assert_eq!(stopped[0]["status"], "ready", "{stopped:?}");
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
    assert_eq!(json_lines(&shrunk)[0]["count"], 1, "{shrunk}");
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
    assert!(daemon.stop().await.success(), "infantd exits 0");
}
