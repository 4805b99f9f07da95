//! A hostile user against the daemon: clients that hold connections or stop
//! reading, a stderr nobody reads, paths that belong to someone else, start-up
//! files that are not files. Each test failed before its fix.

pub mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use infant::proto::{self, ProgramKind};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A command for `infantd --socket DIR/d.sock ARGS…` in `dir`, with logging at
/// `log` (the harness default is info).
fn infantd(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(infantd_bin());
    command
        .current_dir(dir)
        .arg("--socket")
        .arg(dir.join("d.sock"))
        .args(args);
    command
}

/// Limits the open files of the process `command` starts to `soft`/`hard`.
fn with_nofile(command: &mut Command, soft: u64, hard: u64) {
    // SAFETY: setrlimit is async-signal-safe and touches nothing but the child.
    unsafe {
        command.pre_exec(move || {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, soft, hard)
                .map_err(std::io::Error::from)
        });
    }
}

/// The "Max open files" soft and hard limits of `pid`.
fn nofile_of(pid: i32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    (fields[0], fields[1])
}

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// Bytes written to the pipe at `path` and not read yet.
fn unread_bytes(path: &str) -> usize {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(pipe) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    else {
        return 0;
    };
    let mut unread: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer given.
    if unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut unread) } != 0 {
        return 0;
    }
    usize::try_from(unread).unwrap_or(0)
}

/// `infantctl status` answers within `deadline` (it is killed past it).
async fn status_answers(daemon: &Daemon, deadline: Duration) -> bool {
    let mut child = Command::new(infantctl_bin())
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("status")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("infantctl");
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.success();
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `command` (an infantd expected to refuse to start) to its exit, which
/// must come within the deadline; its status and stderr.
async fn refused_start(mut command: Command) -> (std::process::ExitStatus, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("infantd");
    let status = wait_child(&mut child, DEADLINE).await;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("stderr");
    }
    (status, stderr)
}

/// SIGKILLs the one worker of `program` and waits until another process is `ok`
/// in its place.
async fn killed_worker_is_respawned(daemon: &Daemon, program: &str) {
    let mut client = daemon.client().await;
    let old = ok_pids(&mut client, program).await;
    assert_eq!(old.len(), 1, "{program}: {old:?}");
    kill(Pid::from_raw(old[0] as i32), Signal::SIGKILL).expect("kill worker");
    wait_until(
        &format!("{program}'s worker to be respawned"),
        DEADLINE,
        || {
            let mut client = client.clone();
            let old = old[0];
            async move {
                let pids = ok_pids(&mut client, program).await;
                pids.len() == 1 && pids[0] != old
            }
        },
    )
    .await;
    wait_gone(&old, DEADLINE).await;
}

// ---- 3. descriptors ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    let dir = short_tempdir();
    let mut command = infantd(dir.path(), &[]);
    with_nofile(&mut command, 256, 1024);
    let socket = dir.path().join("d.sock");
    let daemon = Daemon::launch(command, dir, socket).await;
    assert_eq!(nofile_of(daemon.pid()), (1024, 1024));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_remote_connections_cannot_starve_supervision() {
    let dir = short_tempdir();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cr3t").expect("token");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut command = infantd(
        dir.path(),
        &[
            "--control-listen",
            &address,
            "--token-file",
            "token",
            "--insecure-plaintext",
        ],
    );
    with_nofile(&mut command, 256, 256);
    let socket = dir.path().join("d.sock");
    let daemon = Daemon::launch(command, dir, socket).await;
    let mut client = daemon.client().await;
    start_program(
        &mut client,
        "sleeper",
        spec(ProgramKind::Child, &["sleep", "1000"]),
    )
    .await;
    wait_program(&client, "sleeper", "sleeper ok", DEADLINE, |p| {
        p.status == proto::ProgramStatus::Ok as i32
    })
    .await;

    // More idle connections than the daemon has descriptors: the kernel
    // completes each handshake (they queue in the backlog) whether or not the
    // daemon accepts them.
    let mut idle = Vec::new();
    for _ in 0..400 {
        // A full backlog drops the handshake: enough connections are open then.
        let connect = tokio::net::TcpStream::connect(&address);
        match tokio::time::timeout(Duration::from_secs(3), connect).await {
            Ok(Ok(stream)) => idle.push(stream),
            _ => break,
        }
    }
    // The daemon holds what it accepted, the kernel queues more (the backlog).
    eprintln!("{} idle connections open", idle.len());
    assert!(
        idle.len() > 200,
        "only {} connections could be opened",
        idle.len()
    );
    // Give the daemon time to accept what it will.
    tokio::time::sleep(Duration::from_secs(1)).await;

    assert!(
        status_answers(&daemon, DEADLINE).await,
        "infantctl status on the Unix socket did not answer with 400 idle remote connections"
    );
    killed_worker_is_respawned(&daemon, "sleeper").await;
    // And a remote client still gets through once idle ones go.
    idle.truncate(0);
    wait_until("a remote call to succeed", DEADLINE, || {
        let url = format!("http://{address}");
        async move {
            let Ok(channel) = tonic::transport::Endpoint::from_shared(url)
                .expect("url")
                .connect()
                .await
            else {
                return false;
            };
            let mut client = proto::supervisor_client::SupervisorClient::with_interceptor(
                channel,
                |mut request: tonic::Request<()>| {
                    request
                        .metadata_mut()
                        .insert("authorization", "Bearer s3cr3t".parse().expect("ascii"));
                    Ok(request)
                },
            );
            client.list(proto::ListRequest::default()).await.is_ok()
        }
    })
    .await;
    daemon.stop().await;
}

// ---- 4. watchers that stop reading ------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_watcher_does_not_grow_the_daemon() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let worker = example_bin("echo_worker");
    start_program(
        &mut client,
        "echo",
        spec(ProgramKind::Child, &[worker.to_str().expect("utf-8")]),
    )
    .await;
    wait_program(&client, "echo", "echo ok", DEADLINE, |p| {
        p.status == proto::ProgramStatus::Ok as i32
    })
    .await;

    // A watcher that stops reading (as `infantctl events --follow` does when
    // its terminal is suspended): it reads one replayed event, so its
    // subscription is in place, and then nothing.
    let mut stalled = daemon
        .client()
        .await
        .events(proto::EventsRequest {
            name: String::new(),
            replay: true,
            follow: Some(true),
            last: None,
        })
        .await
        .expect("Events")
        .into_inner();
    stalled.message().await.expect("a replayed event");
    // A watcher that keeps reading, counting events (not keeping them). It may
    // miss some too when the ring moves on faster than it reads: it is told.
    let big = Arc::new(AtomicUsize::new(0));
    let accounted = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(Vec::new()));
    let mut live = client
        .events(proto::EventsRequest {
            name: String::new(),
            replay: false,
            follow: Some(true),
            last: None,
        })
        .await
        .expect("Events")
        .into_inner();
    let (counted, last_payload) = (Arc::clone(&big), Arc::clone(&last));
    let total = Arc::clone(&accounted);
    let reader = tokio::spawn(async move {
        while let Ok(Some(event)) = live.message().await {
            total.fetch_add(1 + event.missed as usize, Ordering::Relaxed);
            if is(&event, proto::EventKind::Message) {
                if event.payload.len() == 1_000_000 {
                    counted.fetch_add(1, Ordering::Relaxed);
                } else if let Ok(mut last) = last_payload.lock() {
                    *last = event.payload;
                }
            }
        }
    });
    let before = rss_kib(daemon.pid());

    // 300 messages of 1 MB each from the worker, 20 at a time.
    for i in 0..300 {
        client
            .send(proto::SendRequest {
                name: "echo".into(),
                worker: None,
                payload: b"big 1000000".to_vec(),
            })
            .await
            .expect("send");
        if i % 20 == 19 {
            // Each sends two messages: the big one and "big: sent".
            wait_until(
                "the reading watcher to get (or miss) them",
                DEADLINE,
                || {
                    let accounted = Arc::clone(&accounted);
                    async move { accounted.load(Ordering::Relaxed) >= 2 * (i + 1) }
                },
            )
            .await;
        }
    }
    let after = rss_kib(daemon.pid());
    // The reading watcher still works after the flood.
    client
        .send(proto::SendRequest {
            name: "echo".into(),
            worker: None,
            payload: b"still here".to_vec(),
        })
        .await
        .expect("send");
    wait_until("the echo after the flood", DEADLINE, || {
        let last = Arc::clone(&last);
        async move {
            last.lock()
                .is_ok_and(|l| l.as_slice() == b"echo: still here")
        }
    })
    .await;

    drop(stalled);
    reader.abort();
    daemon.stop().await;
    eprintln!(
        "daemon VmRSS {before} KiB before, {after} KiB after 300 MB past a stalled watcher; \
         the reading one got {} of the big messages",
        big.load(Ordering::Relaxed)
    );
    assert!(
        after < before + 64 * 1024,
        "the daemon grew from {before} KiB to {after} KiB"
    );
}

// ---- 5. a stderr nobody reads ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stderr_pipe_never_blocks_supervision() {
    let dir = short_tempdir();
    let mut command = infantd(dir.path(), &[]);
    // Debug logs a line per event; nobody ever reads the pipe.
    command.stderr(Stdio::piped()).env("INFANT_LOG", "debug");
    let socket = dir.path().join("d.sock");
    let daemon = Daemon::launch(command, dir, socket).await;
    let mut client = daemon.client().await;
    let worker = example_bin("echo_worker");
    start_program(
        &mut client,
        "echo",
        spec(ProgramKind::Child, &[worker.to_str().expect("utf-8")]),
    )
    .await;
    wait_program(&client, "echo", "echo ok", DEADLINE, |p| {
        p.status == proto::ProgramStatus::Ok as i32
    })
    .await;
    // Far more than a pipe holds (64 KiB): one debug line per message event.
    for _ in 0..5 {
        let _ = tokio::time::timeout(
            DEADLINE,
            client.send(proto::SendRequest {
                name: "echo".into(),
                worker: None,
                payload: b"flood 1000".to_vec(),
            }),
        )
        .await;
    }
    // The pipe is full: the test is not vacuous.
    let pid = daemon.pid();
    wait_until(
        "the daemon's stderr pipe to fill up",
        DEADLINE,
        || async move { unread_bytes(&format!("/proc/{pid}/fd/2")) >= 60 * 1024 },
    )
    .await;
    assert!(
        status_answers(&daemon, DEADLINE).await,
        "infantctl status did not answer while stderr was full"
    );
    killed_worker_is_respawned(&daemon, "echo").await;
    daemon.stop().await;
}

// ---- 7. unix listen paths ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_listen_path_where_a_socket_answers_is_refused() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;

    // The daemon's own control socket…
    let mut own = spec(ProgramKind::Child, &["sleep", "1000"]);
    own.listen = vec![format!("unix://{}", daemon.socket.display())];
    let refused = start_program_result(&mut client, "own", own)
        .await
        .expect_err("the control socket is refused");
    assert!(
        refused.message().contains("already listening"),
        "{}",
        refused.message()
    );
    assert!(status_answers(&daemon, DEADLINE).await);

    // …and another service's.
    let theirs = daemon.dir.path().join("theirs.sock");
    let service = std::os::unix::net::UnixListener::bind(&theirs).expect("bind");
    let mut other = spec(ProgramKind::Child, &["sleep", "1000"]);
    other.listen = vec![format!("unix://{}", theirs.display())];
    let refused = start_program_result(&mut client, "other", other)
        .await
        .expect_err("a live socket is refused");
    assert!(refused.message().contains("other"), "{}", refused.message());
    std::os::unix::net::UnixStream::connect(&theirs).expect("their socket still answers");
    drop(service);

    // A socket nobody answers on is a leftover and is replaced.
    let mut stale = spec(ProgramKind::Child, &["sleep", "1000"]);
    stale.listen = vec![format!("unix://{}", theirs.display())];
    start_program(&mut client, "stale", stale).await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_listen_path_replaced_while_bound_is_left_alone() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let path = daemon.dir.path().join("web.sock");
    let mut web = spec(ProgramKind::Child, &["sleep", "1000"]);
    web.listen = vec![format!("unix://{}", path.display())];
    start_program(&mut client, "web", web).await;

    // Someone else takes the path over while the program runs.
    std::fs::remove_file(&path).expect("rm");
    let service = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    client
        .stop(proto::StopRequest {
            name: "web".into(),
            timeout_ms: None,
        })
        .await
        .expect("stop");
    assert!(
        path.exists(),
        "the daemon removed a socket it did not create"
    );
    std::os::unix::net::UnixStream::connect(&path).expect("their socket still answers");
    drop(service);
    daemon.stop().await;
}

// ---- 8. the control socket at shutdown ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_a_control_socket_another_daemon_now_serves() {
    let mut first = Daemon::start(&[]).await;
    // The path is freed and a second daemon takes it.
    std::fs::remove_file(&first.socket).expect("rm");
    let dir = short_tempdir();
    let mut second_command = Command::new(infantd_bin());
    second_command.arg("--socket").arg(&first.socket);
    let socket = first.socket.clone();
    let second = Daemon::launch(second_command, dir, socket).await;

    // Not `stop()`: that would drop the first daemon's folder, which holds the
    // socket.
    first.signal(Signal::SIGTERM);
    let status = first.wait_exit(DEADLINE).await;
    assert!(status.success(), "{status:?}");
    assert!(
        second.socket.exists(),
        "the first daemon removed the second one's socket"
    );
    assert!(status_answers(&second, DEADLINE).await);
    second.stop().await;
    drop(first);
}

// ---- 9. paths handed to workers, refused attaches ----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_socket_reaches_workers_in_another_folder() {
    let dir = short_tempdir();
    std::fs::create_dir(dir.path().join("elsewhere")).expect("mkdir");
    let mut command = Command::new(infantd_bin());
    command.args(["--socket", "d.sock"]);
    let socket = dir.path().join("d.sock");
    let daemon = Daemon::launch(command, dir, socket).await;
    let mut client = daemon.client().await;
    let worker = example_bin("echo_worker");
    let mut echo = spec(ProgramKind::Child, &[worker.to_str().expect("utf-8")]);
    echo.cwd = daemon.dir.path().join("elsewhere").display().to_string();
    start_program(&mut client, "echo", echo).await;
    wait_program(&client, "echo", "the worker to attach", DEADLINE, |p| {
        p.status == proto::ProgramStatus::Ok as i32
    })
    .await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_attach_is_named_in_the_programs_error() {
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let worker = example_bin("echo_worker");
    let command = format!("INFANT_TOKEN=wrong exec {}", worker.display());
    let mut echo = spec(ProgramKind::Child, &["sh", "-c", &command]);
    echo.respawn = Some(false);
    let _ = start_program_result(&mut client, "echo", echo).await;
    wait_program(
        &client,
        "echo",
        "the refused attach in the error",
        DEADLINE,
        |p| p.error.contains("refused its attach") && p.error.contains("wrong token"),
    )
    .await;
    daemon.stop().await;
}

// ---- 10. INFANT_* in a program's env -----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_env_may_not_set_infant_variables() {
    // Over the API…
    let daemon = Daemon::start(&[]).await;
    let mut client = daemon.client().await;
    let mut bad = spec(ProgramKind::Child, &["sleep", "1000"]);
    bad.env.insert("INFANT_SOCKET".into(), "/elsewhere".into());
    bad.env.insert("PORT".into(), "80".into());
    let refused = start_program_result(&mut client, "bad", bad)
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let message = refused.message();
    assert!(
        message.contains("bad") && message.contains("env") && message.contains("INFANT_SOCKET"),
        "{message}"
    );
    daemon.stop().await;

    // …and in a config file, before anything starts.
    let dir = short_tempdir();
    std::fs::write(
        dir.path().join("app.toml"),
        "[program.web]\ncommand = [\"sleep\", \"1000\"]\nenv = { INFANT_TOKEN = \"x\", LISTEN_FDS = \"3\" }\n",
    )
    .expect("config");
    let mut command = Command::new(infantd_bin());
    command
        .current_dir(dir.path())
        .args(["--socket", "d.sock", "--config", "app.toml"]);
    let (status, stderr) = refused_start(command).await;
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("web") && stderr.contains("INFANT_TOKEN, LISTEN_FDS"),
        "{stderr}"
    );
}

// ---- 11. a token file that is a FIFO -----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_that_is_a_fifo_is_refused_at_once() {
    let dir = short_tempdir();
    let fifo = dir.path().join("token");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let mut command = Command::new(infantd_bin());
    command.current_dir(dir.path()).args([
        "--socket",
        "d.sock",
        "--control-listen",
        "127.0.0.1:0",
        "--token-file",
        "token",
        "--insecure-plaintext",
    ]);
    let (status, stderr) = refused_start(command).await;
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("--token-file") && stderr.contains("not a regular file"),
        "{stderr}"
    );
}
