//! `once` jobs: exit codes, the run time limit, retries of failed runs.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::*;
use crate::daemon::engine::state::ProgramStatus;

/// Starts job `name` with `wait`, and ends each of its runs with the next code.
async fn run_job(h: &Harness, name: &str, d: ProgramDef, codes: &[i32]) -> ProgramInfo {
    let started = h.engine.start(name.into(), Some(d), true);
    let runs = async {
        for &code in codes {
            let run = h.next_spawn().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            h.crash(run.pid, code);
        }
    };
    let (info, ()) = tokio::join!(started, runs);
    info.expect("the job ran")
}

#[tokio::test(start_paused = true)]
async fn a_job_that_exits_0_completes_and_is_not_run_again() {
    let h = Harness::new();
    let info = run_job(&h, "job", def(Kind::Once), &[0]).await;
    assert_eq!(info.status, ProgramStatus::Ready);
    assert_eq!(info.outcome, Some(ExitStatus::Code(0)));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(h.spawned_meanwhile().is_none());
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_that_fails_without_respawn_is_in_error_with_its_code() {
    let h = Harness::new();
    let d = ProgramDef {
        respawn: Some(false),
        ..def(Kind::Once)
    };
    let info = run_job(&h, "job", d, &[3]).await;
    assert_eq!(info.status, ProgramStatus::Error);
    assert_eq!(info.outcome, Some(ExitStatus::Code(3)));
    assert!(info.error.contains("exited with code 3"), "{}", info.error);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(h.spawned_meanwhile().is_none());
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn failed_runs_are_retried_with_backoff_until_max_retries() {
    let h = Harness::new();
    let d = ProgramDef {
        respawn: Some(true),
        max_retries: Some(2),
        ..def(Kind::Once)
    };
    let info = run_job(&h, "job", d, &[1, 1, 1]).await;
    assert_eq!(info.status, ProgramStatus::Fatal, "{info:?}");
    assert!(info.error.contains("run 3"), "{}", info.error);
    let runs = h.fake.procs("job");
    assert_eq!(runs.len(), 3, "the first run and two retries");
    let gap = |i: usize| ms(runs[i].ended.expect("ended").0, runs[i + 1].spawned_at);
    assert_eq!(gap(0), 0, "the first failure is retried at once");
    assert_eq!(gap(1), 100, "the next after 100 ms");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(h.fake.procs("job").len(), 3, "no fourth run");
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_retried_job_that_then_succeeds_completes() {
    let h = Harness::new();
    let d = ProgramDef {
        respawn: Some(true),
        ..def(Kind::Once)
    };
    let info = run_job(&h, "job", d, &[1, 0]).await;
    assert_eq!(info.status, ProgramStatus::Ready);
    assert_eq!(info.outcome, Some(ExitStatus::Code(0)));
    assert!(info.error.is_empty());
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_past_its_timeout_is_killed() {
    let h = Harness::new();
    let d = ProgramDef {
        respawn: Some(false),
        timeout: Some(Duration::from_secs(2)),
        ..def(Kind::Once)
    };
    let info = h
        .engine
        .start("job".into(), Some(d), true)
        .await
        .expect("the job ran");
    let run = h.next_spawn().await;
    let sent = h.fake.signals(run.pid);
    assert_eq!(sent[0].signal, Signal::SIGKILL);
    assert_eq!(ms(run.spawned_at, sent[0].at), 2000);
    assert_eq!(
        info.outcome,
        Some(ExitStatus::Signal(Signal::SIGKILL as i32))
    );
    assert!(info.error.contains("timed out after 2s"), "{}", info.error);
    h.shut_down().await;
}
