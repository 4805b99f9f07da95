//! Who may talk to the daemon: only its own uid (and root) on the control socket,
//! and on the worker channel only the process a token was made for.

pub mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;
use infant::proto::worker_channel_client::WorkerChannelClient;
use infant::proto::{self, worker_message, EventKind, ProgramKind};

/// Attaches from this (test) process with `id`/`token`; the refusal.
async fn attach_refused(daemon: &Daemon, id: u64, token: &str) -> tonic::Status {
    let channel = infant::transport::connect_unix(&daemon.socket)
        .await
        .expect("connect");
    let mut client = WorkerChannelClient::new(channel);
    let hello = proto::WorkerMessage {
        msg: Some(worker_message::Msg::Hello(proto::Hello {
            id,
            token: token.to_string(),
            pid: std::process::id(),
        })),
    };
    // Keep our side open: the daemon must answer on its own, not on EOF.
    let outbound =
        tokio_stream::StreamExt::chain(tokio_stream::iter(vec![hello]), tokio_stream::pending());
    match client.attach(outbound).await {
        Err(status) => status,
        Ok(mut stream) => match stream.get_mut().message().await {
            Err(status) => status,
            Ok(message) => panic!("attach was accepted: {message:?}"),
        },
    }
}

/// `INFANT_TOKEN` from a worker's environment (we run as the same user). Read
/// again until it is there: a process between its fork and its exec still has
/// the daemon's environment.
fn token_of(pid: u32) -> String {
    let read = || {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        environ
            .split(|&b| b == 0)
            .find_map(|entry| entry.strip_prefix(b"INFANT_TOKEN="))
            .map(|t| String::from_utf8_lossy(t).into_owned())
    };
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        if let Some(token) = read() {
            return token;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no INFANT_TOKEN in the environment of {pid}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

async fn start_echo(daemon: &Daemon, name: &str, extra: &[(&str, &str)]) -> u32 {
    let control = daemon.control().await;
    let worker = example_bin("echo_worker");
    let mut s = spec(ProgramKind::Child, &[&worker.to_string_lossy()]);
    s.start_grace_ms = Some(10_000);
    for (k, v) in extra {
        s.env.insert(k.to_string(), v.to_string());
    }
    control
        .start(name, Some(s), false)
        .await
        .expect("Start echo");
    control.ok_pids(name).await[0]
}

#[tokio::test]
async fn the_worker_channel_admits_only_the_right_process_with_the_right_token() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let pid = start_echo(&daemon, "echo", &[]).await;
    let token = token_of(pid);

    let wrong = attach_refused(&daemon, 1, "not-the-token").await;
    assert_eq!(wrong.code(), tonic::Code::PermissionDenied);
    assert!(
        wrong.message().contains("wrong token"),
        "{}",
        wrong.message()
    );

    // The right token from the wrong process: a leaked token is not enough.
    let leaked = attach_refused(&daemon, 1, &token).await;
    assert_eq!(leaked.code(), tonic::Code::PermissionDenied);
    assert!(
        leaked.message().contains("process group"),
        "{}",
        leaked.message()
    );

    // A dead worker's token is worthless: its successor has a new one.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let respawn = events
        .wait_for("respawn", |e| is(e, EventKind::Respawn))
        .await;
    assert_ne!(token_of(respawn.pid), token);
    let dead = attach_refused(&daemon, 1, &token).await;
    assert_eq!(dead.code(), tonic::Code::PermissionDenied);
    assert!(dead.message().contains("wrong token"), "{}", dead.message());

    // The worker itself is unaffected by all of this.
    let control = daemon.control().await;
    wait_until("the respawned worker is attached", DEADLINE, || {
        let control = &control;
        async move { control.workers_of("echo").await.iter().any(|w| w.attached) }
    })
    .await;
    control
        .send("echo", None, "still here")
        .await
        .expect("Send");
    events
        .wait_for("echo", |e| {
            is(e, EventKind::Message) && e.payload == b"echo: still here"
        })
        .await;
    assert!(daemon.stop().await.success());
    wait_gone(&[pid, respawn.pid], DEADLINE).await;
}

#[tokio::test]
async fn a_second_attach_for_the_same_worker_is_refused() {
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let worker = example_bin("echo_worker");
    let errors = daemon.dir.path().join("stderr");
    let started = daemon.dir.path().join("stdout");
    // Two SDK processes with the same identity in one process group: the leader
    // attaches and starts (it prints `started` then), and only then the copy
    // runs, attaches second, and is refused (and exits); the leader serves.
    let script = r#"( until grep -q started "$2" 2>/dev/null; do sleep 0.05; done; exec "$0" ) 2>> "$1" &
exec "$0" > "$2" 2>> "$1""#;
    let mut s = spec(
        ProgramKind::Child,
        &[
            "sh",
            "-c",
            script,
            &worker.to_string_lossy(),
            &errors.to_string_lossy(),
            &started.to_string_lossy(),
        ],
    );
    s.start_grace_ms = Some(10_000);
    control.start("twice", Some(s), false).await.expect("Start");
    wait_until("the second attach was refused", DEADLINE, || {
        let text = std::fs::read_to_string(&errors).unwrap_or_default();
        async move { text.contains("already attached") }
    })
    .await;
    let pid = control.ok_pids("twice").await;
    assert!(daemon.stop().await.success());
    wait_gone(&pid, DEADLINE).await;
}

#[tokio::test]
async fn floods_and_oversized_messages_are_bounded_and_hurt_no_one_else() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let flooder = start_echo(&daemon, "flooder", &[]).await;
    let calm = start_echo(&daemon, "calm", &[]).await;
    let control = daemon.control().await;

    control
        .send("flooder", None, "flood 100000")
        .await
        .expect("Send flood");
    // While it floods, the other worker still answers.
    control.send("calm", None, "ping").await.expect("Send ping");
    events
        .wait_for("the calm worker's answer", |e| {
            e.program == "calm" && e.payload == b"echo: ping"
        })
        .await;

    // A worker cannot send more than 1 MiB: the SDK refuses with a clear error.
    control
        .send("calm", None, "big 2000000")
        .await
        .expect("Send big");
    let big = events
        .wait_for("big outcome", |e| {
            e.program == "calm" && e.payload.starts_with(b"big: ")
        })
        .await;
    let text = String::from_utf8_lossy(&big.payload);
    assert!(
        text.contains("larger than the 1048576-byte limit"),
        "{text}"
    );

    // Nor can a control client: a clear error, the daemon keeps serving.
    let too_big = control
        .send("calm", None, vec![b'x'; 16 * 1024 * 1024])
        .await
        .expect_err("16 MiB");
    // tonic answers an over-limit message with OUT_OF_RANGE and says why.
    assert_eq!(too_big.code(), Some(tonic::Code::OutOfRange), "{too_big:?}");
    assert!(too_big.to_string().contains("too large"), "{too_big}");
    let just_over = control
        .send("calm", None, vec![b'x'; 1024 * 1024 + 1])
        .await
        .expect_err("1 MiB + 1");
    assert_eq!(just_over.code(), Some(tonic::Code::InvalidArgument));
    assert!(just_over.to_string().contains("payload"), "{just_over}");
    control.list(None).await.expect("still serving");

    // The flood is bounded: the daemon keeps its memory.
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid()))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS");
    assert!(
        rss_kib < 128 * 1024,
        "daemon RSS {rss_kib} KiB after a flood"
    );
    assert!(daemon.stop().await.success());
    wait_gone(&[flooder, calm], DEADLINE).await;
}

#[tokio::test]
async fn another_user_is_refused_by_peer_credentials() {
    let daemon = Daemon::start(&[]).await;
    // Open the folder and socket to everyone, as a careless admin might: the
    // daemon must still refuse other users by the kernel's word for who they are.
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod socket");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(infantctl_bin())
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("status")
        .output()
        .expect("run infantctl as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nobody got in: {stderr}");
    assert!(
        stderr.contains("uid 65534 may not use this infantd"),
        "refused by peer credentials: {stderr}"
    );
    // The daemon's own user still gets in.
    let (status, _, _) = daemon.ctl(&["status"]);
    assert!(status.success());
    assert!(daemon.stop().await.success());
}
