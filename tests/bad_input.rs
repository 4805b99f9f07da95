//! Bad input never kills the daemon: every refusal is a gRPC status whose message
//! names the program or field at fault, and the daemon answers `List` afterwards.
//! Startup mistakes (config files, a second daemon) end `infantd` with a non-zero
//! status and one clear line. The control socket is private.

pub mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use infant::proto::supervisor_client::SupervisorClient;
use infant::proto::{self, ProgramKind};
use tonic::transport::Channel;
use tonic::Code;

type Client = SupervisorClient<Channel>;

/// Asserts `result` is an error with `code` whose message contains every one of
/// `needles`; then that the daemon still answers `List`.
async fn assert_refused<T: std::fmt::Debug>(
    client: &mut Client,
    what: &str,
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    needles: &[&str],
) {
    let status = match result {
        Ok(reply) => panic!("{what}: should be refused with {code:?}, got {reply:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{what}: {status:?}");
    for needle in needles {
        assert!(
            status.message().contains(needle),
            "{what}: the message should name `{needle}`: {:?}",
            status.message()
        );
    }
    client
        .list(proto::ListRequest::default())
        .await
        .unwrap_or_else(|e| panic!("after {what}, List should still work: {e}"));
}

/// Start `name` defined by `spec`.
async fn start(
    client: &mut Client,
    name: &str,
    spec: proto::ProgramSpec,
) -> Result<tonic::Response<proto::ProgramInfo>, tonic::Status> {
    client
        .start(proto::StartRequest {
            name: name.into(),
            spec: Some(spec),
            wait: false,
        })
        .await
}

fn cluster(count: u32) -> proto::ProgramSpec {
    let mut s = spec(ProgramKind::Cluster, &["sleep", "1000"]);
    s.count = Some(count);
    s
}

#[tokio::test]
async fn requests_for_an_unknown_program_are_not_found() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let ghost = || "ghost".to_string();

    let r = client
        .stop(proto::StopRequest {
            name: ghost(),
            timeout_ms: None,
        })
        .await;
    assert_refused(&mut client, "Stop", r, Code::NotFound, &["ghost"]).await;
    let r = client
        .send(proto::SendRequest {
            name: ghost(),
            worker: None,
            payload: b"hi".to_vec(),
        })
        .await;
    assert_refused(&mut client, "Send", r, Code::NotFound, &["ghost"]).await;
    let r = client
        .kill(proto::KillRequest {
            name: ghost(),
            worker: None,
            signal: "KILL".into(),
        })
        .await;
    assert_refused(&mut client, "Kill", r, Code::NotFound, &["ghost"]).await;
    let r = client
        .scale(proto::ScaleRequest {
            name: ghost(),
            count: 2,
        })
        .await;
    assert_refused(&mut client, "Scale", r, Code::NotFound, &["ghost"]).await;
    let r = client
        .restart(proto::RestartRequest {
            name: ghost(),
            full: false,
        })
        .await;
    assert_refused(&mut client, "Restart", r, Code::NotFound, &["ghost"]).await;
    let r = client
        .start(proto::StartRequest {
            name: ghost(),
            spec: None,
            wait: false,
        })
        .await;
    assert_refused(
        &mut client,
        "Start without a spec",
        r,
        Code::NotFound,
        &["ghost"],
    )
    .await;
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

#[tokio::test]
async fn bad_program_definitions_are_refused_naming_the_field() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;

    let r = start(&mut client, "empty", spec(ProgramKind::Child, &[])).await;
    assert_refused(
        &mut client,
        "an empty command",
        r,
        Code::InvalidArgument,
        &["empty", "command"],
    )
    .await;
    let r = start(&mut client, "blank", spec(ProgramKind::Child, &[""])).await;
    assert_refused(
        &mut client,
        "an empty executable",
        r,
        Code::InvalidArgument,
        &["command"],
    )
    .await;

    let r = start(
        &mut client,
        "abs",
        spec(ProgramKind::Child, &["/nonexistent/x"]),
    )
    .await;
    assert_refused(
        &mut client,
        "a missing absolute executable",
        r,
        Code::FailedPrecondition,
        &["abs", "/nonexistent/x", "no such file"],
    )
    .await;
    let r = start(
        &mut client,
        "path",
        spec(ProgramKind::Child, &["no-such-binary-xyz"]),
    )
    .await;
    assert_refused(
        &mut client,
        "a missing executable in PATH",
        r,
        Code::FailedPrecondition,
        &["no-such-binary-xyz", "PATH"],
    )
    .await;

    // Found and executable, but the exec itself fails (its interpreter is
    // missing): the error comes from the child, after the fork.
    let script = daemon.dir.path().join("bad-interpreter");
    std::fs::write(&script, "#!/nonexistent/interpreter\n").expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let script = script.display().to_string();
    let r = start(&mut client, "interp", spec(ProgramKind::Child, &[&script])).await;
    let status = r.expect_err("an exec that fails must fail the start");
    for needle in ["interp", "cannot run", &script, "No such file or directory"] {
        assert!(
            status.message().contains(needle),
            "an exec failure should name `{needle}`: {status:?}"
        );
    }
    client
        .list(proto::ListRequest::default())
        .await
        .expect("after an exec failure, List should still work");

    let r = start(&mut client, "zero", cluster(0)).await;
    assert_refused(
        &mut client,
        "count 0",
        r,
        Code::InvalidArgument,
        &["zero", "count"],
    )
    .await;
    let r = start(&mut client, "huge", cluster(100_000)).await;
    assert_refused(
        &mut client,
        "count 100000",
        r,
        Code::InvalidArgument,
        &["count", "100000"],
    )
    .await;

    for (field, set) in [
        (
            "stop_timeout",
            (|s: &mut proto::ProgramSpec| s.stop_timeout_ms = Some(-1)) as fn(&mut _),
        ),
        ("respawn_delay", |s| s.respawn_delay_ms = Some(-5)),
        ("heartbeat", |s| s.heartbeat_ms = Some(-1000)),
        ("start_grace", |s| s.start_grace_ms = Some(-1)),
    ] {
        let mut s = spec(ProgramKind::Child, &["sleep", "1000"]);
        set(&mut s);
        let r = start(&mut client, "neg", s).await;
        assert_refused(
            &mut client,
            &format!("negative {field}"),
            r,
            Code::InvalidArgument,
            &[field, "negative"],
        )
        .await;
    }

    for name in ["bad name", "", "a/b", &"x".repeat(65)] {
        let r = start(
            &mut client,
            name,
            spec(ProgramKind::Child, &["sleep", "1000"]),
        )
        .await;
        assert_refused(
            &mut client,
            &format!("name {name:?}"),
            r,
            Code::InvalidArgument,
            &["name"],
        )
        .await;
    }

    let mut s = spec(ProgramKind::Child, &["sleep", "1000"]);
    s.listen = vec!["http://127.0.0.1:80".into()];
    let r = start(&mut client, "web", s).await;
    assert_refused(
        &mut client,
        "a bad listen URL",
        r,
        Code::InvalidArgument,
        &["listen", "http://127.0.0.1:80"],
    )
    .await;

    // Nothing of all that runs, and a good program still starts.
    let listed = client
        .each_worker(proto::EachWorkerRequest::default())
        .await
        .expect("EachWorker");
    let mut stream = listed.into_inner();
    assert!(
        stream.message().await.expect("EachWorker stream").is_none(),
        "no instance runs after refused starts"
    );
    let mut good = cluster(2);
    good.start_grace_ms = Some(50);
    start(&mut client, "good", good)
        .await
        .expect("a good cluster starts");
    let pids = ok_pids(&mut client, "good").await;
    assert_eq!(pids.len(), 2);

    // Requests about a running program can be wrong too.
    let r = client
        .scale(proto::ScaleRequest {
            name: "good".into(),
            count: 0,
        })
        .await;
    assert_refused(
        &mut client,
        "Scale to 0",
        r,
        Code::InvalidArgument,
        &["count"],
    )
    .await;
    let r = client
        .stop(proto::StopRequest {
            name: "good".into(),
            timeout_ms: Some(-1),
        })
        .await;
    assert_refused(
        &mut client,
        "a negative Stop timeout",
        r,
        Code::InvalidArgument,
        &["timeout", "negative"],
    )
    .await;
    // Far past what the daemon's timers can hold (this used to kill the engine).
    let r = client
        .stop(proto::StopRequest {
            name: "good".into(),
            timeout_ms: Some(i64::MAX),
        })
        .await;
    assert_refused(
        &mut client,
        "a Stop timeout of 292 million years",
        r,
        Code::InvalidArgument,
        &["timeout_ms", "7 days"],
    )
    .await;
    let r = client
        .send(proto::SendRequest {
            name: "good".into(),
            worker: Some(99),
            payload: b"hi".to_vec(),
        })
        .await;
    assert_refused(
        &mut client,
        "Send to an unknown worker",
        r,
        Code::NotFound,
        &["good", "99"],
    )
    .await;
    assert_eq!(
        ok_pids(&mut client, "good").await,
        pids,
        "the cluster is untouched"
    );

    assert!(daemon.stop().await.success(), "infantd exits 0");
    wait_gone(&pids, DEADLINE).await;
}

/// Runs `infantd ARGS` to completion (killed after `deadline`) and returns its output.
fn run_infantd(args: &[&std::ffi::OsStr], deadline: Duration) -> Output {
    let mut child = Command::new(infantd_bin())
        .args(args)
        .env("INFANT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn infantd");
    wait_child_blocking(&mut child, deadline);
    child.wait_with_output().expect("infantd output")
}

/// `infantd --config FILE --socket DIR/s.sock` on a config holding `text`: must
/// fail at once; returns its stderr.
fn refused_config(text: &str) -> String {
    let dir = short_tempdir();
    let config = dir.path().join("f.toml");
    std::fs::write(&config, text).expect("write config");
    let socket = dir.path().join("s.sock");
    let out = run_infantd(
        &[
            "--config".as_ref(),
            config.as_os_str(),
            "--socket".as_ref(),
            socket.as_os_str(),
        ],
        DEADLINE,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "infantd should refuse the config:\n{text}\nstderr: {stderr}"
    );
    assert!(!socket.exists(), "a refused config serves nothing");
    assert!(stderr.contains("f.toml"), "stderr names the file: {stderr}");
    stderr
}

#[test]
fn a_config_with_an_unknown_key_is_refused_naming_key_and_line() {
    let stderr =
        refused_config("[program.web]\ncommand = [\"sleep\", \"1000\"]\nstop_timout = \"5s\"\n");
    assert!(
        stderr.contains("stop_timout") && stderr.contains("line 3"),
        "stderr names the unknown key and its line: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn a_config_with_a_bad_duration_is_refused_naming_field_and_line() {
    for (value, shown) in [("\"soon\"", "soon"), ("\"-5s\"", "-5s"), ("5", "duration")] {
        let stderr = refused_config(&format!(
            "[program.web]\ncommand = [\"sleep\", \"1000\"]\n\nstop_timeout = {value}\n"
        ));
        assert!(
            stderr.contains("stop_timeout") && stderr.contains("line 4") && stderr.contains(shown),
            "stderr names the field, its line and the value {value}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

#[tokio::test]
async fn a_second_daemon_on_the_same_socket_is_refused() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let mut s = spec(ProgramKind::Child, &["sleep", "1000"]);
    s.start_grace_ms = Some(50);
    start(&mut client, "nap", s).await.expect("Start nap");
    let pid = ok_pids(&mut client, "nap").await[0];

    let out = run_infantd(&["--socket".as_ref(), daemon.socket.as_os_str()], DEADLINE);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the second infantd must fail: {stderr}"
    );
    assert!(
        stderr.contains("another infantd") && stderr.contains(&*daemon.socket.to_string_lossy()),
        "it says another infantd serves that socket: {stderr}"
    );
    assert!(
        daemon.socket.exists(),
        "the first daemon's socket is left alone"
    );

    // The first daemon still serves, on a fresh connection too.
    let mut fresh = daemon.client().await;
    let listed = fresh
        .list(proto::ListRequest::default())
        .await
        .expect("the first daemon answers List")
        .into_inner();
    assert_eq!(listed.programs.len(), 1);
    assert_eq!(
        ok_pids(&mut fresh, "nap").await,
        [pid],
        "its program runs on"
    );

    assert!(daemon.stop().await.success(), "infantd exits 0");
    wait_gone(&[pid], DEADLINE).await;
}

#[tokio::test]
async fn the_default_control_socket_is_0600_in_a_0700_folder() {
    let daemon = Daemon::start_default_socket(&[]).await;
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let socket = &daemon.socket;
    assert!(
        socket.ends_with("infant/infantd.sock"),
        "at $XDG_RUNTIME_DIR/infant/infantd.sock: {}",
        socket.display()
    );
    assert_eq!(mode(socket), 0o600, "socket mode");
    let folder = socket.parent().expect("socket folder");
    assert_eq!(mode(folder), 0o700, "folder mode");

    let mut client = daemon.client().await;
    client
        .list(proto::ListRequest::default())
        .await
        .expect("List over the default socket");
    assert!(daemon.stop().await.success(), "infantd exits 0");
}
