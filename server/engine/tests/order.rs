//! `after`: what a program needs starts first and stops last.

use std::time::Duration;

use super::*;
use crate::daemon::engine::state::ProgramStatus;
use crate::daemon::error::Error;

fn after(names: &[&str]) -> ProgramDef {
    ProgramDef {
        after: Some(names.iter().map(|n| n.to_string()).collect()),
        ..def(Kind::Child)
    }
}

#[tokio::test(start_paused = true)]
async fn a_program_starts_once_what_it_needs_is_ok() {
    let h = Harness::new();
    h.engine
        .define(vec![def(Kind::Child).validate("db").expect("db")])
        .await
        .expect("define");
    let info = h.started("web", after(&["db"])).await;
    assert_eq!(info.status, ProgramStatus::Ok);
    let db = h.next_spawn().await;
    let web = h.next_spawn().await;
    assert_eq!((db.program.as_str(), web.program.as_str()), ("db", "web"));
    // db's start grace is 100 ms: web waits for it.
    assert_eq!(ms(db.spawned_at, web.spawned_at), 100);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_completed_job_counts_as_up_for_what_runs_after_it() {
    let h = Harness::new();
    h.engine
        .define(vec![def(Kind::Once).validate("migrate").expect("job")])
        .await
        .expect("define");
    let started = h.start("web", after(&["migrate"]));
    let job = async {
        let job = h.next_spawn().await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        h.crash(job.pid, 0);
        job
    };
    let (info, job) = tokio::join!(started, job);
    assert_eq!(info.expect("web starts").status, ProgramStatus::Ok);
    let web = h.fake.procs("web");
    assert_eq!(web.len(), 1);
    assert!(web[0].spawned_at >= job.ended.map_or(job.spawned_at, |e| e.0));
    assert!(ms(job.spawned_at, web[0].spawned_at) >= 3000);
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_job_fails_what_waits_for_it() {
    let h = Harness::new();
    let job = ProgramDef {
        respawn: Some(false),
        ..def(Kind::Once)
    };
    h.engine
        .define(vec![job.validate("migrate").expect("job")])
        .await
        .expect("define");
    let started = h.start("web", after(&["migrate"]));
    let fail = async {
        let job = h.next_spawn().await;
        h.crash(job.pid, 2);
    };
    let (info, ()) = tokio::join!(started, fail);
    match info {
        Err(Error::Precondition { program, reason }) => {
            assert_eq!(program, "web");
            assert!(reason.contains("migrate"), "{reason}");
        }
        other => panic!("web must not start: {other:?}"),
    }
    assert!(h.fake.procs("web").is_empty());
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn stopping_a_program_stops_what_needs_it_first() {
    let h = Harness::new();
    h.started("db", def(Kind::Child)).await;
    h.started("web", after(&["db"])).await;
    h.fake.stubborn("web");
    let (db, web) = (h.pids("db")[0], h.pids("web")[0]);
    h.stop("db").await.expect("stop db");
    assert_eq!(h.info("web").await.status, ProgramStatus::Ready);
    let web_end = h.fake.proc(web).ended.expect("web stopped").0;
    let db_term = h.fake.signals(db)[0].at;
    assert!(db_term >= web_end, "web is gone before db is asked to stop");
    h.shut_down().await;
}
