//! Every `Start`, `Stop`, `Restart` and `Scale` gets its answer, whatever else
//! happens meanwhile: a stop cutting a restart short, crashes, scaling during a
//! rollout. A model test runs random interleavings of them.

use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::oneshot;

use super::*;
use crate::daemon::engine::handle::{Command, FailedDependency};
use crate::daemon::engine::state::ProgramStatus;
use crate::daemon::error::Error;

type Reply = oneshot::Receiver<Result<ProgramInfo>>;

#[tokio::test(start_paused = true)]
async fn a_stop_during_a_full_restart_answers_the_restart_too() {
    let h = Harness::new();
    h.fake.stubborn("web");
    let d = ProgramDef {
        stop_timeout: Some(Duration::from_secs(2)),
        ..cluster(2)
    };
    h.started("web", d).await;
    let (reply, restart) = oneshot::channel();
    h.engine
        .tell(Command::Restart {
            name: "web".into(),
            full: true,
            reply,
        })
        .await
        .expect("restart sent");
    tokio::time::sleep(Duration::from_millis(500)).await; // within its stop phase
    let stopped = h.stop("web").await.expect("stop");
    assert_eq!(stopped.status, ProgramStatus::Ready);
    let restarted = tokio::time::timeout(PATIENCE, restart)
        .await
        .expect("the restart is answered")
        .expect("the engine answers");
    match restarted {
        Err(Error::Precondition { reason, .. }) => assert!(reason.contains("stop"), "{reason}"),
        other => panic!("a restart cut short by a stop fails: {other:?}"),
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        h.pids("web").is_empty(),
        "the stop won: nothing started again"
    );
    h.shut_down().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_restart_during_a_stop_answers_the_stop_and_starts_again() {
    let h = Harness::new();
    h.fake.stubborn("web");
    let d = ProgramDef {
        stop_timeout: Some(Duration::from_secs(2)),
        ..def(Kind::Child)
    };
    h.started("web", d).await;
    let (reply, stop) = oneshot::channel();
    h.engine
        .tell(Command::Stop {
            name: "web".into(),
            timeout: None,
            reply,
        })
        .await
        .expect("stop sent");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restarted = h.engine.restart("web".into(), true).await.expect("restart");
    assert_eq!(restarted.status, ProgramStatus::Ok);
    let stopped = tokio::time::timeout(PATIENCE, stop)
        .await
        .expect("the stop is answered")
        .expect("the engine answers");
    assert!(stopped.is_ok(), "{stopped:?}");
    assert_eq!(h.pids("web").len(), 1);
    h.shut_down().await;
}

/// One step of a model run.
#[derive(Clone, Debug)]
enum Op {
    Start(&'static str),
    Stop(&'static str),
    Restart(&'static str, bool),
    Scale(u32),
    /// Ends the n-th running process (modulo their number) with code 1.
    Crash(usize),
    /// Lets this many milliseconds pass.
    Wait(u64),
}

const PROGRAMS: [&str; 2] = ["web", "api"];

fn op() -> impl Strategy<Value = Op> {
    let program = prop::sample::select(&PROGRAMS[..]);
    prop_oneof![
        program.clone().prop_map(Op::Start),
        program.clone().prop_map(Op::Stop),
        (program, any::<bool>()).prop_map(|(p, full)| Op::Restart(p, full)),
        (1u32..4).prop_map(Op::Scale),
        (0usize..8).prop_map(Op::Crash),
        prop_oneof![Just(0u64), 1u64..150, 150u64..1500].prop_map(Op::Wait),
    ]
}

/// Runs `ops` against a cluster `web` and a child `api` that runs after it,
/// sending each command without waiting for its answer; then lets every window
/// and hold-down pass. Processes ignore SIGTERM if `stubborn`; crashed workers
/// of `web` are not respawned if `lose_workers`. Returns the commands that got
/// no answer.
async fn run_model(stubborn: bool, lose_workers: bool, ops: &[Op]) -> Vec<String> {
    let h = Harness::new();
    let web = ProgramDef {
        stop_timeout: Some(Duration::from_secs(1)),
        respawn_delay: Some(Duration::from_millis(500)),
        respawn: Some(!lose_workers),
        ..cluster(2)
    };
    let api = ProgramDef {
        stop_timeout: Some(Duration::from_secs(1)),
        after: Some(vec!["web".into()]),
        ..def(Kind::Child)
    };
    let specs = vec![
        web.validate("web").expect("web"),
        api.validate("api").expect("api"),
    ];
    h.engine.define(specs).await.expect("define");
    if stubborn {
        h.fake.stubborn("web");
        h.fake.stubborn("api");
    }
    let mut replies: Vec<(String, Reply)> = Vec::new();
    for op in ops {
        let (reply, answer) = oneshot::channel();
        let command = match *op {
            Op::Start(name) => Command::Start {
                name: name.into(),
                def: None,
                wait: false,
                failed_dependency: FailedDependency::Retry,
                reply,
            },
            Op::Stop(name) => Command::Stop {
                name: name.into(),
                timeout: None,
                reply,
            },
            Op::Restart(name, full) => Command::Restart {
                name: name.into(),
                full,
                reply,
            },
            Op::Scale(count) => Command::Scale {
                name: "web".into(),
                count,
                reply,
            },
            Op::Crash(n) => {
                let running = h.fake.all_running();
                if !running.is_empty() {
                    h.crash(running[n % running.len()].pid, 1);
                }
                continue;
            }
            Op::Wait(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                continue;
            }
        };
        h.engine.tell(command).await.expect("the engine runs");
        replies.push((format!("{op:?}"), answer));
    }
    tokio::time::sleep(Duration::from_secs(600)).await;
    let mut unanswered = Vec::new();
    for (what, mut answer) in replies {
        match answer.try_recv() {
            Ok(_) => {}
            Err(oneshot::error::TryRecvError::Empty) => unanswered.push(what),
            Err(oneshot::error::TryRecvError::Closed) => {
                unanswered.push(format!("{what} (dropped)"))
            }
        }
    }
    h.shut_down().await;
    unanswered
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_call_is_answered_whatever_the_interleaving(
        stubborn in any::<bool>(),
        lose_workers in any::<bool>(),
        ops in prop::collection::vec(op(), 1..24),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let unanswered = runtime.block_on(run_model(stubborn, lose_workers, &ops));
        prop_assert!(unanswered.is_empty(), "never answered: {:?}", unanswered);
    }
}
