//! Programs that link nothing: start, respawn with backoff, stop with SIGTERM then
//! SIGKILL to the whole process group, orphan reaping, clusters and scaling.

pub mod common;

use std::time::Duration;

use common::*;
use infant::proto::{self, EventKind, InstanceStatus, ProgramKind, ProgramStatus};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

fn kill(pid: u32, signal: Signal) {
    nix::sys::signal::kill(Pid::from_raw(pid as i32), signal).expect("kill");
}

#[tokio::test]
async fn a_plain_child_starts_respawns_with_backoff_and_stops() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;

    let mut s = spec(ProgramKind::Child, &["sleep", "1000"]);
    s.start_grace_ms = Some(50);
    let info = control
        .start("nap", Some(s), false)
        .await
        .expect("start nap");
    assert_eq!(info.status, ProgramStatus::Ok as i32);
    assert_eq!(info.running, 1);
    let first = control.ok_pids("nap").await;
    assert_eq!(first.len(), 1);
    assert_eq!(state(first[0]), Some('S'), "the worker runs");

    // A crash: respawned with a new pid.
    kill(first[0], Signal::SIGKILL);
    let r1 = events
        .wait_for("first respawn", |e| {
            is(e, EventKind::Respawn) && e.program == "nap"
        })
        .await;
    assert_ne!(r1.pid, first[0]);
    assert_eq!(r1.signal, Some(9), "respawn carries the previous exit");
    let exit = events
        .wait_for("exit event", |e| {
            is(e, EventKind::Exit) && e.pid == first[0]
        })
        .await;
    assert_eq!(exit.signal, Some(9));
    wait_until("back to ok", DEADLINE, || {
        let control = &control;
        async move { control.ok_pids("nap").await.len() == 1 }
    })
    .await;

    // A second quick crash waits longer than the first.
    kill(r1.pid, Signal::SIGKILL);
    let respawns = events
        .wait_for_n("second respawn", 2, |e| {
            is(e, EventKind::Respawn) && e.program == "nap"
        })
        .await;
    assert!(
        respawns[1].delay_ms > respawns[0].delay_ms,
        "backoff grows: {} then {}",
        respawns[0].delay_ms,
        respawns[1].delay_ms
    );
    let second = respawns[1].pid;
    assert!(!first.contains(&second));

    let info = control.stop("nap", None).await.expect("stop nap");
    assert_eq!(info.status, ProgramStatus::Ready as i32);
    wait_gone(&[first[0], r1.pid, second], DEADLINE).await;
    events
        .wait_for("stopped event", |e| {
            is(e, EventKind::Stopped) && e.program == "nap"
        })
        .await;
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn stop_kills_a_tree_that_ignores_sigterm_and_reaps_everything() {
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let marker = daemon.dir.path().join("grandchild");
    let orphan = daemon.dir.path().join("orphan");
    // The shell and its grandchild ignore SIGTERM; a second grandchild is orphaned
    // at once (its parent subshell exits) and exits by itself shortly after: the
    // daemon, as child subreaper, must reap it.
    let script = format!(
        "trap '' TERM; sleep 1000 & echo $! > {}; (sleep 0.3 & echo $! > {}); wait",
        marker.display(),
        orphan.display()
    );
    let mut s = spec(ProgramKind::Child, &["sh", "-c", &script]);
    s.stop_timeout_ms = Some(500);
    s.start_grace_ms = Some(50);
    control
        .start("tree", Some(s), false)
        .await
        .expect("start tree");
    let shell = control.ok_pids("tree").await[0];
    let read_pid = |path: std::path::PathBuf| async move {
        let mut pid = 0;
        wait_until("pid file", DEADLINE, || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            pid = text.trim().parse().unwrap_or(0);
            async move { pid != 0 }
        })
        .await;
        pid
    };
    let grandchild: u32 = read_pid(marker).await;
    let orphan: u32 = read_pid(orphan).await;
    assert!(
        group_members(shell).len() >= 2,
        "the tree shares the shell's group"
    );

    // The orphan exits on its own and must not stay a zombie.
    wait_gone(&[orphan], DEADLINE).await;

    let started = std::time::Instant::now();
    control.stop("tree", None).await.expect("stop tree");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "SIGTERM was ignored, so only the stop window's SIGKILL ended it"
    );
    wait_gone(&[shell, grandchild], DEADLINE).await;
    assert!(group_members(shell).is_empty());
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_cluster_lists_scales_and_respawns() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let mut s = spec(ProgramKind::Cluster, &["sleep", "1000"]);
    s.count = Some(4);
    s.start_grace_ms = Some(50);
    control
        .start("pool", Some(s), false)
        .await
        .expect("start pool");
    let listed = control.workers_of("pool").await;
    assert_eq!(listed.len(), 4);
    assert!(listed
        .iter()
        .all(|w| w.status == InstanceStatus::Ok as i32 && w.pid > 0));
    let all_pids: Vec<u32> = listed.iter().map(|w| w.pid).collect();

    let info = control.scale("pool", 2).await.expect("Scale to 2");
    assert_eq!(info.count, 2);
    let after_down = control.workers_of("pool").await;
    assert_eq!(after_down.len(), 2);
    let mut kept: Vec<u64> = after_down.iter().map(|w| w.id).collect();
    kept.sort_unstable();
    assert_eq!(kept, [1, 2], "the newest workers were the ones stopped");

    control.scale("pool", 6).await.expect("Scale to 6");
    let six = control.ok_pids("pool").await;
    assert_eq!(six.len(), 6);
    events
        .wait_for_n("two scale events", 2, |e| is(e, EventKind::Scale))
        .await;

    kill(six[3], Signal::SIGKILL);
    let respawn = events
        .wait_for("respawn of the killed worker", |e| {
            is(e, EventKind::Respawn)
        })
        .await;
    assert!(!six.contains(&respawn.pid));
    wait_until("six ok again", DEADLINE, || {
        let control = &control;
        async move { control.ok_pids("pool").await.len() == 6 }
    })
    .await;
    // A full restart keeps the size the cluster was scaled to.
    let restarted = control.restart("pool", true).await.expect("full restart");
    assert_eq!(restarted.count, 6);
    assert_eq!(restarted.running, 6);
    let everyone: Vec<u32> = all_pids
        .into_iter()
        .chain(six)
        .chain(control.ok_pids("pool").await)
        .collect();
    assert!(daemon.stop().await.success());
    wait_gone(&everyone, DEADLINE).await;
}

#[tokio::test]
async fn kill_sends_a_signal_without_stopping_the_program() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let mut s = spec(ProgramKind::Child, &["sleep", "1000"]);
    s.start_grace_ms = Some(50);
    control.start("k", Some(s), false).await.expect("start k");
    let pid = control.ok_pids("k").await[0];
    let signalled = control.kill("k", None, Some("term")).await.expect("kill k");
    assert_eq!(signalled, 1);
    let respawn = events
        .wait_for("respawn after kill", |e| is(e, EventKind::Respawn))
        .await;
    assert_eq!(respawn.signal, Some(15));
    assert_eq!(
        respawn.delay_ms, 0,
        "a kill is not a crash of the worker's own"
    );

    let bad = control
        .kill("k", None, Some("SIGNOPE"))
        .await
        .expect_err("bad signal");
    assert_eq!(bad.code(), Some(tonic::Code::InvalidArgument));
    assert!(bad.to_string().contains("signal"), "{bad}");
    assert!(daemon.stop().await.success());
    wait_gone(&[pid, respawn.pid], DEADLINE).await;
}

#[tokio::test]
async fn a_full_restart_stops_every_worker_before_starting_new_ones() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let mut s = spec(ProgramKind::Cluster, &["sleep", "1000"]);
    s.count = Some(3);
    s.start_grace_ms = Some(50);
    control.start("full", Some(s), false).await.expect("start");
    let old = control.ok_pids("full").await;
    assert_eq!(old.len(), 3);
    let restarted = control.restart("full", true).await.expect("full restart");
    assert_eq!(restarted.status, ProgramStatus::Ok as i32);
    assert_eq!(restarted.running, 3);
    let new = control.ok_pids("full").await;
    assert_eq!(new.len(), 3);
    assert!(
        new.iter().all(|p| !old.contains(p)),
        "every worker replaced: {old:?} → {new:?}"
    );
    wait_gone(&old, DEADLINE).await;
    events
        .assert_all_exited_before_any_started(&old, &new)
        .await;
    assert!(daemon.stop().await.success());
    wait_gone(&new, DEADLINE).await;
}

#[tokio::test]
async fn a_configured_listen_socket_serves_a_plain_cluster() {
    let plain = example_bin("plain_listen");
    let config = format!(
        r#"
[program.site]
kind = "cluster"
count = 2
command = ['{}']
listen = ["tcp://127.0.0.1:0"]
start_grace = "50ms"
"#,
        plain.display()
    );
    let daemon = Daemon::start_with(&["--config", "site.toml"], |dir| {
        std::fs::write(dir.join("site.toml"), config).expect("config");
    })
    .await;
    let control = daemon.control().await;
    control
        .wait_program("site", "site is ok", DEADLINE, |p| {
            p.status == ProgramStatus::Ok as i32
        })
        .await;
    let addr = control.listen_addr("site").await;
    assert!(
        addr.starts_with("tcp://127.0.0.1:") && !addr.ends_with(":0"),
        "port 0 is resolved: {addr}"
    );
    let pids = control.ok_pids("site").await;
    assert_eq!(pids.len(), 2);
    let body = http_get(&addr).await.expect("the plain cluster serves");
    assert!(
        pids.iter().any(|p| body == format!("plain {p}")),
        "a worker of the cluster answered: {body:?}, workers {pids:?}"
    );
    let (status, stdout, stderr) = daemon.ctl(&["status"]);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains(&addr), "`status` shows {addr}: {stdout}");
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn a_stop_during_a_full_restart_answers_both_calls() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    // Ignores SIGTERM, so the restart's stop phase lasts its whole window.
    let mut s = spec(
        ProgramKind::Child,
        &["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"],
    );
    s.start_grace_ms = Some(50);
    s.stop_timeout_ms = Some(1500);
    start_program(&mut client, "slow", s).await;
    let old = ok_pids(&mut client, "slow").await;

    let mut restarting = client.clone();
    let restart = tokio::spawn(async move {
        restarting
            .restart(proto::RestartRequest {
                name: "slow".into(),
                full: true,
            })
            .await
    });
    events
        .wait_for("the restart's stop phase", |e| {
            is(e, EventKind::Stopping) && e.program == "slow"
        })
        .await;
    let stopped = client
        .stop(proto::StopRequest {
            name: "slow".into(),
            timeout_ms: None,
        })
        .await
        .expect("Stop")
        .into_inner();
    assert_eq!(stopped.status, ProgramStatus::Ready as i32);

    // The stop won: the restart is over too, and says it did not complete.
    let restarted = tokio::time::timeout(DEADLINE, restart)
        .await
        .expect("the restart answers once the stop has taken over")
        .expect("restart task");
    let status = restarted.expect_err("a restart cut short by a stop is an error");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("stop"), "{}", status.message());
    assert!(
        ok_pids(&mut client, "slow").await.is_empty(),
        "nothing started again"
    );
    wait_gone(&old, DEADLINE).await;
    assert!(daemon.stop().await.success());
}
