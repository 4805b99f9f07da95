//! What the supervisor survives: a storm of SIGKILLs under load, long soaks of
//! start/stop and respawns, slow-request drains, and watchers that do not read.
//! Each is bounded in count and time so CI stays quick.

pub mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use infant::control::Control;
use infant::proto::{self, EventKind, ProgramKind, ProgramStatus};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Open fds, threads and RSS (KiB) of `pid`.
fn footprint(pid: i32) -> (usize, usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (fds, field("Threads:") as usize, field("VmRSS:"))
}

/// A small deterministic pseudo-random sequence (no dependency needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below.max(1)
    }
}

/// Runs `count` instances that exit at once with no hold-down until they were
/// respawned `restarts` times in all, then stops them: a fast source of events
/// and of process churn.
async fn crash_loop(control: &Control, name: &str, count: u32, restarts: u64) {
    let mut crash = spec(ProgramKind::Cluster, &["sh", "-c", "exit 1"]);
    crash.count = Some(count);
    crash.start_grace_ms = Some(0);
    crash.respawn_delay_ms = Some(0);
    // Start fails (the workers exit while starting); the respawns go on.
    let _ = control.start(name, Some(crash), false).await;
    control
        .wait_program(
            name,
            &format!("{restarts} respawns"),
            Duration::from_secs(120),
            |p| p.restarts >= restarts,
        )
        .await;
    control
        .stop(name, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_kill_storm_under_load_leaves_the_daemon_whole() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let mut s = http_cluster(8);
    s.respawn_delay_ms = Some(300);
    let info = control.start_spec("storm", s).await;
    let load = Load::start(&info.listen[0], 2, 1_000_000);
    // Warm up: every code path the storm uses has run once before we measure.
    let first = control.ok_pids("storm").await;
    nix::sys::signal::kill(Pid::from_raw(first[0] as i32), Signal::SIGKILL).expect("kill");
    wait_until("eight ok after the warm-up kill", DEADLINE, || {
        let control = &control;
        async move { control.ok_pids("storm").await.len() == 8 }
    })
    .await;
    let before = footprint(daemon.pid());

    let mut rng = Lcg(0x1f2e3d4c);
    let mut killed = BTreeSet::new();
    let storm = Instant::now();
    for _ in 0..200 {
        let pids = control.ok_pids("storm").await;
        if let Some(&victim) = pids.get(rng.next(pids.len())) {
            if nix::sys::signal::kill(Pid::from_raw(victim as i32), Signal::SIGKILL).is_ok() {
                killed.insert(victim);
            }
        }
        // Pacing, not waiting for a condition: the storm is spread over ~20 s.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let storm = storm.elapsed();
    wait_until(
        "the cluster is whole again",
        Duration::from_secs(60),
        || {
            let control = &control;
            async move { control.ok_pids("storm").await.len() == 8 }
        },
    )
    .await;
    let (ok, failed, _, _) = load.finish().await;
    println!("kill storm: {} kills in {storm:?}; load {ok} ok, {failed} failed (requests on killed workers)", killed.len());
    assert!(
        killed.len() >= 190,
        "the storm killed {} workers",
        killed.len()
    );
    assert!(ok > 0);
    // Every killed worker is gone, and reaped: no zombie.
    let killed: Vec<u32> = killed.into_iter().collect();
    wait_gone(&killed, DEADLINE).await;
    let respawns = events
        .all()
        .iter()
        .filter(|e| is(e, EventKind::Respawn))
        .count();
    assert!(
        respawns >= killed.len(),
        "{respawns} respawns for {} kills",
        killed.len()
    );

    // Back to its starting footprint: the same fds (±2 for connections in flight)
    // and RSS within 4 MiB (the allocator keeps some freed memory; a leak of
    // per-instance state over 200 respawns would exceed it).
    wait_until("fds back to their starting level", DEADLINE, || {
        let fds = footprint(daemon.pid()).0;
        async move { fds <= before.0 + 2 }
    })
    .await;
    let after = footprint(daemon.pid());
    assert!(
        after.2 <= before.2 + 4 * 1024,
        "RSS {} KiB → {} KiB",
        before.2,
        after.2
    );
    let pids = control.ok_pids("storm").await;
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn slow_requests_drain_on_stop_restart_and_recycle() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let mut s = http_cluster(2);
    s.enhanced = true;
    s.heartbeat_ms = Some(100);
    s.max_connections = Some(1_000);
    s.env.insert("HTTP_DELAY_MS".into(), "2000".into());
    let info = control.start_spec("slow", s).await;
    let addr = info.listen[0].clone();

    // Four slow requests in flight, then `op`; all four must complete. Counts
    // are compared per pid: a worker still draining from the previous step may
    // leave the list meanwhile, so a plain sum could fall back.
    async fn in_flight(
        control: &Control,
        addr: &str,
    ) -> Vec<tokio::task::JoinHandle<std::io::Result<String>>> {
        let before: std::collections::HashMap<u32, u64> = control
            .workers_of("slow")
            .await
            .iter()
            .map(|w| (w.pid, w.requests))
            .collect();
        let requests: Vec<_> = (0..4)
            .map(|_| {
                let addr = addr.to_string();
                tokio::spawn(async move { http_get(&addr).await })
            })
            .collect();
        wait_until("four requests in flight", DEADLINE, || {
            let control = &control;
            let before = before.clone();
            async move {
                control
                    .workers_of("slow")
                    .await
                    .iter()
                    .map(|w| {
                        w.requests
                            .saturating_sub(before.get(&w.pid).copied().unwrap_or(0))
                    })
                    .sum::<u64>()
                    >= 4
            }
        })
        .await;
        requests
    }
    async fn all_complete(
        requests: Vec<tokio::task::JoinHandle<std::io::Result<String>>>,
        during: &str,
    ) {
        for request in requests {
            let body = request
                .await
                .expect("task")
                .unwrap_or_else(|e| panic!("a request failed during {during}: {e}"));
            assert!(body.starts_with("pid "), "{body}");
        }
    }

    // A rolling restart.
    let requests = in_flight(&control, &addr).await;
    control
        .restart("slow", false)
        .await
        .expect("rolling restart");
    all_complete(requests, "a rolling restart").await;

    // A SIGHUP to every worker: each drains and is respawned (the recycle case
    // is `a_recycle_drains_slow_requests` below).
    let requests = in_flight(&control, &addr).await;
    let pid = control.ok_pids("slow").await[0];
    control
        .kill("slow", None, Some("HUP"))
        .await
        .expect("SIGHUP: graceful stop of each worker");
    all_complete(requests, "a SIGHUP").await;
    events
        .wait_for("respawn after SIGHUP", |e| is(e, EventKind::Respawn))
        .await;
    wait_gone(&[pid], DEADLINE).await;

    // A stop.
    wait_until("two ok", DEADLINE, || {
        let control = &control;
        async move { control.ok_pids("slow").await.len() == 2 }
    })
    .await;
    let requests = in_flight(&control, &addr).await;
    let stopped = control.stop("slow", None).await.expect("Stop");
    assert_eq!(stopped.status, ProgramStatus::Ready as i32);
    all_complete(requests, "a stop").await;
    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn a_recycle_drains_slow_requests() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let mut s = http_cluster(1);
    s.enhanced = true;
    s.max_connections = Some(3);
    s.env.insert("HTTP_DELAY_MS".into(), "2000".into());
    let info = control.start_spec("recycled", s).await;
    let old = control.ok_pids("recycled").await[0];
    // The third connection crosses the limit while all three are in flight.
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let addr = info.listen[0].clone();
            tokio::spawn(async move { http_get(&addr).await })
        })
        .collect();
    events
        .wait_for("recycle", |e| is(e, EventKind::Recycle) && e.pid == old)
        .await;
    for request in requests {
        let body = request
            .await
            .expect("task")
            .expect("no request fails during a recycle");
        assert_eq!(body, format!("pid {old}"));
    }
    wait_gone(&[old], DEADLINE).await;
    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn a_soak_of_start_stop_and_respawns_leaks_nothing() {
    let daemon = Daemon::start(&[]).await;
    let watcher = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let mut s = spec(ProgramKind::Child, &["sleep", "1000"]);
    s.start_grace_ms = Some(0);
    let cycle = |s: &proto::ProgramSpec| {
        let control = &control;
        let s = s.clone();
        async move {
            control.start("soak", Some(s), false).await.expect("Start");
            control.stop("soak", None).await.expect("Stop");
        }
    };
    for _ in 0..50 {
        cycle(&s).await;
    }
    let before = footprint(daemon.pid());
    for _ in 0..1000 {
        cycle(&s).await;
    }

    // 1,000 respawns of a program that exits at once, with no hold-down.
    crash_loop(&control, "crash", 1, 1000).await;
    let after = footprint(daemon.pid());
    println!(
        "soak: fds {} → {}, threads {} → {}, RSS {} → {} KiB",
        before.0, after.0, before.1, after.1, before.2, after.2
    );
    assert!(after.0 <= before.0 + 2, "fds {} → {}", before.0, after.0);
    assert!(
        after.1 <= before.1 + 1,
        "threads {} → {}",
        before.1,
        after.1
    );
    assert!(
        after.2 <= before.2 + 4 * 1024,
        "RSS {} → {} KiB",
        before.2,
        after.2
    );

    // A watcher that kept up saw every event, in order, with no gap.
    let seen = watcher.all();
    assert!(seen.len() > 5000, "{} events", seen.len());
    for pair in seen.windows(2) {
        assert_eq!(
            pair[1].seq,
            pair[0].seq + 1,
            "gap after seq {}",
            pair[0].seq
        );
    }
    assert!(seen.iter().all(|e| e.missed == 0));
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_watcher_that_never_reads_costs_nothing_and_learns_what_it_missed() {
    let daemon = Daemon::start(&[]).await;
    let mut watchers = Vec::new();
    for _ in 0..49 {
        watchers.push(Recorder::new(&daemon).await);
    }
    let control = daemon.control().await;
    // The stuck watcher has its own connection with small HTTP/2 windows, so the
    // transport stops taking events for it after ~64 KiB, as a real slow reader's
    // would.
    let socket = daemon.socket.clone();
    let narrow = tonic::transport::Endpoint::from_static("http://localhost")
        .initial_stream_window_size(Some(65_535))
        .initial_connection_window_size(Some(65_535))
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect");
    let mut slow = Control::from_channel(narrow)
        .events(None, false, true)
        .await
        .expect("watch events");
    // Crash loops make events fast: ~10,000 of them, more than a watcher may lag.
    crash_loop(&control, "noise", 4, 2000).await;
    let rss_kib = footprint(daemon.pid()).2;
    assert!(
        rss_kib < 64 * 1024,
        "daemon RSS {rss_kib} KiB with a stuck watcher"
    );

    // The watchers that kept up missed nothing.
    let last = watchers[0]
        .wait_for("the stop", |e| {
            is(e, EventKind::Stopped) && e.program == "noise"
        })
        .await;
    for watcher in &watchers {
        watcher.wait_for("the stop", |e| e.seq == last.seq).await;
        let seen = watcher.all();
        assert!(
            seen.windows(2).all(|p| p[1].seq == p[0].seq + 1),
            "a keeping-up watcher has gaps"
        );
        assert!(seen.iter().all(|e| e.missed == 0));
    }
    // The stuck one is told how many it lost, then gets the rest.
    let mut missed = 0;
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        let event = slow.message().await.expect("stream").expect("event");
        missed += event.missed;
        if event.seq >= last.seq {
            break;
        }
    }
    assert!(missed > 0, "the stuck watcher was told it missed events");
    println!("the stuck watcher missed {missed} events");
    assert!(daemon.stop().await.success());
}
