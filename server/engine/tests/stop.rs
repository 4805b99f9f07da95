//! Stops and full restarts: SIGTERM, then SIGKILL once the window is over;
//! every old worker gone before a new one starts.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::*;
use crate::daemon::engine::state::ProgramStatus;

#[tokio::test(start_paused = true)]
async fn a_stop_sends_sigterm_and_sigkill_once_the_window_is_over() {
    let h = Harness::new();
    h.fake.stubborn("web");
    let d = ProgramDef {
        stop_timeout: Some(Duration::from_secs(2)),
        ..def(Kind::Child)
    };
    h.started("web", d).await;
    let proc = h.next_spawn().await;
    let asked = tokio::time::Instant::now();
    let info = h.stop("web").await.expect("stop");
    assert_eq!(info.status, ProgramStatus::Ready);
    let sent = h.fake.signals(proc.pid);
    let signals: Vec<Signal> = sent.iter().map(|s| s.signal).collect();
    assert_eq!(signals, [Signal::SIGTERM, Signal::SIGKILL]);
    assert_eq!(ms(asked, sent[0].at), 0);
    assert_eq!(ms(asked, sent[1].at), 2000, "SIGKILL when the window ends");
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_program_that_stops_on_sigterm_is_never_sigkilled() {
    let h = Harness::new();
    h.started("web", cluster(2)).await;
    let a = h.next_spawn().await;
    let b = h.next_spawn().await;
    h.stop("web").await.expect("stop");
    for proc in [a, b] {
        let signals: Vec<Signal> = h.fake.signals(proc.pid).iter().map(|s| s.signal).collect();
        assert_eq!(signals, [Signal::SIGTERM]);
    }
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_stop_timeout_override_shortens_the_window() {
    let h = Harness::new();
    h.fake.stubborn("web");
    h.started("web", def(Kind::Child)).await;
    let proc = h.next_spawn().await;
    let asked = tokio::time::Instant::now();
    h.engine
        .stop("web".into(), Some(Duration::from_millis(300)))
        .await
        .expect("stop");
    let sent = h.fake.signals(proc.pid);
    assert_eq!(sent.last().map(|s| s.signal), Some(Signal::SIGKILL));
    assert_eq!(ms(asked, sent[1].at), 300);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_restart_stops_every_worker_before_starting_any() {
    let h = Harness::new();
    h.fake.stubborn("web");
    let d = ProgramDef {
        stop_timeout: Some(Duration::from_millis(500)),
        ..cluster(3)
    };
    h.started("web", d).await;
    let old = h.pids("web");
    let info = h
        .engine
        .restart("web".into(), true)
        .await
        .expect("full restart");
    assert_eq!(info.status, ProgramStatus::Ok);
    assert_eq!(info.running, 3);
    let new = h.pids("web");
    assert_eq!(new.len(), 3);
    let last_end = old
        .iter()
        .map(|&pid| h.fake.proc(pid).ended.expect("old worker ended").0)
        .max()
        .expect("old workers");
    for &pid in &new {
        assert!(!old.contains(&pid));
        assert!(h.fake.proc(pid).spawned_at >= last_end);
    }
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_programs_in_reverse_start_order() {
    let h = Harness::new();
    h.started("db", def(Kind::Child)).await;
    h.started("web", def(Kind::Child)).await;
    h.fake.stubborn("web");
    let (db, web) = (h.pids("db")[0], h.pids("web")[0]);
    h.engine.shutdown().await.expect("shutdown");
    let web_end = h.fake.proc(web).ended.expect("web ended").0;
    let db_term = h.fake.signals(db)[0].at;
    assert!(
        db_term >= web_end,
        "db is asked to stop only once web is gone"
    );
}
