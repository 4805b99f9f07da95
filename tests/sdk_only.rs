//! A worker crate that depends on the worker SDK alone (`tests/sdk_only/`, with
//! `infant = { path = "../..", default-features = false }`) builds, and runs under
//! a real `infantd` as an attached SDK worker: it becomes `ok` through its `Ready`,
//! heartbeats without being taken for hung, and stops gracefully, exit code 0.

pub mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Builds `tests/sdk_only` (its own workspace, its own committed `Cargo.lock`) in
/// `target/sdk-only`, and returns the worker's path.
fn build_sdk_only_worker() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk_only/Cargo.toml");
    // tests run from target/<profile>/deps/<test>-<hash>: the target folder is
    // three levels up. A folder of its own, so this build never waits for the
    // lock of the build that is running us.
    let exe = std::env::current_exe().expect("current_exe");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>")
        .join("sdk-only");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .arg("build")
        .arg("--locked")
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .stdin(Stdio::null())
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "cargo build --manifest-path {} failed:\n{}",
        manifest.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let worker = target.join("debug/sdk-only-worker");
    assert!(worker.exists(), "{} was not built", worker.display());
    worker
}

/// The lines of `infantctl --json ARGS`, parsed; panics unless it succeeds.
fn ctl_json(daemon: &Daemon, args: &[&str]) -> Vec<Value> {
    let (status, stdout, stderr) = daemon.ctl(&[&["--json"], args].concat());
    assert!(status.success(), "infantctl {args:?}: {status}: {stderr}");
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("infantctl --json prints JSON lines"))
        .collect()
}

#[tokio::test]
async fn a_worker_on_the_sdk_alone_attaches_heartbeats_and_stops_gracefully() {
    let worker = build_sdk_only_worker();
    let daemon = Daemon::start(&[]).await;
    let out = daemon.dir.path().join("sdk_only.out");

    // A start grace far longer than the test waits: only the worker's `Ready`
    // can make it `ok`. A 50 ms heartbeat: 8 silent intervals (400 ms) would
    // make it hung. The shell execs the worker with its stdout in a file.
    let (status, stdout, stderr) = daemon.ctl(&[
        "start",
        "sdk",
        "--start-grace",
        "60s",
        "--heartbeat",
        "50ms",
        "--",
        "sh",
        "-c",
        r#"exec "$0" >> "$1""#,
        &worker.to_string_lossy(),
        &out.to_string_lossy(),
    ]);
    assert!(status.success(), "start: {status}: {stdout}{stderr}");
    assert!(stdout.contains("sdk: ok"), "start: {stdout}");

    let workers = ctl_json(&daemon, &["workers", "sdk"]);
    assert_eq!(workers.len(), 1, "{workers:?}");
    let first = &workers[0];
    assert_eq!(first["status"], "ok", "{first}");
    assert_eq!(
        first["attached"], true,
        "not attached over the SDK: {first}"
    );
    let pid = first["pid"].as_u64().expect("pid");
    let started = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        started.contains(&format!("started {pid} supervised=true")),
        "the start hook did not run under the daemon: {started:?}"
    );

    // Heartbeats: the worker stays the same attached, `ok` process for many
    // times the 400 ms after which a silent one is killed as hung.
    wait_until(
        "the worker has lived 40 heartbeat intervals",
        DEADLINE,
        || {
            let listed = ctl_json(&daemon, &["workers", "sdk"]);
            async move {
                let [only] = listed.as_slice() else {
                    panic!("one worker expected: {listed:?}");
                };
                assert_eq!(only["pid"].as_u64(), Some(pid), "respawned: {only}");
                assert_eq!(only["status"], "ok", "{only}");
                assert_eq!(only["restarts"], 0, "{only}");
                only["uptime_ms"].as_u64().is_some_and(|ms| ms >= 2_000)
            }
        },
    )
    .await;

    let (status, stdout, stderr) = daemon.ctl(&["stop", "sdk"]);
    assert!(status.success(), "stop: {status}: {stdout}{stderr}");
    let stopped = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        stopped.contains(&format!("stopped {pid}")),
        "the stop hook did not run: {stopped:?}"
    );
    let events = ctl_json(&daemon, &["events", "sdk"]);
    let exit = events
        .iter()
        .find(|e| e["kind"] == "exit" && e["pid"].as_u64() == Some(pid))
        .unwrap_or_else(|| panic!("no exit event for {pid}: {events:?}"));
    assert_eq!(exit["code"], 0, "not a graceful exit: {exit}");
    assert!(
        !events.iter().any(|e| e["kind"] == "error"),
        "errors: {events:?}"
    );
    wait_gone(&[pid as u32], Duration::from_secs(5)).await;

    let status = daemon.stop().await;
    assert!(status.success(), "infantd: {status}");
}
