//! Crashes and respawns: the backoff hold-down, its reset after a stable run,
//! its floor, `respawn = false`, `max_restarts`, and exits the daemon asked for.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::*;
use crate::daemon::engine::backoff::STABLE_RUN;
use crate::daemon::engine::state::ProgramStatus;

/// Crashes the running worker of `name` as soon as it is spawned, `n` times;
/// returns the hold-down before each respawn, in milliseconds.
async fn crash_loop(h: &Harness, name: &str, n: usize) -> Vec<u128> {
    let mut gaps = Vec::new();
    let mut pid = h.pids(name)[0];
    for _ in 0..n {
        h.crash(pid, 1);
        let crashed = tokio::time::Instant::now();
        let next = h.next_spawn().await;
        assert_eq!(next.program, name);
        gaps.push(ms(crashed, next.spawned_at));
        pid = next.pid;
    }
    gaps
}

#[tokio::test(start_paused = true)]
async fn crashes_in_a_row_back_off_doubling_from_100ms_up_to_respawn_delay() {
    let h = Harness::new();
    let d = ProgramDef {
        respawn_delay: Some(Duration::from_secs(1)),
        ..def(Kind::Child)
    };
    h.started("web", d).await;
    h.next_spawn().await;
    let gaps = crash_loop(&h, "web", 7).await;
    // The first crash respawns at once; then 100, 200, 400, 800 ms, capped at 1 s.
    let want = [0, 100, 200, 400, 800, 1000, 1000];
    for (gap, want) in gaps.iter().zip(want) {
        assert!(
            (want..=want + 2).contains(gap),
            "hold-downs {gaps:?}, wanted {want:?}"
        );
    }
    let info = h.info("web").await;
    assert_eq!(info.restarts, 7);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_stable_run_resets_the_backoff() {
    let h = Harness::new();
    h.started("web", def(Kind::Child)).await;
    h.next_spawn().await;
    let gaps = crash_loop(&h, "web", 3).await;
    assert!(gaps[2] >= 200, "{gaps:?}");
    // Up and `ok` for the stable run: the next crash counts as a first one.
    tokio::time::sleep(Duration::from_millis(110) + STABLE_RUN).await;
    assert_eq!(h.info("web").await.status, ProgramStatus::Ok);
    let gaps = crash_loop(&h, "web", 2).await;
    assert!(gaps[0] <= 2, "at once after a stable run: {gaps:?}");
    assert!((100..=102).contains(&gaps[1]), "{gaps:?}");
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_zero_respawn_delay_still_holds_crashes_in_a_row_10ms_apart() {
    let h = Harness::new();
    let d = ProgramDef {
        respawn_delay: Some(Duration::ZERO),
        ..def(Kind::Child)
    };
    h.started("web", d).await;
    h.next_spawn().await;
    let gaps = crash_loop(&h, "web", 50).await;
    assert!(gaps[0] <= 2, "a first crash respawns at once: {gaps:?}");
    assert!(
        gaps[1..].iter().all(|&gap| gap >= 10),
        "a crash loop is held to at most 100 respawns a second: {gaps:?}"
    );
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_signal_sent_through_kill_respawns_at_once() {
    let h = Harness::new();
    h.started("web", def(Kind::Child)).await;
    h.next_spawn().await;
    crash_loop(&h, "web", 3).await;
    // The streak would make the next hold-down 400 ms; a Kill is not a crash.
    h.engine
        .kill("web".into(), None, Signal::SIGKILL)
        .await
        .expect("kill");
    let killed = tokio::time::Instant::now();
    let next = h.next_spawn().await;
    assert!(ms(killed, next.spawned_at) <= 2);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn without_respawn_a_crash_leaves_the_program_in_error() {
    let h = Harness::new();
    let d = ProgramDef {
        respawn: Some(false),
        ..def(Kind::Child)
    };
    h.started("web", d).await;
    let first = h.next_spawn().await;
    h.crash(first.pid, 3);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(h.spawned_meanwhile().is_none(), "not respawned");
    let info = h.info("web").await;
    assert_eq!(info.status, ProgramStatus::Error);
    assert!(info.error.contains("exited with code 3"), "{}", info.error);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn max_restarts_gives_up_and_the_program_is_fatal() {
    let h = Harness::new();
    let d = ProgramDef {
        max_restarts: Some(3),
        ..def(Kind::Child)
    };
    h.started("web", d).await;
    h.next_spawn().await;
    crash_loop(&h, "web", 3).await;
    let last = h.pids("web")[0];
    h.crash(last, 1);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        h.spawned_meanwhile().is_none(),
        "the fourth crash is not respawned"
    );
    let info = h.info("web").await;
    assert_eq!(info.status, ProgramStatus::Fatal);
    assert!(info.error.contains("max_restarts = 3"), "{}", info.error);
    // A new start clears it.
    h.engine
        .start("web".into(), None, false)
        .await
        .expect("start again");
    assert_eq!(h.info("web").await.status, ProgramStatus::Ok);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn exits_the_daemon_asked_for_are_never_respawned() {
    let h = Harness::new();
    h.started("web", cluster(3)).await;
    for _ in 0..3 {
        h.next_spawn().await;
    }
    // Scaling down, then stopping: five master-initiated exits.
    h.engine.scale("web".into(), 1).await.expect("scale down");
    assert_eq!(h.pids("web").len(), 1);
    h.stop("web").await.expect("stop");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(h.spawned_meanwhile().is_none(), "nothing respawned");
    assert_eq!(h.info("web").await.restarts, 0);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_respawn_that_cannot_spawn_is_tried_again_with_backoff() {
    let h = Harness::new();
    h.started("web", def(Kind::Child)).await;
    let first = h.next_spawn().await;
    h.fake.unspawnable("web", true);
    h.crash(first.pid, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let info = h.info("web").await;
    assert_eq!(info.status, ProgramStatus::Error);
    assert!(info.error.contains("No such file"), "{}", info.error);
    let broken = tokio::time::Instant::now();
    h.fake.unspawnable("web", false);
    let next = h.next_spawn().await;
    assert!(ms(broken, next.spawned_at) <= 1600, "retried on its own");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.info("web").await.status, ProgramStatus::Ok);
    h.shut_down().await;
}
