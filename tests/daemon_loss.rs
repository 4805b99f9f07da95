//! `kill -9` of infantd itself: every worker is gone within 2 seconds, and so are
//! the processes an SDK worker started, and (mid-operation) the grandchildren
//! of plain workers (see also `containment`).
//!
//! PID 1 (in a container, say) may not reap orphans, so a worker that outlived its
//! daemon would linger as a zombie and be indistinguishable (in `/proc`) from one
//! that did not die. This test process therefore makes itself a child subreaper:
//! the workers orphaned by the killed daemon are reparented to it, and it reaps
//! exactly those pids. That setting is process-wide, which is why this test has a
//! binary of its own.

pub mod common;

use std::time::{Duration, Instant};

use common::*;
use infant::proto::{self, EventKind, ProgramKind};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Reaps `pid` if it is a zombie child of ours; true once it no longer exists.
/// Only ever waits for that pid: `waitpid(-1)` would steal the exit statuses of
/// the `std::process::Child`ren this process owns.
fn reaped(pid: u32) -> bool {
    match waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => false,
        // Reaped now, or not (yet) our child: /proc has the last word.
        Ok(_) | Err(Errno::ECHILD) => !exists(pid),
        Err(e) => panic!("waitpid({pid}): {e}"),
    }
}

/// The tests of this binary take turns: each checks for *all* orphans of this
/// process, which another test's running workers would otherwise look like.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn kill_9_of_infantd_takes_every_worker_down_within_2_seconds() {
    let _turn = ONE_AT_A_TIME.lock().await;
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");

    let mut daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let mut pool = spec(ProgramKind::Cluster, &["sleep", "1000"]);
    pool.count = Some(3);
    pool.start_grace_ms = Some(50);
    control
        .start("pool", Some(pool), false)
        .await
        .expect("start pool");
    // The SDK worker starts a grandchild: a lost daemon cannot kill its process
    // group, so the SDK must take the grandchild down itself.
    let worker = example_bin("echo_worker");
    let out = daemon.dir.path().join("echo.out");
    let worker = worker.to_string_lossy();
    let out_path = out.to_string_lossy();
    let mut echo = spec(
        ProgramKind::Child,
        &["sh", "-c", r#"exec "$0" >> "$1""#, &worker, &out_path],
    );
    echo.env.insert("ECHO_SPAWN_CHILD".into(), "1".into());
    echo.start_grace_ms = Some(10_000);
    control
        .start("echo", Some(echo), false)
        .await
        .expect("start echo");
    let mut pids = control.ok_pids("pool").await;
    assert_eq!(pids.len(), 3, "three plain workers");
    let sdk = control.workers_of("echo").await;
    assert!(
        sdk.len() == 1 && sdk[0].attached,
        "one attached SDK worker: {sdk:?}"
    );
    pids.push(sdk[0].pid);
    let grandchild: u32 = std::fs::read_to_string(&out)
        .expect("echo output")
        .lines()
        .find_map(|l| l.strip_prefix("grandchild ")?.trim().parse().ok())
        .expect("the worker reported its grandchild");
    pids.push(grandchild);
    drop(control);

    daemon.signal(Signal::SIGKILL);
    let killed = Instant::now();
    let status = daemon.wait_exit(DEADLINE).await;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "infantd died of SIGKILL"
    );

    wait_until(
        &format!("workers {pids:?} gone within 2 s of kill -9"),
        Duration::from_secs(2),
        || {
            // Every pid each round, so that each zombie is reaped as it appears.
            let left = pids.iter().filter(|&&pid| !reaped(pid)).count();
            let gone = left == 0;
            async move { gone }
        },
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(2),
        "every worker was gone {took:?} after the daemon died"
    );
}

/// This test process's children (after a daemon died, its orphans are ours).
fn our_children() -> Vec<u32> {
    children_of(std::process::id())
}

/// SIGKILLs the daemon while `operation` is under way, then checks that every
/// process it started died with it: they would all be reparented to this
/// subreaper process, so "none of our children is left" covers them all, even
/// ones spawned an instant before the kill.
async fn kill_daemon_during(
    name: &str,
    operation: impl FnOnce(Daemon) -> tokio::task::JoinHandle<Daemon>,
) {
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let http = example_bin("http_worker");
    let mut s = spec(ProgramKind::Cluster, &[&http.to_string_lossy()]);
    s.count = Some(4);
    s.listen = vec!["tcp://127.0.0.1:0".into()];
    control
        .start("web", Some(s), false)
        .await
        .expect("start web");
    // Plain workers with grandchildren of every kind: they are reparented to
    // this process too if they survive.
    let mut tree = spec(ProgramKind::Cluster, &["sh", "-c", TREE]);
    tree.count = Some(2);
    control.start_spec("tree", tree).await;
    let socket = daemon.socket.clone();
    wait_until("both trees fully grown", DEADLINE, || {
        let grown = (3000..=3004).all(|n| running(&socket, &format!("sleep {n}")) == 2);
        async move { grown }
    })
    .await;
    drop(control);
    let mut daemon = operation(daemon).await.expect("operation task");
    daemon.signal(Signal::SIGKILL);
    daemon.wait_exit(DEADLINE).await;
    wait_until(
        &format!("every process gone after kill -9 during {name}"),
        DEADLINE,
        || {
            let left: Vec<u32> = our_children().into_iter().filter(|&p| !reaped(p)).collect();
            async move { left.is_empty() }
        },
    )
    .await;
}

#[tokio::test]
async fn kill_9_during_a_rolling_restart_or_a_scale_up_leaves_nothing() {
    let _turn = ONE_AT_A_TIME.lock().await;
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    // Mid-rollout: the first replacement has been spawned.
    kill_daemon_during("a rolling restart", |daemon| {
        tokio::spawn(async move {
            let events = Recorder::new(&daemon).await;
            let control = daemon.control().await;
            tokio::spawn(async move {
                let _ = control.restart("web", false).await;
            });
            events
                .wait_for("a replacement spawned", |e| e.worker > 4 && e.pid != 0)
                .await;
            daemon
        })
    })
    .await;
    // Mid-scale-up: some of the new workers exist, not all are ok.
    kill_daemon_during("a scale-up", |daemon| {
        tokio::spawn(async move {
            let events = Recorder::new(&daemon).await;
            let control = daemon.control().await;
            tokio::spawn(async move {
                let _ = control.scale("web", 16).await;
            });
            events
                .wait_for("new workers spawned", |e| e.worker > 8 && e.pid != 0)
                .await;
            daemon
        })
    })
    .await;
}

/// A worker whose runtime is wedged (its message handler blocks the thread) still
/// dies within 2 seconds of `kill -9` of the daemon; and a send from a stop hook
/// that runs because the daemon is gone says `Closed`.
#[tokio::test]
async fn a_wedged_worker_dies_within_2_seconds_and_sends_after_loss_are_closed() {
    let _turn = ONE_AT_A_TIME.lock().await;
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");

    let mut daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let worker = example_bin("echo_worker");
    let worker = worker.to_string_lossy();
    let marker = daemon.dir.path().join("marker");
    let mut pids = Vec::new();
    for name in ["wedged", "polite"] {
        let mut echo = spec(ProgramKind::Child, &[&worker]);
        echo.start_grace_ms = Some(10_000);
        echo.env
            .insert("ECHO_STOP_MARKER".into(), marker.to_string_lossy().into());
        echo.env.insert("ECHO_SEND_IN_STOP".into(), "1".into());
        client
            .start(proto::StartRequest {
                name: name.into(),
                spec: Some(echo),
                wait: false,
            })
            .await
            .unwrap_or_else(|e| panic!("Start {name}: {e}"));
        pids.extend(ok_pids(&mut client, name).await);
    }
    client
        .send(proto::SendRequest {
            name: "wedged".into(),
            worker: None,
            payload: b"block 600000".to_vec(),
        })
        .await
        .expect("Send block");
    events
        .wait_for("the handler inside its block", |e| {
            is(e, EventKind::Message) && e.program == "wedged" && e.payload == b"blocking 600000"
        })
        .await;
    drop(client);

    daemon.signal(Signal::SIGKILL);
    daemon.wait_exit(DEADLINE).await;
    let killed = Instant::now();
    // Polled by hand rather than with `wait_until`, so that a worker that
    // outlives the daemon is killed (not left behind) before the test fails.
    while killed.elapsed() < Duration::from_secs(5) && !pids.iter().all(|&pid| reaped(pid)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = killed.elapsed();
    let left: Vec<u32> = pids.iter().copied().filter(|&pid| !reaped(pid)).collect();
    for &pid in &left {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    wait_until("the leftovers reaped", DEADLINE, || {
        let gone = left.iter().all(|&pid| reaped(pid));
        async move { gone }
    })
    .await;
    assert!(left.is_empty(), "workers {left:?} outlived the daemon");
    assert!(
        took <= Duration::from_secs(2),
        "every worker was gone {took:?} after the daemon died"
    );
    let sends: Vec<String> = std::fs::read_to_string(&marker)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Some(l.strip_prefix("send: ")?.to_string()))
        .collect();
    assert!(
        !sends.is_empty() && sends.iter().all(|s| s.contains("closed")),
        "a send after the daemon is lost fails as closed: {sends:?}"
    );
}
