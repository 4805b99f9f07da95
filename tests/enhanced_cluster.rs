//! Enhanced clusters: daemon-owned sockets shared by every worker, counting and
//! recycling, hung workers, rolling restarts with zero failed requests.

mod common;

use std::collections::BTreeMap;

use common::*;
use infant::proto::{self, EventKind, ProgramKind, ProgramStatus};

/// An enhanced cluster of `count` http_workers.
fn enhanced(count: u32) -> proto::ProgramSpec {
    let mut s = http_cluster(count);
    s.enhanced = true;
    s
}

#[tokio::test]
async fn two_workers_share_one_port() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let info = start_program(&mut client, "web", enhanced(2)).await;
    assert_eq!(info.listen.len(), 1);
    assert!(
        info.listen[0].starts_with("tcp://127.0.0.1:"),
        "{:?}",
        info.listen
    );
    assert!(!info.listen[0].ends_with(":0"), "port 0 is resolved");
    let addr = info.listen[0].clone();
    let pids = ok_pids(&mut client, "web").await;

    let mut split: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..200 {
        let body = http_get(&addr).await.expect("request");
        *split.entry(body).or_default() += 1;
    }
    println!("request split across 2 workers: {split:?}");
    assert_eq!(split.len(), 2, "both workers served: {split:?}");
    for pid in &pids {
        assert!(
            split.contains_key(&format!("pid {pid}")),
            "{pid} served: {split:?}"
        );
    }
    let counted: u64 = workers(&mut client, "web")
        .await
        .iter()
        .map(|w| w.requests)
        .sum();
    // Heartbeats carry the counts; the last ones may not be reported yet.
    assert!(counted <= 200);
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn a_plain_socket_activated_program_serves_on_the_daemon_socket() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let plain = example_bin("plain_listen");
    let mut s = spec(ProgramKind::Cluster, &[plain.to_str().expect("utf-8")]);
    s.count = Some(2);
    s.listen = vec!["tcp://127.0.0.1:0".into()];
    s.start_grace_ms = Some(50);
    let info = start_program(&mut client, "plain", s).await;
    let body = http_get(&info.listen[0])
        .await
        .expect("plain program serves");
    assert!(body.starts_with("plain "), "{body}");
    let pids = ok_pids(&mut client, "plain").await;
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn no_daemon_fd_leaks_into_a_worker() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let unix = daemon.dir.path().join("fd.sock");
    let mut s = spec(ProgramKind::Child, &["sleep", "1000"]);
    s.listen = vec![
        "tcp://127.0.0.1:0".into(),
        format!("unix://{}", unix.display()),
    ];
    s.start_grace_ms = Some(50);
    start_program(&mut client, "fds", s).await;
    let pid = ok_pids(&mut client, "fds").await[0];
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    assert_eq!(
        fds,
        [0, 1, 2, 3, 4],
        "only stdio and the two listen sockets"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.contains(&format!("LISTEN_PID={pid}\0")),
        "LISTEN_PID is the worker's own pid"
    );
    assert!(environ.contains("LISTEN_FDS=2\0"));
    assert!(daemon.stop().await.success());
    assert!(!unix.exists(), "unix socket removed at stop");
    wait_gone(&[pid], DEADLINE).await;
}

#[tokio::test]
async fn the_eleventh_request_recycles_the_worker_without_a_failure() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let marker = daemon.dir.path().join("stops");
    let mut s = enhanced(1);
    s.max_connections = Some(10);
    s.env
        .insert("HTTP_STOP_MARKER".into(), marker.display().to_string());
    let info = start_program(&mut client, "rec", s).await;
    let old = ok_pids(&mut client, "rec").await[0];
    for i in 0..30 {
        http_get(&info.listen[0])
            .await
            .unwrap_or_else(|e| panic!("request {i} failed: {e}"));
    }
    let recycle = events
        .wait_for("recycle", |e| is(e, EventKind::Recycle))
        .await;
    assert_eq!(recycle.pid, old);
    assert!(recycle.connections >= 10, "{}", recycle.connections);
    wait_until("the old worker's stop hook ran", DEADLINE, || {
        let text = std::fs::read_to_string(&marker).unwrap_or_default();
        async move { text.contains(&format!("stopped {old} ")) && text.contains("Recycle") }
    })
    .await;
    let now = ok_pids(&mut client, "rec").await;
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], old);
    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn a_worker_that_grows_in_memory_is_recycled() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let mut s = enhanced(1);
    s.max_memory_gain = Some(50);
    s.heartbeat_ms = Some(100);
    s.env.insert("HTTP_LEAK_KB".into(), "4096".into());
    let info = start_program(&mut client, "fat", s).await;
    let old = ok_pids(&mut client, "fat").await[0];
    for _ in 0..4 {
        http_get(&info.listen[0]).await.expect("request");
    }
    let recycle = events
        .wait_for("memory recycle", |e| is(e, EventKind::Recycle))
        .await;
    assert_eq!(recycle.pid, old);
    assert!(recycle.reason.contains("memory"), "{}", recycle.reason);
    wait_gone(&[old], DEADLINE).await;
    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn rolling_restart_and_sighup_under_load_fail_no_request() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let info = start_program(&mut client, "roll", enhanced(4)).await;
    let before = ok_pids(&mut client, "roll").await;
    assert_eq!(before.len(), 4);

    // New connections and keep-alive ones: a worker that stops must neither refuse
    // the first nor drop a request racing its close of the second.
    let load = Load::start(&info.listen[0], 4, 5_000);
    let kept = Load::keep_alive(&info.listen[0], 4, 20_000);
    // Some traffic before, during and after.
    load.wait_answered(20).await;
    kept.wait_answered(20).await;
    let restarted = client
        .restart(proto::RestartRequest {
            name: "roll".into(),
            full: false,
        })
        .await
        .expect("rolling restart")
        .into_inner();
    assert_eq!(restarted.status, ProgramStatus::Ok as i32);
    let after = ok_pids(&mut client, "roll").await;
    assert_eq!(after.len(), 4);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "every worker replaced"
    );

    // SIGHUP = graceful stop of one worker; the daemon respawns it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(after[0] as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    events
        .wait_for("respawn after SIGHUP", |e| is(e, EventKind::Respawn))
        .await;
    wait_until("four ok again", DEADLINE, || {
        let mut c = client.clone();
        async move { ok_pids(&mut c, "roll").await.len() == 4 }
    })
    .await;
    let (ok, failed, errors, _) = load.finish().await;
    println!("rolling restart + SIGHUP under load: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "no failed or refused request: {errors:?}");
    assert!(ok > 50, "the load ran: {ok}");
    let (ok, failed, errors, _) = kept.finish().await;
    println!("the same on keep-alive connections: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "no failed keep-alive request: {errors:?}");
    assert!(ok > 50, "the keep-alive load ran: {ok}");
    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn a_failed_rollout_stops_and_keeps_the_old_workers() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let poison = daemon.dir.path().join("bad-deploy");
    let mut s = enhanced(2);
    s.env
        .insert("HTTP_FAIL_IF_EXISTS".into(), poison.display().to_string());
    let info = start_program(&mut client, "deploy", s).await;
    let before = ok_pids(&mut client, "deploy").await;
    std::fs::write(&poison, "x").expect("poison");
    let err = client
        .restart(proto::RestartRequest {
            name: "deploy".into(),
            full: false,
        })
        .await
        .expect_err("the rollout fails");
    assert!(
        err.message().contains("refusing to start"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("old workers keep serving"),
        "{}",
        err.message()
    );
    let still = ok_pids(&mut client, "deploy").await;
    assert_eq!(still, before, "the old workers are untouched");
    http_get(&info.listen[0]).await.expect("still serving");
    let pids = events.pids();
    std::fs::remove_file(&poison).expect("unpoison");
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn a_hung_worker_is_killed_and_respawned() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let mut s = enhanced(1);
    s.enhanced = false;
    s.heartbeat_ms = Some(100);
    start_program(&mut client, "hang", s).await;
    let old = ok_pids(&mut client, "hang").await[0];
    client
        .send(proto::SendRequest {
            name: "hang".into(),
            worker: None,
            payload: b"hang".to_vec(),
        })
        .await
        .expect("Send");
    let error = events
        .wait_for("hung worker detected", |e| {
            is(e, EventKind::Error) && e.reason.contains("hung")
        })
        .await;
    assert_eq!(error.pid, old);
    let respawn = events
        .wait_for("respawn", |e| is(e, EventKind::Respawn))
        .await;
    assert_ne!(respawn.pid, old);
    wait_gone(&[old], DEADLINE).await;
    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}
