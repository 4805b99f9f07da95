//! Enhanced clusters: daemon-owned sockets shared by every worker, counting and
//! recycling, hung workers, rolling restarts with zero failed requests.

pub mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use infant::control::Control;
use infant::proto::{self, EventKind, InstanceStatus, ProgramKind, ProgramStatus};

/// An enhanced cluster of `count` http_workers.
fn enhanced(count: u32) -> proto::ProgramSpec {
    let mut s = http_cluster(count);
    s.enhanced = true;
    s
}

#[tokio::test]
async fn two_workers_share_one_port() {
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let info = control.start_spec("web", enhanced(2)).await;
    assert_eq!(info.listen.len(), 1);
    assert!(
        info.listen[0].starts_with("tcp://127.0.0.1:"),
        "{:?}",
        info.listen
    );
    assert!(!info.listen[0].ends_with(":0"), "port 0 is resolved");
    let addr = info.listen[0].clone();
    let pids = control.ok_pids("web").await;

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
    let counted: u64 = control
        .workers_of("web")
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
    let control = daemon.control().await;
    let plain = example_bin("plain_listen");
    let mut s = spec(ProgramKind::Cluster, &[plain.to_str().expect("utf-8")]);
    s.count = Some(2);
    s.listen = vec!["tcp://127.0.0.1:0".into()];
    s.start_grace_ms = Some(50);
    let info = control.start_spec("plain", s).await;
    let body = http_get(&info.listen[0])
        .await
        .expect("plain program serves");
    assert!(body.starts_with("plain "), "{body}");
    let pids = control.ok_pids("plain").await;
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn no_daemon_fd_leaks_into_a_worker() {
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let unix = daemon.dir.path().join("fd.sock");
    let mut s = spec(ProgramKind::Child, &["sleep", "1000"]);
    s.listen = vec![
        "tcp://127.0.0.1:0".into(),
        format!("unix://{}", unix.display()),
    ];
    s.start_grace_ms = Some(50);
    control.start_spec("fds", s).await;
    let pid = control.ok_pids("fds").await[0];
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
    // One name per socket, `:`-separated, as systemd passes them.
    assert!(
        environ.contains("LISTEN_FDNAMES=fds:fds\0"),
        "LISTEN_FDNAMES names both sockets: {:?}",
        environ
            .split('\0')
            .filter(|v| v.starts_with("LISTEN_"))
            .collect::<Vec<_>>()
    );
    assert!(daemon.stop().await.success());
    assert!(!unix.exists(), "unix socket removed at stop");
    wait_gone(&[pid], DEADLINE).await;
}

#[tokio::test]
async fn the_tenth_request_recycles_the_worker_and_no_request_fails() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let marker = daemon.dir.path().join("stops");
    let mut s = enhanced(1);
    s.max_connections = Some(10);
    s.env
        .insert("HTTP_STOP_MARKER".into(), marker.display().to_string());
    let info = control.start_spec("rec", s).await;
    let old = control.ok_pids("rec").await[0];
    // A worker is recycled when it reaches max_connections (Node infant's
    // "achieves"): the 10th connection, reported at once, not at a heartbeat.
    for i in 1..=10 {
        http_get(&info.listen[0])
            .await
            .unwrap_or_else(|e| panic!("request {i} failed: {e}"));
    }
    let recycle = events
        .wait_for("recycle", |e| is(e, EventKind::Recycle))
        .await;
    assert_eq!(recycle.pid, old);
    assert_eq!(recycle.connections, 10, "recycled on reaching the limit");
    // The 11th request on is served, by the old worker until its replacement is
    // ok, then by the replacement.
    for i in 11..=30 {
        http_get(&info.listen[0])
            .await
            .unwrap_or_else(|e| panic!("request {i} failed: {e}"));
    }
    wait_until("the old worker's stop hook ran", DEADLINE, || {
        let text = std::fs::read_to_string(&marker).unwrap_or_default();
        async move { text.contains(&format!("stopped {old} ")) && text.contains("Recycle") }
    })
    .await;
    let now = control.ok_pids("rec").await;
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
    let control = daemon.control().await;
    let mut s = enhanced(1);
    s.max_memory_gain = Some(50);
    s.heartbeat_ms = Some(100);
    s.env.insert("HTTP_LEAK_KB".into(), "4096".into());
    let info = control.start_spec("fat", s).await;
    let old = control.ok_pids("fat").await[0];
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
    let control = daemon.control().await;
    let info = control.start_spec("roll", enhanced(4)).await;
    let before = control.ok_pids("roll").await;
    assert_eq!(before.len(), 4);

    // New connections and keep-alive ones: a worker that stops must neither refuse
    // the first nor drop a request racing its close of the second.
    let load = Load::start(&info.listen[0], 4, 5_000);
    let kept = Load::keep_alive(&info.listen[0], 4, 20_000);
    // Some traffic before, during and after.
    load.wait_answered(20).await;
    kept.wait_answered(20).await;
    let restarted = control
        .restart("roll", false)
        .await
        .expect("rolling restart");
    assert_eq!(restarted.status, ProgramStatus::Ok as i32);
    let after = control.ok_pids("roll").await;
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
        let control = &control;
        async move { control.ok_pids("roll").await.len() == 4 }
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
    let control = daemon.control().await;
    let poison = daemon.dir.path().join("bad-deploy");
    let mut s = enhanced(2);
    s.env
        .insert("HTTP_FAIL_IF_EXISTS".into(), poison.display().to_string());
    let info = control.start_spec("deploy", s).await;
    let before = control.ok_pids("deploy").await;
    std::fs::write(&poison, "x").expect("poison");
    let err = control
        .restart("deploy", false)
        .await
        .expect_err("the rollout fails")
        .to_string();
    assert!(err.contains("refusing to start"), "{err}");
    assert!(err.contains("old workers keep serving"), "{err}");
    let still = control.ok_pids("deploy").await;
    assert_eq!(still, before, "the old workers are untouched");
    http_get(&info.listen[0]).await.expect("still serving");
    let pids = events.pids();
    std::fs::remove_file(&poison).expect("unpoison");
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn a_hung_worker_is_killed_and_respawned() {
    const HEARTBEAT_MS: i64 = 250;
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let mut s = enhanced(1);
    s.enhanced = false;
    s.heartbeat_ms = Some(HEARTBEAT_MS);
    control.start_spec("hang", s).await;
    let old = control.ok_pids("hang").await[0];
    control.send("hang", None, "hang").await.expect("send hang");
    let error = events
        .wait_for("hung worker detected", |e| {
            is(e, EventKind::Error) && e.reason.contains("hung")
        })
        .await;
    assert_eq!(error.pid, old);
    // Caught once silent for 8 intervals, not at the tick after (up to 9): the
    // daemon checks at the moment the limit passes. One interval of slack is
    // for a busy machine.
    let silent_ms: i64 = error
        .reason
        .split("no heartbeat for ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("the reason gives the silence: {:?}", error.reason));
    assert!(
        (8 * HEARTBEAT_MS..9 * HEARTBEAT_MS).contains(&silent_ms),
        "killed after {silent_ms} ms of silence, heartbeat {HEARTBEAT_MS} ms"
    );
    let respawn = events
        .wait_for("respawn", |e| is(e, EventKind::Respawn))
        .await;
    assert_ne!(respawn.pid, old);
    wait_gone(&[old], DEADLINE).await;
    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn port_0_is_reported_and_the_sockets_close_when_the_program_stops() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let unix = daemon.dir.path().join("x.sock");
    let unix_url = format!("unix://{}", unix.display());
    let mut s = enhanced(2);
    s.listen.push(unix_url.clone());
    let info = control.start_spec("sock", s).await;
    assert_eq!(info.listen.len(), 2, "{:?}", info.listen);
    let tcp = info.listen[0].clone();
    assert!(
        tcp.starts_with("tcp://127.0.0.1:") && !tcp.ends_with(":0"),
        "port 0 is resolved: {tcp}"
    );
    assert_eq!(info.listen[1], unix_url);

    // The bound addresses in `List` and in an event.
    assert_eq!(control.listen_addr("sock").await, tcp);
    assert_eq!(control.program("sock").await.listen, info.listen);
    let listening = events
        .wait_for("the listening event", |e| {
            e.program == "sock" && e.reason.starts_with("listening on")
        })
        .await;
    assert!(
        is(&listening, EventKind::Status),
        "{}",
        describe(&listening)
    );
    assert_eq!(listening.program_status, ProgramStatus::Starting as i32);
    assert_eq!(listening.reason, format!("listening on {tcp}, {unix_url}"));

    http_get(&tcp)
        .await
        .expect("serves on the reported address");
    drop(std::os::unix::net::UnixStream::connect(&unix).expect("the unix socket listens"));
    let pids = control.ok_pids("sock").await;

    // Stopping the program (not the daemon) closes both: Stop answers once the
    // program is idle, and it holds no socket then.
    let stopped = control.stop("sock", None).await.expect("Stop");
    assert_eq!(stopped.status, ProgramStatus::Ready as i32);
    assert!(stopped.listen.is_empty(), "{:?}", stopped.listen);
    wait_gone(&pids, DEADLINE).await;
    match tokio::net::TcpStream::connect(tcp.trim_start_matches("tcp://")).await {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        other => panic!("{tcp} is closed once the program stopped, got {other:?}"),
    }
    assert!(!unix.exists(), "the unix socket file is removed at a stop");

    // The daemon runs on; starting the program again binds afresh.
    let again = control
        .start("sock", None, false)
        .await
        .expect("Start again");
    assert_eq!(again.listen.len(), 2, "{:?}", again.listen);
    assert!(unix.exists(), "the unix socket is bound again");
    http_get(&again.listen[0]).await.expect("serves again");
    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn crossing_max_connections_is_reported_at_once_not_at_the_next_heartbeat() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let mut s = enhanced(1);
    s.max_connections = Some(10);
    // No heartbeat and no health check tick within the test: only the SDK's
    // report at the crossing can trigger the recycle.
    s.heartbeat_ms = Some(60_000);
    let info = control.start_spec("eager", s).await;
    let old = control.ok_pids("eager").await[0];
    for i in 0..10 {
        http_get(&info.listen[0])
            .await
            .unwrap_or_else(|e| panic!("request {i} failed: {e}"));
    }
    let recycle = events
        .wait_for_within(
            "the recycle, long before the next 60 s heartbeat",
            Duration::from_secs(10),
            |e| is(e, EventKind::Recycle),
        )
        .await;
    assert_eq!(recycle.pid, old);
    assert!(recycle.connections >= 10, "{}", recycle.connections);
    wait_until("the replacement serves alone", DEADLINE, || {
        let control = &control;
        async move {
            let pids = control.ok_pids("eager").await;
            pids.len() == 1 && pids[0] != old
        }
    })
    .await;
    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

/// Requests after which the workers of [`slow_replacements`] are recycled.
const LIMIT: u64 = 5;

/// An enhanced cluster of `count` http_workers recycled every [`LIMIT`]
/// requests whose workers, while `slow` exists, wait 2 s before they exec: a
/// replacement stays `starting` long enough for other workers to pass the limit
/// meanwhile.
fn slow_replacements(count: u32, slow: &Path) -> proto::ProgramSpec {
    let mut s = enhanced(count);
    let worker = s.command[0].clone();
    s.command = vec![
        "sh".into(),
        "-c".into(),
        r#"if [ -e "$SLOW_START" ]; then sleep 2; fi; exec "$0""#.into(),
        worker,
    ];
    s.env
        .insert("SLOW_START".into(), slow.display().to_string());
    s.max_connections = Some(LIMIT);
    // Counts fresh in `EachWorker`; hung only after 4 s of silence.
    s.heartbeat_ms = Some(500);
    // The first workers wait for their `Ready` even if the shell is slow.
    s.start_grace_ms = Some(10_000);
    s
}

/// The most recycles of `program` in flight at once, from its events: one is in
/// flight from its `recycle` event until the old worker is told to stop (its
/// replacement is `ok`) or exits.
fn most_recycles_in_flight(events: &[proto::Event], program: &str) -> usize {
    let mut in_flight = BTreeSet::new();
    let mut most = 0;
    for e in events.iter().filter(|e| e.program == program) {
        if is(e, EventKind::Recycle) {
            in_flight.insert(e.worker);
            most = most.max(in_flight.len());
        } else if is(e, EventKind::Exit)
            || (is(e, EventKind::Status) && e.instance_status == InstanceStatus::Stopping as i32)
        {
            in_flight.remove(&e.worker);
        }
    }
    most
}

/// How many `ok` workers of `program` have served past [`LIMIT`]: due for
/// recycling, or being recycled.
async fn due(control: &Control, program: &str) -> usize {
    control
        .workers_of(program)
        .await
        .iter()
        .filter(|w| w.status == InstanceStatus::Ok as i32 && w.connections.max(w.requests) >= LIMIT)
        .count()
}

/// Under load until `enough` holds of (most due at once, events); then the load
/// stops, replacements are quick again, and the test waits until the cluster is
/// whole with no worker due. Returns the events.
async fn recycle_under_load(
    daemon: &Daemon,
    events: &Recorder,
    program: &str,
    slow: &Path,
    enough: impl Fn(usize, &[proto::Event]) -> bool,
) -> Vec<proto::Event> {
    let control = daemon.control().await;
    let addr = control.listen_addr(program).await;
    std::fs::write(slow, "").expect("slow marker");
    let load = Load::start(&addr, 2, 1_000_000);
    let most_due = Arc::new(AtomicUsize::new(0));
    let enough = &enough;
    wait_until(
        "workers past the limit together, and recycles",
        Duration::from_secs(120),
        || {
            let (control, most_due) = (&control, Arc::clone(&most_due));
            let events = events.all();
            async move {
                let now = due(control, program).await;
                let most = most_due.fetch_max(now, Ordering::Relaxed).max(now);
                enough(most, &events)
            }
        },
    )
    .await;
    let (ok, failed, errors, _) = load.finish().await;
    println!(
        "{program}: {ok} requests answered, {failed} failed, at most {} workers due at once",
        most_due.load(Ordering::Relaxed)
    );
    if failed > 0 {
        println!("first failures: {:?}", &errors[..errors.len().min(5)]);
    }
    std::fs::remove_file(slow).expect("remove the slow marker");
    wait_until(
        "the cluster whole again, no worker due",
        Duration::from_secs(60),
        || {
            let control = &control;
            async move {
                let all = control.workers_of(program).await;
                all.len() == 3
                    && all.iter().all(|w| {
                        w.status == InstanceStatus::Ok as i32
                            && w.connections.max(w.requests) < LIMIT
                    })
            }
        },
    )
    .await;
    let seen = events.all();
    assert!(
        seen.iter().all(|e| e.missed == 0),
        "the recorder missed events: the in-flight count would be unsound"
    );
    seen
}

#[tokio::test]
async fn one_recycle_at_a_time_by_default() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let slow = daemon.dir.path().join("slow");
    control.start_spec("one", slow_replacements(3, &slow)).await;
    // Two workers past the limit at once while three recycles went by: the
    // second had to wait for the first.
    let seen = recycle_under_load(&daemon, &events, "one", &slow, |most_due, events| {
        let recycles = events.iter().filter(|e| is(e, EventKind::Recycle)).count();
        most_due >= 2 && recycles >= 3
    })
    .await;
    let most = most_recycles_in_flight(&seen, "one");
    assert_eq!(
        most,
        1,
        "max_recycling 1: recycles one after the other\n{}",
        seen.iter().map(describe).collect::<Vec<_>>().join("\n")
    );
    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn max_recycling_two_recycles_two_at_a_time() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let slow = daemon.dir.path().join("slow");
    let mut s = slow_replacements(3, &slow);
    s.max_recycling = Some(2);
    control.start_spec("two", s).await;
    let seen = recycle_under_load(&daemon, &events, "two", &slow, |_, events| {
        most_recycles_in_flight(events, "two") >= 2
    })
    .await;
    let most = most_recycles_in_flight(&seen, "two");
    assert_eq!(
        most,
        2,
        "max_recycling 2: two in flight, never three\n{}",
        seen.iter().map(describe).collect::<Vec<_>>().join("\n")
    );
    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}
