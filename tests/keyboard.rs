//! `infantctl` for the person at the keyboard: suggestions for mistyped names,
//! the `--` hint, `status NAME...`, progress lines on a terminal (and none in a
//! pipe), colour only on a terminal, completions and the man page.

pub mod common;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use common::*;

/// Runs `infantctl --socket … ARGS` with stdout on a pseudo-terminal; returns
/// (exit status, what the terminal showed, stderr).
fn ctl_on_a_terminal(
    daemon: &Daemon,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String, String) {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave: OwnedFd = pty.slave;
    let mut child = Command::new(infantctl_bin())
        .arg("--socket")
        .arg(&daemon.socket)
        .args(args)
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave.try_clone().expect("dup the pty")))
        .stderr(Stdio::piped())
        .spawn()
        .expect("run infantctl");
    // Only the child holds the terminal now: its exit ends the reads.
    drop(slave);
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut shown = Vec::new();
        let mut buffer = [0u8; 4096];
        // EIO once the other side is closed.
        while let Ok(n) = master.read(&mut buffer) {
            if n == 0 {
                break;
            }
            shown.extend_from_slice(&buffer[..n]);
        }
        String::from_utf8_lossy(&shown).into_owned()
    });
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let status = child.wait().expect("wait for infantctl");
    let shown = reader.join().expect("the pty reader");
    (status, shown, stderr)
}

async fn daemon_with_pool(count: u32) -> Daemon {
    let daemon = Daemon::start(&[]).await;
    daemon.start_sleepers("pool", count);
    daemon
}

#[tokio::test]
async fn a_rolling_restart_shows_one_line_per_worker_on_a_terminal_and_none_in_a_pipe() {
    let daemon = daemon_with_pool(3).await;

    let (status, shown, stderr) = ctl_on_a_terminal(&daemon, &["restart", "pool"], &[]);
    assert!(status.success(), "{stderr}");
    let replaced = shown
        .lines()
        .filter(|l| l.contains(" replaced by pool/"))
        .count();
    assert_eq!(replaced, 3, "one line per worker replaced:\n{shown}");
    assert!(shown.contains("pool: 3 workers replaced in "), "{shown}");
    // The final program line, its status coloured.
    assert!(shown.contains("\u{1b}["), "colour on a terminal: {shown:?}");

    // A pipe: the program line alone, no colour.
    let (status, stdout, stderr) = daemon.ctl(&["restart", "pool"]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("pool: ok (cluster, 3/3 running"),
        "{stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");

    // --json streams the steps as objects, in a pipe too.
    let (status, stdout, _) = daemon.ctl(&["restart", "pool", "--json"]);
    assert!(status.success());
    let steps: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(
        steps.iter().filter(|s| s["step"] == "replaced").count(),
        3,
        "{stdout}"
    );
    assert_eq!(steps.last().expect("the program")["name"], "pool");

    // NO_COLOR turns colour off on a terminal.
    let (_, shown, _) = ctl_on_a_terminal(&daemon, &["status"], &[("NO_COLOR", "1")]);
    assert!(!shown.contains('\u{1b}'), "{shown:?}");
    let (_, shown, _) = ctl_on_a_terminal(&daemon, &["status"], &[]);
    assert!(shown.contains("\u{1b}["), "{shown:?}");
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

#[tokio::test]
async fn mistyped_names_get_a_suggestion_and_status_takes_names() {
    let daemon = daemon_with_pool(1).await;
    for args in [
        &["stop", "pol"][..],
        &["status", "pool", "poool"],
        &["workers", "pools"],
    ] {
        let (status, _, stderr) = daemon.ctl(args);
        assert_eq!(status.code(), Some(4), "{args:?}: {stderr}");
        assert!(
            stderr.contains("did you mean `pool`?"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    let (status, _, stderr) = daemon.ctl(&["stop", "zzzzzz"]);
    assert_eq!(status.code(), Some(4));
    assert!(!stderr.contains("did you mean"), "{stderr}");

    let (status, stdout, _) = daemon.ctl(&["status", "pool", "--json"]);
    assert!(status.success());
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

#[test]
fn an_inline_command_without_dashes_gets_a_hint() {
    let out = Command::new(infantctl_bin())
        .args(["start", "x", "sleep", "100"])
        .stdin(Stdio::null())
        .output()
        .expect("run infantctl");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("infantctl start x -- sleep 100"),
        "{stderr}"
    );
}

#[test]
fn completions_and_the_man_page_are_generated() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef infantctl"),
        ("fish", "complete -c infantctl"),
    ] {
        let out = Command::new(infantctl_bin())
            .args(["completions", shell])
            .env("INFANT_SOCKET", "/nonexistent/needs-no-daemon.sock")
            .stdin(Stdio::null())
            .output()
            .expect("run infantctl");
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("restart"), "{shell} completes subcommands");
    }
    let out = Command::new(infantctl_bin())
        .arg("man")
        .stdin(Stdio::null())
        .output()
        .expect("run infantctl");
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH infantctl"), "{page}");
}
