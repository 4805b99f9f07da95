//! Hostile input, generated: thousands of control RPCs with random and boundary
//! values, and random config files. Every reply must be OK or a clear status
//! (never INTERNAL or UNKNOWN), the daemon must never fall over, and what `List`
//! and `EachWorker` say afterwards must be consistent.

pub mod common;

use common::*;
use infant::proto::{self, ProgramKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Names: valid ones (so requests reach real programs), and hostile ones.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "web", "job"]).prop_map(String::from),
        1 => Just(String::new()),
        1 => "\\PC{0,80}",
        1 => Just("x".repeat(10_000)),
        1 => Just("../../etc/passwd".to_string()),
        1 => Just("nul\0byte".to_string()),
        1 => Just("ünïcødé-名前".to_string()),
    ]
}

fn millis() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        Just(None),
        Just(Some(-1)),
        Just(Some(i64::MIN)),
        Just(Some(i64::MAX)),
        (0i64..2_000).prop_map(Some),
    ]
}

fn command() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        Just(vec!["sleep".to_string(), "1000".to_string()]),
        Just(vec!["true".to_string()]),
        Just(vec![]),
        Just(vec![String::new()]),
        Just(vec!["/nonexistent/binary".to_string()]),
        Just(vec![
            "sh".to_string(),
            "-c".to_string(),
            "exit 3".to_string()
        ]),
        Just(vec!["sleep\0".to_string()]),
    ]
}

fn program_spec() -> impl Strategy<Value = proto::ProgramSpec> {
    (
        -1i32..5,
        command(),
        prop_oneof![
            Just(None),
            Just(Some(0u32)),
            (1u32..4).prop_map(Some),
            Just(Some(u32::MAX))
        ],
        any::<bool>(),
        prop_oneof![
            Just(vec![]),
            Just(vec!["tcp://127.0.0.1:0".to_string()]),
            Just(vec!["http://nope".to_string()]),
            Just(vec!["unix://relative".to_string()]),
        ],
        (millis(), millis(), millis(), millis()),
        prop_oneof![
            Just(vec![]),
            Just(vec!["a".to_string()]),
            Just(vec!["ghost".to_string()])
        ],
        prop_oneof![Just(None), Just(Some(0u64)), Just(Some(u64::MAX))],
    )
        .prop_map(
            |(
                kind,
                command,
                count,
                enhanced,
                listen,
                (stop, delay, heartbeat, timeout),
                after,
                max,
            )| {
                proto::ProgramSpec {
                    kind,
                    command,
                    count,
                    enhanced,
                    listen,
                    stop_timeout_ms: stop,
                    respawn_delay_ms: delay,
                    heartbeat_ms: heartbeat,
                    timeout_ms: timeout,
                    after,
                    max_connections: max,
                    // Keep starts quick: plain processes are ok at once.
                    start_grace_ms: Some(0),
                    ..Default::default()
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Call {
    Start(String, Option<Box<proto::ProgramSpec>>, bool),
    Stop(String, Option<i64>),
    Restart(String, bool),
    Send(String, Option<u64>, usize),
    Kill(String, Option<u64>, String),
    Scale(String, u32),
    List(String),
    Workers(String),
    Events(String),
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        4 => (name(), prop::option::of(program_spec()), any::<bool>()).prop_map(|(n, s, w)| Call::Start(n, s.map(Box::new), w)),
        2 => (name(), millis()).prop_map(|(n, t)| Call::Stop(n, t)),
        1 => (name(), any::<bool>()).prop_map(|(n, f)| Call::Restart(n, f)),
        2 => (name(), prop::option::of(0u64..5), prop_oneof![Just(0usize), Just(10), Just(1024 * 1024 + 1), Just(2 * 1024 * 1024)])
            .prop_map(|(n, w, len)| Call::Send(n, w, len)),
        2 => (name(), prop::option::of(0u64..5), prop_oneof![Just(String::new()), Just("USR1".into()), Just("SIGNOPE".into()), Just("-1".into()), Just("99999".into()), "\\PC{0,20}"])
            .prop_map(|(n, w, s)| Call::Kill(n, w, s)),
        1 => (name(), prop_oneof![Just(0u32), Just(1), Just(3), Just(1025), Just(u32::MAX)]).prop_map(|(n, c)| Call::Scale(n, c)),
        1 => name().prop_map(Call::List),
        1 => name().prop_map(Call::Workers),
        1 => name().prop_map(Call::Events),
    ]
}

/// A status that is a clear answer to bad input, not a daemon failure.
fn acceptable(status: &tonic::Status) -> bool {
    use tonic::Code::*;
    matches!(
        status.code(),
        InvalidArgument | NotFound | FailedPrecondition | AlreadyExists | OutOfRange
    ) && !status.message().is_empty()
}

async fn apply(
    client: &mut proto::supervisor_client::SupervisorClient<tonic::transport::Channel>,
    call: Call,
) -> Result<(), tonic::Status> {
    match call {
        Call::Start(name, spec, wait) => client
            .start(proto::StartRequest {
                name,
                spec: spec.map(|s| *s),
                wait,
            })
            .await
            .map(drop),
        Call::Stop(name, timeout_ms) => client
            .stop(proto::StopRequest { name, timeout_ms })
            .await
            .map(drop),
        Call::Restart(name, full) => client
            .restart(proto::RestartRequest { name, full })
            .await
            .map(drop),
        Call::Send(name, worker, len) => client
            .send(proto::SendRequest {
                name,
                worker,
                payload: vec![b'x'; len],
            })
            .await
            .map(drop),
        Call::Kill(name, worker, signal) => client
            .kill(proto::KillRequest {
                name,
                worker,
                signal,
            })
            .await
            .map(drop),
        Call::Scale(name, count) => client
            .scale(proto::ScaleRequest { name, count })
            .await
            .map(drop),
        Call::List(name) => client.list(proto::ListRequest { name }).await.map(drop),
        Call::Workers(name) => {
            let mut stream = client
                .each_worker(proto::EachWorkerRequest { name })
                .await?
                .into_inner();
            while stream.message().await?.is_some() {}
            Ok(())
        }
        Call::Events(name) => {
            let mut stream = client
                .events(proto::EventsRequest {
                    name,
                    replay: true,
                    follow: Some(false),
                    last: None,
                })
                .await?
                .into_inner();
            while stream.message().await?.is_some() {}
            Ok(())
        }
    }
}

#[test]
fn random_control_calls_get_clear_answers_and_never_break_the_daemon() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let daemon = runtime.block_on(Daemon::start(&[]));
    let mut client = runtime.block_on(daemon.client());
    let cases = std::env::var("INFANT_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&call(), |call| {
        let described = format!("{call:?}");
        let mut client = client.clone();
        let outcome = runtime
            .block_on(async { tokio::time::timeout(DEADLINE, apply(&mut client, call)).await });
        match outcome {
            Err(_) => prop_assert!(
                false,
                "no answer within {DEADLINE:?}: {}",
                &described[..described.len().min(300)]
            ),
            Ok(Ok(())) => {}
            Ok(Err(status)) => prop_assert!(
                acceptable(&status),
                "unclear answer {:?}: {} to {}",
                status.code(),
                status.message(),
                &described[..described.len().min(300)]
            ),
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }

    // Consistency afterwards: every listed program answers, every worker listed
    // is a live process of ours, and everything stops cleanly.
    runtime.block_on(async {
        let programs = client
            .list(proto::ListRequest::default())
            .await
            .expect("List after the fuzz")
            .into_inner()
            .programs;
        let mut pids = Vec::new();
        for program in &programs {
            for worker in workers(&mut client, &program.name).await {
                if worker.pid != 0 {
                    assert!(
                        exists(worker.pid),
                        "listed worker {} of {} is not running",
                        worker.pid,
                        program.name
                    );
                    pids.push(worker.pid);
                }
            }
        }
        let kind_ok = programs
            .iter()
            .all(|p| ProgramKind::try_from(p.kind).is_ok());
        assert!(kind_ok);
        assert!(
            daemon.stop().await.success(),
            "the daemon stops cleanly after the fuzz"
        );
        wait_gone(&pids, DEADLINE).await;
    });
}

proptest! {
    #![proptest_config(Config { cases: 2_000, failure_persistence: None, ..Config::default() })]

    /// Any text: a config error or a valid config, never a panic.
    #[test]
    fn any_config_text_parses_or_is_refused(text in "\\PC{0,400}") {
        let _ = infant::daemon::config::parse(&text);
    }

    /// Config-shaped text with random keys and values.
    #[test]
    fn config_shaped_text_parses_or_is_refused(
        name in "[a-z.\\-_ ]{0,12}",
        key in prop::sample::select(vec!["kind", "command", "count", "stop_timeout", "after", "listen", "env", "heartbeat", "bogus", "max_restarts"]),
        value in prop::sample::select(vec!["\"cluster\"", "[\"x\"]", "0", "-1", "99999999999", "\"-5s\"", "\"15s\"", "[\"a\", \"a\"]", "{ A = \"b\" }", "\"tcp://:1\"", "true", "1.5"]),
    ) {
        let text = format!("[program.\"{name}\"]\ncommand = [\"x\"]\n{key} = {value}\n");
        match infant::daemon::config::parse(&text) {
            Ok(specs) => prop_assert_eq!(specs.len(), 1),
            Err(reason) => prop_assert!(reason.contains("line "), "{}", reason),
        }
    }
}
