//! infantd under a service manager: the notify messages it sends (to a notify
//! socket the test binds), socket activation of its control socket (a socket the
//! test binds and passes as fd 3), what it keeps from its programs' environment,
//! and root's default socket.

pub mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The environment of a running process, one `KEY=VALUE` per entry.
fn environment_of(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .expect("read the program's environment")
        .split(|&b| b == 0)
        .map(|entry| String::from_utf8_lossy(entry).into_owned())
        .collect()
}

/// The daemon's own service-manager variables that must not reach programs.
fn leaked(env: &[String]) -> Vec<&String> {
    env.iter()
        .filter(|entry| {
            [
                "NOTIFY_SOCKET=",
                "WATCHDOG_USEC=",
                "WATCHDOG_PID=",
                "LISTEN_",
            ]
            .iter()
            .any(|prefix| entry.starts_with(prefix))
        })
        .collect()
}

const TWO_PROGRAMS: &str = r#"
[program.db]
command = ["sleep", "1000"]
start_grace = "50ms"

[program.web]
kind = "cluster"
count = 2
command = ["sleep", "1000"]
start_grace = "50ms"
after = ["db"]
"#;

#[tokio::test]
async fn infantd_sends_ready_status_watchdog_and_stopping() {
    let dir = short_tempdir();
    std::fs::write(dir.path().join("app.toml"), TWO_PROGRAMS).expect("write app.toml");
    let notify_path = dir.path().join("notify.sock");
    let mut manager = NotifySocket::bind(&notify_path);
    let socket = dir.path().join("d.sock");
    let mut command = Command::new(infantd_bin());
    command
        .arg("--socket")
        .arg(&socket)
        .args(["--config", "app.toml"])
        .env("NOTIFY_SOCKET", &notify_path)
        // Pings every 250 ms.
        .env("WATCHDOG_USEC", "500000")
        .env_remove("WATCHDOG_PID");
    let daemon = Daemon::start_command(command, dir, socket).await;

    let ready = manager.wait_for("READY=1", |line| line == "READY=1");
    assert!(
        ready
            .lines()
            .any(|l| l == "STATUS=2 programs, 3 instances ok"),
        "READY=1 comes after the start-up, with the summary: {ready:?}"
    );
    // The programs are up by then.
    let mut client = daemon.client().await;
    assert_eq!(ok_pids(&mut client, "web").await.len(), 2);

    let started = Instant::now();
    manager.wait_for("a first WATCHDOG=1", |line| line == "WATCHDOG=1");
    manager.wait_for("a second WATCHDOG=1", |line| line == "WATCHDOG=1");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "pings at half WATCHDOG_USEC, not at some slow pace"
    );

    // A change shows in STATUS=.
    client
        .stop(infant::proto::StopRequest {
            name: "web".into(),
            timeout_ms: None,
        })
        .await
        .expect("Stop web");
    manager.wait_for("STATUS= after web stopped", |line| {
        line == "STATUS=1 program, 1 instance ok"
    });

    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    manager.wait_for("STOPPING=1", |line| line == "STOPPING=1");
    let mut daemon = daemon;
    assert!(daemon.wait_exit(DEADLINE).await.success());
}

#[tokio::test]
async fn programs_never_see_the_daemons_notify_socket_or_watchdog() {
    let dir = short_tempdir();
    let notify_path = dir.path().join("notify.sock");
    let _manager = NotifySocket::bind(&notify_path);
    let socket = dir.path().join("d.sock");
    let mut command = Command::new(infantd_bin());
    command
        .arg("--socket")
        .arg(&socket)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "60000000")
        .args(["--", "sleep", "1000"]);
    let daemon = Daemon::start_command(command, dir, socket).await;
    let mut client = daemon.client().await;
    wait_program(&client, "main", "main ok", DEADLINE, |p| p.running == 1).await;
    let pids = ok_pids(&mut client, "main").await;
    let env = environment_of(pids[0]);
    assert!(
        env.iter().any(|e| e.starts_with("INFANT_PROGRAM=main")),
        "read the right environment: {env:?}"
    );
    assert!(leaked(&env).is_empty(), "leaked: {:?}", leaked(&env));
    daemon.stop().await;
}

#[tokio::test]
async fn infantd_serves_a_socket_passed_by_socket_activation() {
    let dir = short_tempdir();
    let socket = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&socket).expect("bind the control socket");
    let fd = listener.as_raw_fd();
    let mut command = Command::new("sh");
    // LISTEN_PID must be infantd's own pid: `sh` sets it to its own and execs
    // infantd, which keeps that pid. (Setting it in `pre_exec` would allocate
    // between fork and exec.)
    command
        .arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" -- sleep 1000")
        .arg(infantd_bin())
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "control")
        .env_remove("LISTEN_PID")
        .env_remove("INFANT_SOCKET");
    // SAFETY: dup2 is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec: clear it instead.
            let done = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if done < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let daemon = Daemon::start_command(command, dir, socket.clone()).await;
    drop(listener); // the daemon has its own copy

    let mut client = daemon.client().await;
    wait_program(&client, "main", "main ok", DEADLINE, |p| p.running == 1).await;
    // The workers are told the activated socket's path.
    let pids = ok_pids(&mut client, "main").await;
    let env = environment_of(pids[0]);
    let expected = format!("INFANT_SOCKET={}", socket.display());
    assert!(env.contains(&expected), "{expected} in {env:?}");
    assert!(leaked(&env).is_empty(), "leaked: {:?}", leaked(&env));

    let (status, out, err) = daemon.ctl(&["status"]);
    assert!(
        status.success(),
        "infantctl over the activated socket: {err}"
    );
    assert!(out.contains("main"), "{out}");
    let mut daemon = daemon;
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(daemon.wait_exit(DEADLINE).await.success());
    // The socket belongs to the service manager: it stays for the next start.
    assert!(
        daemon.socket.exists(),
        "the activated socket file was removed"
    );
}

#[tokio::test]
async fn a_root_daemon_without_xdg_runtime_dir_uses_run_infant() {
    if !nix::unistd::getuid().is_root() {
        println!("skipped: not running as root");
        return;
    }
    let socket = Path::new("/run/infant/infantd.sock");
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        println!("skipped: a daemon already serves {}", socket.display());
        return;
    }
    let dir = short_tempdir();
    let mut command = Command::new(infantd_bin());
    command
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("INFANT_SOCKET")
        .args(["--", "sleep", "1000"]);
    let daemon = Daemon::start_command(command, dir, socket.to_path_buf()).await;
    // infantctl finds it by the same default.
    let out = Command::new(infantctl_bin())
        .arg("status")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("INFANT_SOCKET")
        .output()
        .expect("run infantctl");
    assert!(
        out.status.success(),
        "infantctl status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(daemon.stop().await.success());
    assert!(!socket.exists(), "the daemon removes its own socket");
}
