//! Program fields that change the state machine: `start_timeout` (in every
//! `ready` mode), `stop_signal`, `restart = "on-failure"` with
//! `success_exit_codes`, and `max_memory`.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::*;
use crate::daemon::engine::state::ProgramStatus;
use crate::daemon::error::Error;
use crate::daemon::spec::{Ready, Restart};

#[tokio::test(start_paused = true)]
async fn an_instance_not_ok_within_start_timeout_is_killed_and_its_start_fails() {
    for ready in [Ready::Sdk, Ready::Notify, Ready::Auto] {
        let h = Harness::new();
        let d = ProgramDef {
            ready: Some(ready),
            // Longer than the timeout: in `auto` only the grace could make it ok.
            start_grace: Some(Duration::from_secs(60)),
            start_timeout: Some(Duration::from_secs(2)),
            ..def(Kind::Child)
        };
        let asked = tokio::time::Instant::now();
        match h.start("web", d).await {
            Err(Error::StartFailed { reason, .. }) => {
                assert!(reason.contains("start_timeout"), "{ready:?}: {reason}")
            }
            other => panic!("{ready:?}: the start must fail: {other:?}"),
        }
        assert_eq!(ms(asked, tokio::time::Instant::now()), 2000, "{ready:?}");
        let first = h.fake.procs("web")[0].clone();
        let sent: Vec<Signal> = h.fake.signals(first.pid).iter().map(|s| s.signal).collect();
        assert_eq!(sent.first(), Some(&Signal::SIGKILL), "{ready:?}: {sent:?}");
        // A failed start, respawned with backoff like any other.
        let next = h.next_spawn().await;
        assert_eq!(next.worker, first.worker);
        h.shut_down().await;
    }
}

/// In `auto`, an SDK worker that attached within its start grace waits for
/// its `Ready` past the grace, and its `start_timeout` (set only then, when
/// the grace is shorter) still ends the wait, counted from the spawn.
#[tokio::test(start_paused = true)]
async fn an_attached_worker_not_ready_past_its_grace_meets_its_start_timeout() {
    let h = Harness::new();
    let d = ProgramDef {
        ready: Some(Ready::Auto),
        start_grace: Some(Duration::from_secs(1)),
        start_timeout: Some(Duration::from_secs(5)),
        ..def(Kind::Child)
    };
    let engine = h.engine.clone();
    let start = tokio::spawn(async move { engine.start("web".into(), Some(d), false).await });
    let proc = h.next_spawn().await;
    let (link, _inbox) = crate::daemon::engine::worker_msg::WorkerLink::new(8);
    let hello = crate::daemon::engine::worker_msg::Hello {
        id: proc.worker,
        token: proc.token.clone(),
        pid: proc.pid.as_raw() as u32,
    };
    h.engine
        .attach(hello, Some(proc.pid.as_raw()), link)
        .await
        .expect("attach");
    match start.await.expect("the start task") {
        Err(Error::StartFailed { reason, .. }) => {
            assert!(reason.contains("start_timeout"), "{reason}")
        }
        other => panic!("the start must fail: {other:?}"),
    }
    assert_eq!(ms(proc.spawned_at, tokio::time::Instant::now()), 5000);
    let sent: Vec<Signal> = h.fake.signals(proc.pid).iter().map(|s| s.signal).collect();
    assert_eq!(sent.first(), Some(&Signal::SIGKILL), "{sent:?}");
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn start_timeout_zero_means_no_limit() {
    let h = Harness::new();
    let d = ProgramDef {
        ready: Some(Ready::Sdk),
        start_timeout: Some(Duration::ZERO),
        ..def(Kind::Child)
    };
    let start = h.start("web", d);
    assert!(
        tokio::time::timeout(Duration::from_secs(600), start)
            .await
            .is_err(),
        "nothing ends a start that never becomes ok"
    );
    let pid = h.pids("web")[0];
    assert!(h.fake.signals(pid).is_empty());
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_plain_program_stops_with_its_stop_signal() {
    let h = Harness::new();
    let d = ProgramDef {
        stop_signal: Some("int".into()),
        stop_timeout: Some(Duration::from_secs(3)),
        ..def(Kind::Child)
    };
    h.started("web", d).await;
    let pid = h.pids("web")[0];
    let stopped = tokio::time::Instant::now();
    h.stop("web").await.expect("stop");
    let sent: Vec<Signal> = h.fake.signals(pid).iter().map(|s| s.signal).collect();
    // The fake ignores SIGINT, so the window ends in SIGKILL.
    assert_eq!(sent, [Signal::SIGINT, Signal::SIGKILL]);
    assert_eq!(ms(stopped, tokio::time::Instant::now()), 3000);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn on_failure_restarts_only_exits_that_are_not_successes() {
    let h = Harness::new();
    let d = ProgramDef {
        restart: Some(Restart::OnFailure),
        success_exit_codes: Some(vec![0, 3]),
        ..cluster(2)
    };
    h.started("web", d).await;
    while h.spawned_meanwhile().is_some() {}
    let pids = h.pids("web");
    h.crash(pids[0], 4);
    let again = h.next_spawn().await;
    assert_eq!(again.worker, 1, "exit 4 is a failure: respawned");
    h.crash(pids[1], 3);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        h.spawned_meanwhile().is_none(),
        "exit 3 is a success: not respawned"
    );
    assert_eq!(h.pids("web"), [again.pid]);
    let info = h.info("web").await;
    assert_eq!(
        info.status,
        ProgramStatus::Ok,
        "what is left is the program"
    );
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn respawn_and_restart_together_are_refused() {
    let h = Harness::new();
    let d = ProgramDef {
        restart: Some(Restart::Never),
        respawn: Some(true),
        ..def(Kind::Child)
    };
    match h.start("web", d).await {
        Err(e @ Error::InvalidField { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("`respawn`") && text.contains("`restart`"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_exit_in_success_exit_codes_completes_it() {
    let h = Harness::new();
    let d = ProgramDef {
        success_exit_codes: Some(vec![0, 75]),
        ..def(Kind::Once)
    };
    h.started("job", d).await;
    let pid = h.pids("job")[0];
    h.crash(pid, 75);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let info = h.info("job").await;
    assert_eq!(info.error, "", "exit 75 is a success");
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn an_instance_past_max_memory_is_stopped_and_started_again() {
    let h = Harness::new();
    let d = ProgramDef {
        max_memory: Some(64 << 20),
        heartbeat: Some(Duration::from_secs(1)),
        restart: Some(Restart::Never),
        ..def(Kind::Child)
    };
    h.started("web", d).await;
    while h.spawned_meanwhile().is_some() {}
    let pid = h.pids("web")[0];
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(h.fake.signals(pid).is_empty(), "10 MiB is under the limit");
    h.fake.set_rss(pid, 65 << 20);
    let next = h.next_spawn().await;
    let sent: Vec<Signal> = h.fake.signals(pid).iter().map(|s| s.signal).collect();
    assert_eq!(
        sent.first(),
        Some(&Signal::SIGTERM),
        "a graceful stop: {sent:?}"
    );
    assert_eq!(next.worker, 1, "the same slot, even with restart = never");
    let info = h.info("web").await;
    assert_eq!(info.error, "", "a planned restart is no error");
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn an_enhanced_worker_past_max_memory_is_recycled_replacement_first() {
    let h = Harness::new();
    let d = ProgramDef {
        enhanced: Some(true),
        max_memory: Some(64 << 20),
        heartbeat: Some(Duration::from_secs(1)),
        ..cluster(2)
    };
    h.started("web", d).await;
    while h.spawned_meanwhile().is_some() {}
    let old = h.pids("web");
    h.fake.set_rss(old[0], 65 << 20);
    let replacement = h.next_spawn().await;
    assert!(
        h.fake.signals(old[0]).is_empty(),
        "the old worker serves until its replacement is ok"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let term = h.fake.signals(old[0])[0].clone();
    assert_eq!(term.signal, Signal::SIGTERM);
    assert_eq!(ms(replacement.spawned_at, term.at), 100);
    h.shut_down().await;
}

/// A `ready = "notify"` cluster of `count` whose workers are `ok` only when the
/// test says `READY=1` for them, with a 5 s `start_timeout`.
fn notify_cluster(count: u32) -> ProgramDef {
    ProgramDef {
        ready: Some(Ready::Notify),
        start_timeout: Some(Duration::from_secs(5)),
        ..cluster(count)
    }
}

/// Says `READY=1` for every running worker of `program` spawned so far.
async fn ready_all(h: &Harness, program: &str) {
    for pid in h.pids(program) {
        h.engine
            .tell(crate::daemon::engine::Command::Notify {
                pid: pid.as_raw(),
                text: "READY=1".into(),
            })
            .await
            .expect("notify");
    }
}

/// Starts a notify cluster of `count` and makes every worker ready.
async fn notify_started(h: &Harness, count: u32) {
    let engine = h.engine.clone();
    let start = tokio::spawn(async move {
        engine
            .start("web".into(), Some(notify_cluster(count)), false)
            .await
    });
    while h.pids("web").len() < count as usize {
        h.next_spawn().await;
    }
    ready_all(h, "web").await;
    start.await.expect("join").expect("start web");
}

#[tokio::test(start_paused = true)]
async fn a_rolling_restart_meeting_a_start_timeout_stops_and_nothing_stays_blocked() {
    let h = Harness::new();
    notify_started(&h, 2).await;
    let old = h.pids("web");
    let asked = tokio::time::Instant::now();
    // The replacement never says READY=1.
    match h.engine.restart("web".into(), false).await {
        Err(Error::Precondition { reason, .. }) => {
            assert!(reason.contains("old workers keep serving"), "{reason}");
            assert!(reason.contains("start_timeout"), "{reason}");
        }
        other => panic!("the rolling restart must fail: {other:?}"),
    }
    assert_eq!(ms(asked, tokio::time::Instant::now()), 5000);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        h.pids("web"),
        old,
        "the old workers serve on, the replacement is gone"
    );
    assert!(old.iter().all(|&pid| h.fake.signals(pid).is_empty()));

    // Nothing is left blocked: the next scale and restart go through.
    while h.spawned_meanwhile().is_some() {}
    let engine = h.engine.clone();
    let scale = tokio::spawn(async move { engine.scale("web".into(), 3).await });
    h.next_spawn().await;
    ready_all(&h, "web").await;
    scale
        .await
        .expect("join")
        .expect("scale after the failed restart");
    let engine = h.engine.clone();
    let restart = tokio::spawn(async move { engine.restart("web".into(), false).await });
    for _ in 0..3 {
        h.next_spawn().await;
        ready_all(&h, "web").await;
    }
    restart
        .await
        .expect("join")
        .expect("a later rolling restart");
    assert!(h.pids("web").iter().all(|pid| !old.contains(pid)));
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_scale_up_meeting_a_start_timeout_returns_the_error() {
    let h = Harness::new();
    notify_started(&h, 1).await;
    match h.engine.scale("web".into(), 2).await {
        Err(Error::StartFailed { reason, .. }) => {
            assert!(reason.contains("start_timeout"), "{reason}")
        }
        other => panic!("the scale must fail: {other:?}"),
    }
    h.shut_down().await;
}
