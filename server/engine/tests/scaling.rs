//! `Scale`, rolling restarts and recycling: replacements come up first and the
//! workers they replace go only once they are `ok`, so capacity never drops.

use std::collections::HashSet;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::fake::Happened;
use super::*;
use crate::daemon::engine::state::ProgramStatus;
use crate::daemon::error::Error;

/// The fewest workers of the cluster that were running and not yet asked to
/// stop at any point after the first `from` happenings.
fn least_serving(h: &Harness, from: usize) -> usize {
    let log = h.fake.log();
    let mut serving: HashSet<Pid> = HashSet::new();
    let mut least = usize::MAX;
    for (i, happened) in log.iter().enumerate() {
        match happened {
            Happened::Spawned(pid) => {
                serving.insert(*pid);
            }
            Happened::Signalled(pid, Signal::SIGTERM | Signal::SIGKILL) | Happened::Ended(pid) => {
                serving.remove(pid);
            }
            Happened::Signalled(..) => {}
        }
        if i + 1 >= from {
            least = least.min(serving.len());
        }
    }
    least
}

#[tokio::test(start_paused = true)]
async fn scaling_up_answers_once_the_new_workers_are_ok_and_down_once_they_exited() {
    let h = Harness::new();
    h.started("web", cluster(2)).await;
    let asked = tokio::time::Instant::now();
    let info = h.engine.scale("web".into(), 4).await.expect("scale up");
    assert_eq!((info.count, info.running), (4, 4));
    assert_eq!(
        ms(asked, tokio::time::Instant::now()),
        100,
        "after the start grace"
    );
    let mut ids: Vec<u64> = h.fake.running("web").iter().map(|p| p.worker).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4]);

    h.fake.stubborn("web");
    let info = h.engine.scale("web".into(), 1).await.expect("scale down");
    assert_eq!((info.count, info.running), (1, 1));
    // The newest go, each after its stop window (SIGTERM is ignored).
    let left: Vec<u64> = h.fake.running("web").iter().map(|p| p.worker).collect();
    assert_eq!(left, [1]);
    assert_eq!(ms(asked, tokio::time::Instant::now()), 100 + 5000);
    tokio::time::sleep(Duration::from_secs(60)).await;
    while h.spawned_meanwhile().is_some() {}
    assert_eq!(h.fake.procs("web").len(), 4, "nothing respawned");
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn scale_refuses_what_it_cannot_do() {
    let h = Harness::new();
    h.started("one", def(Kind::Child)).await;
    assert!(matches!(
        h.engine.scale("one".into(), 2).await,
        Err(Error::Precondition { .. })
    ));
    h.started("web", cluster(1)).await;
    assert!(matches!(
        h.engine.scale("web".into(), 0).await,
        Err(Error::InvalidArgument { field: "count", .. })
    ));
    h.stop("web").await.expect("stop");
    assert!(matches!(
        h.engine.scale("web".into(), 2).await,
        Err(Error::Precondition { .. })
    ));
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_rolling_restart_replaces_one_worker_at_a_time_once_its_replacement_is_ok() {
    let h = Harness::new();
    h.started("web", cluster(3)).await;
    let old = h.pids("web");
    let from = h.fake.log().len();
    let info = h
        .engine
        .restart("web".into(), false)
        .await
        .expect("rolling restart");
    assert_eq!((info.status, info.running), (ProgramStatus::Ok, 3));
    let new = h.pids("web");
    assert_eq!(new.len(), 3);
    assert!(new.iter().all(|p| !old.contains(p)));
    assert!(least_serving(&h, from) >= 3, "capacity never dropped");
    // Each old worker was asked to stop when its replacement's start grace ended.
    for (old, new) in old.iter().zip(&new) {
        let term = h.fake.signals(*old)[0].at;
        assert_eq!(ms(h.fake.proc(*new).spawned_at, term), 100);
    }
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_replacement_that_fails_stops_the_rolling_restart_and_the_old_workers_stay() {
    let h = Harness::new();
    h.started("web", cluster(2)).await;
    let old = h.pids("web");
    while h.spawned_meanwhile().is_some() {}
    let restart = h.engine.restart("web".into(), false);
    let fail = async {
        let replacement = h.next_spawn().await;
        h.crash(replacement.pid, 1);
    };
    let (result, ()) = tokio::join!(restart, fail);
    match result {
        Err(Error::Precondition { reason, .. }) => {
            assert!(reason.contains("old workers keep serving"), "{reason}")
        }
        other => panic!("the rolling restart must fail: {other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(h.pids("web"), old, "the old workers serve on");
    assert!(old.iter().all(|&pid| h.fake.signals(pid).is_empty()));
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_worker_past_max_memory_gain_is_recycled_replacement_first() {
    let h = Harness::new();
    let d = ProgramDef {
        enhanced: Some(true),
        max_memory_gain: Some(50),
        heartbeat: Some(Duration::from_secs(1)),
        ..cluster(2)
    };
    h.started("web", d).await;
    let old = h.pids("web");
    let from = h.fake.log().len();
    // Worker 1 grows from 10 MiB to 16 MiB (+60 %): recycled at the next tick.
    h.fake.set_rss(old[0], 16 << 20);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = h.pids("web");
    assert_eq!(now.len(), 2);
    assert!(!now.contains(&old[0]), "worker 1 was recycled");
    assert!(now.contains(&old[1]), "worker 2 was not");
    let replacement = now.iter().find(|&&p| p != old[1]).copied().expect("new");
    let term = h.fake.signals(old[0])[0].clone();
    assert_eq!(term.signal, Signal::SIGTERM);
    assert_eq!(
        ms(h.fake.proc(replacement).spawned_at, term.at),
        100,
        "the old worker goes once the replacement is ok"
    );
    assert!(least_serving(&h, from) >= 2, "capacity never dropped");
    h.shut_down().await;
}
