//! A program that crashes at once: respawns back off, the daemon stays cheap, and
//! with `max_restarts` the program ends `fatal` until started again.

pub mod common;

use std::time::Instant;

use common::*;
use infant::proto::{self, EventKind, ProgramKind, ProgramStatus};

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect(")") + 2..]
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[tokio::test]
async fn a_crash_loop_backs_off_cheaply_then_gives_up_until_started_again() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let mark = daemon.dir.path().join("broken");
    std::fs::write(&mark, "x").expect("mark");
    let script = format!("test ! -e {} || exit 1; exec sleep 1000", mark.display());
    let mut s = spec(ProgramKind::Child, &["sh", "-c", &script]);
    s.start_grace_ms = Some(50);
    s.respawn_delay_ms = Some(400);
    s.max_restarts = Some(6);
    s.restart_window_ms = Some(60_000);

    let ticks_before = cpu_ticks(daemon.pid());
    let started = Instant::now();
    let err = control
        .start("loop", Some(s), false)
        .await
        .expect_err("it cannot start");
    assert!(err.to_string().contains("exited while starting"), "{err}");

    let gave_up = events
        .wait_for("gave up", |e| {
            is(e, EventKind::Error) && e.reason.contains("gave up")
        })
        .await;
    assert!(
        gave_up.reason.contains("max_restarts = 6"),
        "{}",
        gave_up.reason
    );
    let elapsed = started.elapsed();
    let ticks = cpu_ticks(daemon.pid()) - ticks_before;
    let respawns: Vec<u64> = events
        .all()
        .iter()
        .filter(|e| is(e, EventKind::Respawn))
        .map(|e| e.delay_ms)
        .collect();
    assert_eq!(
        respawns.len(),
        6,
        "six respawns, then it gave up: {respawns:?}"
    );
    assert!(
        respawns.windows(2).all(|w| w[1] >= w[0]),
        "backoff grows: {respawns:?}"
    );
    assert_eq!(
        *respawns.last().expect("respawns"),
        400,
        "capped at respawn_delay"
    );
    // Clock ticks are 10 ms; a debug build respawning six times needs a few.
    assert!(
        ticks * 10 < elapsed.as_millis() as u64 / 4,
        "the daemon used {} ms of CPU in {elapsed:?}",
        ticks * 10
    );

    control
        .wait_program("loop", "status fatal", DEADLINE, |p| {
            p.status == ProgramStatus::Fatal as i32
        })
        .await;
    let info = control.program("loop").await;
    assert!(info.error.contains("gave up"), "{}", info.error);
    let (_, status, _) = daemon.ctl(&["status"]);
    assert!(
        status.contains("fatal") && status.contains("gave up"),
        "{status}"
    );

    // Fixed, and started again: the fatal state is cleared.
    std::fs::remove_file(&mark).expect("unmark");
    let info = control
        .start("loop", None, false)
        .await
        .expect("a later start works");
    assert_eq!(info.status, ProgramStatus::Ok as i32);
    assert!(info.error.is_empty());
    let pid = control.ok_pids("loop").await;
    assert!(daemon.stop().await.success());
    wait_gone(&pid, DEADLINE).await;
}

#[tokio::test]
async fn a_zero_respawn_delay_still_holds_a_crash_loop_to_100_respawns_a_second() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let mut s = spec(ProgramKind::Child, &["false"]);
    s.respawn_delay_ms = Some(0);
    let _ = start_program_result(&mut client, "dies", s).await;
    let respawns = |events: &Recorder| -> Vec<proto::Event> {
        events
            .all()
            .into_iter()
            .filter(|e| is(e, EventKind::Respawn) && e.program == "dies")
            .collect()
    };
    events
        .wait_for_n("a crash loop", 20, |e| {
            is(e, EventKind::Respawn) && e.program == "dies"
        })
        .await;
    let before = respawns(&events).len();
    let window = Instant::now();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let in_one_second = respawns(&events).len() - before;
    let elapsed = window.elapsed();
    client
        .stop(proto::StopRequest {
            name: "dies".into(),
            timeout_ms: None,
        })
        .await
        .expect("Stop");
    let all = respawns(&events);
    assert!(
        all[1..].iter().all(|e| e.delay_ms >= 10),
        "crashes in a row wait at least 10 ms: {:?}",
        all.iter().map(|e| e.delay_ms).collect::<Vec<_>>()
    );
    eprintln!("{in_one_second} respawns in {elapsed:?}");
    assert!(
        in_one_second as f64 <= 105.0 * elapsed.as_secs_f64(),
        "{in_one_second} respawns in {elapsed:?}"
    );
    assert!(daemon.stop().await.success());
}
