//! Program output: what instances write lands in `NAME.out.log`/`NAME.err.log`
//! with a timestamp and the worker id, rotates without losing a line, reads back
//! with `infantctl logs` and the `Logs` RPC (also for a worker that has exited),
//! never slows the daemon down, and survives a full disk; output it could not
//! write is counted per program and per worker.

pub mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use infant::proto::{LogLine, LogStream, LogsRequest};

/// A daemon whose own stdout and stderr go to files in its folder, so a test
/// can check what the daemon itself printed.
struct Logged {
    daemon: Daemon,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Logged {
    /// `infantd --config app.toml ARGS…` (`config` written first), with `wrapper`
    /// in front if not empty.
    async fn start(config: &str, args: &[&str], wrapper: &[String]) -> Logged {
        let dir = short_tempdir();
        std::fs::write(dir.path().join("app.toml"), config).expect("write app.toml");
        let socket = dir.path().join("d.sock");
        let stdout = dir.path().join("daemon.out");
        let stderr = dir.path().join("daemon.err");
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(infantd_bin());
                command
            }
            None => Command::new(infantd_bin()),
        };
        command
            .arg("--socket")
            .arg(&socket)
            .args(["--config", "app.toml"])
            .args(args)
            .stdout(std::fs::File::create(&stdout).expect("daemon stdout"))
            .stderr(std::fs::File::create(&stderr).expect("daemon stderr"));
        let daemon = Daemon::start_command(command, dir, socket).await;
        Logged {
            daemon,
            stdout,
            stderr,
        }
    }

    /// The daemon's own output so far, stdout then stderr.
    fn own_output(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("{}{}", read(&self.stdout), read(&self.stderr))
    }

    /// The default log folder of a test daemon (`$XDG_STATE_HOME/infant/logs`).
    fn log_dir(&self) -> PathBuf {
        self.daemon.dir.path().join("infant").join("logs")
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Waits until the file at `path` holds `text`; returns its content.
async fn wait_for_text(path: &Path, text: &str) -> String {
    poll(DEADLINE, || async {
        Some(read(path)).filter(|t| t.contains(text))
    })
    .await
    .unwrap_or_else(|| panic!("{} never held {text:?}: {:?}", path.display(), read(path)))
}

/// Splits a log file line `TIME NAME/ID TEXT` and checks the time.
fn parts(line: &str) -> (&str, &str) {
    let mut fields = line.splitn(3, ' ');
    let time = fields.next().unwrap_or_default();
    let who = fields.next().unwrap_or_default();
    let text = fields.next().unwrap_or_default();
    let parsed = humantime::parse_rfc3339(time)
        .unwrap_or_else(|e| panic!("{line:?} does not start with an RFC 3339 time: {e}"));
    let age = std::time::SystemTime::now()
        .duration_since(parsed)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(600), "{line:?}: time is off");
    assert!(time.ends_with('Z'), "{line:?}: not UTC");
    (who, text)
}

#[tokio::test]
async fn output_of_each_worker_lands_in_its_programs_files_with_time_and_id() {
    let config = r#"
[program.talk]
kind = "cluster"
count = 2
command = ["sh", "-c", "echo \"hello from $INFANT_WORKER_ID\"; echo \"trouble in $INFANT_WORKER_ID\" >&2; printf 'bin\\377\\376ary\\n'; exec sleep 1000"]

[program.sock]
listen = ["tcp://127.0.0.1:0"]
command = ["sh", "-c", "echo \"fd3 $(readlink /proc/self/fd/3) $LISTEN_FDS\"; exec sleep 1000"]

[program.loud]
log = "inherit"
command = ["sh", "-c", "echo 'inherited line'; exec sleep 1000"]

[program.quiet]
log = "off"
command = ["sh", "-c", "echo 'silenced line'; exec sleep 1000"]
"#;
    let logged = Logged::start(config, &[], &[]).await;
    let dir = logged.log_dir();
    // Files only grow: once both lines are seen, the last read holds both.
    wait_for_text(&dir.join("talk.out.log"), "hello from 2").await;
    let out = wait_for_text(&dir.join("talk.out.log"), "hello from 1").await;
    wait_for_text(&dir.join("talk.err.log"), "trouble in 2").await;
    let err = wait_for_text(&dir.join("talk.err.log"), "trouble in 1").await;

    for (text, word) in [(&out, "hello from"), (&err, "trouble in")] {
        let mut seen = Vec::new();
        for line in text.lines().filter(|l| l.contains(word)) {
            let (who, said) = parts(line);
            let id = who.strip_prefix("talk/").expect("NAME/ID");
            assert_eq!(said, format!("{word} {id}"), "{line:?}: wrong worker id");
            seen.push(id.to_owned());
        }
        seen.sort();
        assert_eq!(seen, ["1", "2"], "{text}");
    }
    assert!(
        !out.contains("trouble"),
        "stderr kept out of the out file: {out}"
    );
    assert!(
        !err.contains("hello"),
        "stdout kept out of the err file: {err}"
    );
    // Captured output and a listen socket at fd 3 together.
    let sock = wait_for_text(&dir.join("sock.out.log"), "fd3 ").await;
    assert!(
        sock.contains("fd3 socket:[") && sock.trim_end().ends_with(" 1"),
        "{sock}"
    );
    // Bytes as written, invalid UTF-8 included.
    let raw = std::fs::read(dir.join("talk.out.log")).expect("read");
    assert!(
        raw.windows(8).any(|w| w == b"bin\xff\xfeary"),
        "binary output passed through"
    );

    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    // The tests run as root: a system daemon's modes.
    if nix::unistd::geteuid().is_root() {
        assert_eq!(mode(&dir.join("talk.out.log")), 0o640);
        assert_eq!(mode(&dir), 0o750);
    } else {
        assert_eq!(mode(&dir.join("talk.out.log")), 0o600);
        assert_eq!(mode(&dir), 0o700);
    }

    // `inherit` goes to the daemon's own stdout; nothing else does.
    wait_until(
        "the inherited line in the daemon's output",
        DEADLINE,
        || async { logged.own_output().contains("inherited line") },
    )
    .await;
    let own = logged.own_output();
    for captured in ["hello from", "trouble in", "silenced line"] {
        assert!(
            !own.contains(captured),
            "{captured:?} in the daemon's log: {own}"
        );
    }
    assert!(
        !dir.join("quiet.out.log").exists(),
        "log = off writes no file"
    );
    assert!(
        !dir.join("loud.out.log").exists(),
        "log = inherit writes no file"
    );
    logged.daemon.stop().await;
}

/// The lines of `text` that `parts` accepts, as (worker id, text), for `program`.
fn lines_of<'a>(text: &'a str, program: &str) -> Vec<(&'a str, &'a str)> {
    text.lines()
        .map(|line| {
            let (who, said) = parts(line);
            let id = who
                .strip_prefix(program)
                .and_then(|rest| rest.strip_prefix('/'))
                .unwrap_or_else(|| panic!("{line:?}: not {program}'s"));
            (id, said)
        })
        .collect()
}

#[tokio::test]
async fn many_instances_writing_at_once_each_land_whole_and_in_order() {
    // Six workers write stdout and stderr line by line at the same time, and
    // a job that exits at once leaves its output in the pipe, the last line
    // without a newline: the daemon reads them all together.
    let config = r#"
[program.chorus]
kind = "cluster"
count = 6
command = ["sh", "-c", "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo \"$INFANT_WORKER_ID out $i\"; echo \"$INFANT_WORKER_ID err $i\" >&2; done; exec sleep 1000"]

[program.solo]
kind = "once"
command = ["sh", "-c", "seq 1 5000; printf 'the end without a newline'"]
"#;
    let logged = Logged::start(config, &[], &[]).await;
    let dir = logged.log_dir();
    let solo = wait_for_text(&dir.join("solo.out.log"), "the end without a newline").await;
    let lines = lines_of(&solo, "solo");
    let said: Vec<&str> = lines.iter().map(|(_, said)| *said).collect();
    let expected: Vec<String> = (1..=5000)
        .map(|i| i.to_string())
        .chain(["the end without a newline".to_owned()])
        .collect();
    assert_eq!(said, expected, "the job's output, whole and in order");

    for stream in ["out", "err"] {
        let path = dir.join(format!("chorus.{stream}.log"));
        let text = poll(DEADLINE, || async {
            Some(read(&path)).filter(|t| t.lines().count() >= 6 * 2000)
        })
        .await
        .unwrap_or_else(|| panic!("{} never got every line", path.display()));
        let mut seen: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
        for (id, said) in lines_of(&text, "chorus") {
            // Each line in the file of its worker's stream, under its id.
            let mut fields = said.split(' ');
            assert_eq!(fields.next(), Some(id), "{said:?}: under worker {id}");
            assert_eq!(
                fields.next(),
                Some(stream),
                "{said:?}: in the {stream} file"
            );
            let number = fields.next().and_then(|n| n.parse().ok());
            seen.entry(id).or_default().push(number.expect("a number"));
        }
        assert_eq!(seen.len(), 6, "six workers: {:?}", seen.keys());
        for (id, numbers) in seen {
            assert!(
                numbers.iter().copied().eq(1..=2000),
                "worker {id}'s {stream}: lines lost, doubled or out of order"
            );
        }
    }
    logged.daemon.stop().await;
}

#[tokio::test]
async fn rotation_keeps_log_keep_files_and_loses_no_line() {
    // ~40-byte lines: 4000 of them are ~160 KiB, well past the four 16 KiB
    // files kept, so rotation happens a dozen times and the oldest are dropped.
    let config = r#"
[program.rot]
kind = "once"
log_max_size = "16KiB"
log_keep = 3
command = ["sh", "-c", "i=0; while [ $i -lt 4000 ]; do echo \"line $i\"; i=$((i+1)); done"]
"#;
    let logged = Logged::start(config, &[], &[]).await;
    let dir = logged.log_dir();
    let current = dir.join("rot.out.log");
    wait_for_text(&current, "line 3999\n").await;

    let rotated = |n: u32| dir.join(format!("rot.out.log.{n}"));
    for n in 1..=3 {
        assert!(rotated(n).exists(), "rot.out.log.{n} kept");
    }
    assert!(!rotated(4).exists(), "only log_keep rotated files");
    let mut numbers = Vec::new();
    for path in [rotated(3), rotated(2), rotated(1), current.clone()] {
        let text = read(&path);
        assert!(
            text.len() <= 16 * 1024,
            "{} is over log_max_size",
            path.display()
        );
        for line in text.lines() {
            let (who, said) = parts(line);
            assert_eq!(who, "rot/1");
            let n: u32 = said
                .strip_prefix("line ")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a whole line: {line:?}"));
            numbers.push(n);
        }
    }
    // The newest lines, each exactly once, none missing across the rotations.
    let first = numbers[0];
    let expected: Vec<u32> = (first..4000).collect();
    assert_eq!(
        numbers, expected,
        "lines lost or repeated across a rotation"
    );
    assert!(
        first > 0,
        "the oldest lines were dropped with the oldest file"
    );
    logged.daemon.stop().await;
}

/// Lines of the `Logs` RPC until `count` have come (or the stream ended).
async fn collect(stream: &mut tonic::Streaming<LogLine>, count: usize) -> Vec<LogLine> {
    let mut lines = Vec::new();
    while lines.len() < count {
        match tokio::time::timeout(DEADLINE, stream.message()).await {
            Ok(Ok(Some(line))) => lines.push(line),
            Ok(Ok(None)) => break,
            Ok(Err(status)) => panic!("Logs failed: {status}"),
            Err(_) => panic!("timed out after {} of {count} lines", lines.len()),
        }
    }
    lines
}

fn text(line: &LogLine) -> String {
    String::from_utf8_lossy(&line.line).into_owned()
}

#[tokio::test]
async fn logs_reads_the_last_lines_and_follows_also_after_the_worker_exited() {
    let config = r#"
[program.job]
kind = "once"
command = ["sh", "-c", "for i in 1 2 3 4 5 6; do echo \"done $i\"; done; echo 'job failed' >&2"]

[program.ticker]
command = ["sh", "-c", "i=0; while :; do echo \"tick $i\"; i=$((i+1)); sleep 0.05; done"]
"#;
    let logged = Logged::start(config, &[], &[]).await;
    let daemon = &logged.daemon;
    let control = daemon.control().await;
    wait_for_text(&logged.log_dir().join("job.err.log"), "job failed").await;

    // The job has exited: its last lines are still there, through the RPC ...
    let request = |name: &str, last, stream: LogStream, follow| LogsRequest {
        name: name.into(),
        worker: None,
        stream: stream as i32,
        last: Some(last),
        follow,
    };
    let mut stream = control
        .logs(request("job", 3, LogStream::Out, false))
        .await
        .expect("Logs");
    let lines = collect(&mut stream, 10).await;
    let texts: Vec<String> = lines.iter().map(text).collect();
    assert_eq!(texts, ["done 4", "done 5", "done 6"]);
    assert!(lines.iter().all(|l| l.worker == 1 && l.program == "job"));
    let mut stream = control
        .logs(request("job", 10, LogStream::Err, false))
        .await
        .expect("Logs");
    let texts: Vec<String> = collect(&mut stream, 10).await.iter().map(text).collect();
    assert_eq!(texts, ["job failed"]);

    // ... and through `infantctl logs`, stderr marked.
    let (status, stdout, stderr) = daemon.ctl(&["logs", "job/1", "-n", "2"]);
    assert!(status.success(), "{stderr}");
    let printed: Vec<&str> = stdout.lines().collect();
    assert_eq!(printed.len(), 2, "{stdout}");
    assert!(printed[0].ends_with(" job/1 | done 6"), "{stdout}");
    assert!(printed[1].ends_with(" job/1 ! job failed"), "{stdout}");
    parts(printed[0]);
    let (status, stdout, _) = daemon.ctl(&["--json", "logs", "job", "-n", "1", "--out"]);
    assert!(status.success());
    let object: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(object["line"], "done 6");
    assert_eq!(object["stream"], "out");
    assert_eq!(object["worker"], 1);
    let (status, _, stderr) = daemon.ctl(&["logs", "nosuch"]);
    assert_eq!(status.code(), Some(4), "unknown program: {stderr}");

    // Following: new lines keep coming, in order.
    let mut stream = control
        .logs(request("ticker", 0, LogStream::Unspecified, true))
        .await
        .expect("Logs");
    let lines = collect(&mut stream, 5).await;
    let ticks: Vec<u64> = lines
        .iter()
        .map(|l| text(l).trim_start_matches("tick ").parse().expect("tick N"))
        .collect();
    assert!(ticks.windows(2).all(|w| w[1] == w[0] + 1), "{ticks:?}");

    let mut follower = Command::new(infantctl_bin())
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["logs", "ticker", "-f", "-n", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("infantctl logs -f");
    let out = follower.stdout.take().expect("stdout");
    let reading = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .take(4)
            .collect::<Vec<_>>()
    });
    let printed = tokio::time::timeout(DEADLINE, reading)
        .await
        .expect("logs -f printed 4 lines in time")
        .expect("reader");
    assert_eq!(printed.len(), 4);
    assert!(
        printed.iter().all(|l| l.contains(" ticker/1 | tick ")),
        "{printed:?}"
    );
    stop_child(&mut follower, nix::sys::signal::Signal::SIGINT, DEADLINE);
    logged.daemon.stop().await;
}

#[tokio::test]
async fn a_flood_of_output_does_not_slow_the_daemon_down() {
    let line = "x".repeat(79);
    let config = format!(
        r#"
[program.flood]
log_max_size = "4MiB"
log_keep = 1
command = ["yes", "{line}"]

[program.calm]
command = ["sleep", "1000"]
"#
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let logged = Logged::start(&config, &["--metrics-listen", &listen], &[]).await;
    let control = logged.daemon.control().await;
    let dir = logged.log_dir();
    wait_until("the flood reaching its file", DEADLINE, || async {
        std::fs::metadata(dir.join("flood.out.log")).is_ok_and(|m| m.len() > 1 << 20)
    })
    .await;
    // While it floods, the daemon answers as it does at rest.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let asked = Instant::now();
        let programs = control.list(None).await.expect("status");
        slowest = slowest.max(asked.elapsed());
        assert_eq!(programs.len(), 2);
    }
    assert!(
        slowest < Duration::from_secs(2),
        "status took {slowest:?} during the flood"
    );
    let (status, _, stderr) = logged.daemon.ctl(&["status"]);
    assert!(status.success(), "{stderr}");
    // What was written is counted, per program.
    let page = metrics_page(&listen).await;
    let written = page
        .lines()
        .find(|l| l.starts_with("infant_log_written_bytes_total{program=\"flood\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no written bytes for flood: {page}"));
    assert!(written > 1e6, "{written}");
    assert!(page.contains("infant_log_dropped_bytes_total{program=\"flood\"}"));
    // And the flood keeps being written (the pipe is drained).
    let before = read_size(&dir);
    wait_until("the flood still being written", DEADLINE, || async {
        read_size(&dir) != before
    })
    .await;
    logged.daemon.stop().await;
}

/// The body of `GET /metrics` at `address`.
async fn metrics_page(address: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the metrics port");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut response))
        .await
        .expect("metrics in time")
        .expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

fn read_size(dir: &Path) -> (u64, bool) {
    (
        std::fs::metadata(dir.join("flood.out.log")).map_or(0, |m| m.len()),
        dir.join("flood.out.log.1").exists(),
    )
}

#[tokio::test]
async fn a_full_disk_is_survived_reported_once_and_recovered_from() {
    // The log folder is a 512 KiB tmpfs in a mount namespace of the daemon's own.
    if Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("skipped: cannot make a mount namespace here");
        return;
    }
    let folder = short_tempdir();
    let logs = folder.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    let wrapper: Vec<String> = vec![
        "unshare".into(),
        "-m".into(),
        "sh".into(),
        "-c".into(),
        r#"mount -t tmpfs -o size=512k tmpfs "$0" && exec "$@""#.into(),
        logs.to_string_lossy().into_owned(),
    ];
    let config = r#"
[program.chatty]
command = ["sh", "-c", "i=0; while :; do echo \"chat $i\"; i=$((i+1)); sleep 0.01; done"]
"#;
    let logged = Logged::start(config, &["--log-dir", &logs.to_string_lossy()], &wrapper).await;
    let control = logged.daemon.control().await;
    // The daemon's view of the folder, through its mount namespace.
    let inside = PathBuf::from(format!("/proc/{}/root", logged.daemon.pid()))
        .join(logs.strip_prefix("/").expect("absolute"));
    let file = inside.join("chatty.out.log");
    wait_for_text(&file, "chat 1\n").await;
    let pid = |workers: Vec<infant::proto::WorkerInfo>| workers[0].pid;
    let before = pid(control.workers(Some("chatty")).await.expect("workers"));

    // Fill the disk.
    let filler = inside.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 1024 * 1024]);
    wait_until("dropped output reported in status", DEADLINE, || async {
        control.list(Some("chatty")).await.expect("status")[0].log_dropped_bytes > 0
    })
    .await;
    let (_, stdout, _) = logged.daemon.ctl(&["status"]);
    assert!(stdout.contains("of output dropped"), "{stdout}");
    // Still dropping a while later: reported once all the same.
    let dropped = control.list(Some("chatty")).await.expect("status")[0].log_dropped_bytes;
    wait_until("more output dropped", DEADLINE, || async {
        control.list(Some("chatty")).await.expect("status")[0].log_dropped_bytes > dropped
    })
    .await;
    assert_eq!(
        logged.own_output().matches("cannot write").count(),
        1,
        "the fault is logged once: {}",
        logged.own_output()
    );
    assert_eq!(
        pid(control.workers(Some("chatty")).await.expect("workers")),
        before
    );

    // Room again: lines come back.
    std::fs::remove_file(&filler).expect("free the disk");
    let written = read(&file).len();
    wait_until("output written again", DEADLINE, || async {
        read(&file).len() > written + 100
    })
    .await;
    assert!(
        logged.own_output().contains("again"),
        "{}",
        logged.own_output()
    );
    assert_eq!(
        pid(control.workers(Some("chatty")).await.expect("workers")),
        before
    );
    logged.daemon.stop().await;
}

#[tokio::test]
async fn log_settings_come_inline_and_bad_ones_are_named() {
    let daemon = Daemon::start(&[]).await;
    let (status, _, stderr) = daemon.ctl(&["start", "bad", "--log", "syslog", "--", "true"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`log`") && stderr.contains("syslog"),
        "{stderr}"
    );
    let (status, _, stderr) =
        daemon.ctl(&["start", "bad", "--log-max-size", "10 parsecs", "--", "true"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--log-max-size"), "{stderr}");

    let (status, _, stderr) = daemon.ctl(&[
        "start",
        "small",
        "--kind",
        "once",
        "--log-max-size",
        "1KiB",
        "--log-keep",
        "1",
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo \"small $i\"; i=$((i+1)); done",
    ]);
    assert!(status.success(), "{stderr}");
    let dir = daemon.dir.path().join("infant").join("logs");
    wait_for_text(&dir.join("small.out.log"), "small 199\n").await;
    assert!(dir.join("small.out.log.1").exists());
    assert!(!dir.join("small.out.log.2").exists(), "--log-keep 1");
    assert!(
        std::fs::metadata(dir.join("small.out.log"))
            .expect("stat")
            .len()
            <= 1024
    );
    daemon.stop().await;

    // In a config file, the line and the field.
    let dir = short_tempdir();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[program.p]\ncommand = [\"true\"]\nlog_max_size = \"10 parsecs\"\n",
    )
    .expect("write");
    let mut child = Command::new(infantd_bin())
        .arg("--config")
        .arg(&config)
        .arg("--socket")
        .arg(dir.path().join("d.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("infantd");
    // Refused at once; were it accepted, the deadline ends it and the test fails.
    wait_child_blocking(&mut child, DEADLINE);
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("line 3") && stderr.contains("log_max_size") && stderr.contains("parsecs"),
        "{stderr}"
    );
}

/// A log file that is a named pipe the test reads: the daemon's file writer
/// then goes only as fast as the test lets it.
struct SlowFile {
    fifo: std::fs::File,
}

impl SlowFile {
    /// Makes `path` a named pipe, open for reading (so that the daemon's open
    /// for writing does not wait).
    fn new(path: &Path) -> SlowFile {
        use std::os::unix::fs::OpenOptionsExt;
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let fifo = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .expect("open the fifo");
        SlowFile { fifo }
    }

    /// Reads at most 16 KiB a millisecond until `last` has been read; returns
    /// everything read.
    async fn read_until(mut self, last: &'static str) -> (Vec<u8>, SlowFile) {
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let deadline = Instant::now() + DEADLINE;
            let mut all = Vec::new();
            let mut buf = vec![0; 16 * 1024];
            while !all.ends_with(last.as_bytes()) {
                assert!(Instant::now() < deadline, "{last:?} never came");
                match self.fifo.read(&mut buf) {
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("reading the fifo: {e}"),
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            (all, self)
        })
        .await
        .expect("the fifo reader")
    }
}

/// A daemon whose `burst` job writes 100 000 numbered lines, with the log file
/// a named pipe that the test reads (or not). The folder lives as long as the
/// first value returned.
async fn burst_into_a_fifo() -> (tempfile::TempDir, SlowFile, Logged) {
    let folder = short_tempdir();
    let logs = folder.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    let fifo = SlowFile::new(&logs.join("burst.out.log"));
    let config = r#"
[program.burst]
kind = "once"
log_max_size = "1GiB"
command = ["seq", "1", "100000"]
"#;
    let logged = Logged::start(config, &["--log-dir", &logs.to_string_lossy()], &[]).await;
    (folder, fifo, logged)
}

#[tokio::test]
async fn a_writer_briefly_slower_than_the_program_loses_no_line() {
    // 100 000 lines at once, ~4 MB with their prefixes: far more than the
    // daemon queues for a file, written to a file slower than the program
    // writes them. The program waits on its pipe now and then; nothing is lost.
    let (_folder, slow, logged) = burst_into_a_fifo().await;
    let control = logged.daemon.control().await;
    let (read, _slow) = slow.read_until(" 100000\n").await;
    let text = String::from_utf8(read).expect("utf8");
    let mut expected = 1;
    for line in text.lines() {
        let (who, said) = parts(line);
        assert_eq!(who, "burst/1");
        assert_eq!(said, expected.to_string(), "a line lost or out of order");
        expected += 1;
    }
    assert_eq!(expected, 100_001);
    let info = &control.list(Some("burst")).await.expect("status")[0];
    assert_eq!(info.exit_code, Some(0));
    assert_eq!(info.log_dropped_bytes, 0);
    logged.daemon.stop().await;
}

#[tokio::test]
async fn a_writer_that_takes_nothing_holds_the_program_up_only_briefly() {
    // The log file is a named pipe nobody reads: the writer is stuck.
    let (_folder, stuck, logged) = burst_into_a_fifo().await;
    let control = logged.daemon.control().await;
    // The program runs to its end all the same, its output dropped and counted.
    wait_until("the program to end", DEADLINE, || async {
        control.list(Some("burst")).await.expect("status")[0].exit_code == Some(0)
    })
    .await;
    let dropped = control.list(Some("burst")).await.expect("status")[0].log_dropped_bytes;
    assert!(dropped > 1 << 20, "{dropped} bytes dropped");
    let (_, stdout, _) = logged.daemon.ctl(&["status"]);
    assert!(stdout.contains("of output dropped"), "{stdout}");
    // Closing the pipe's read end unsticks the writer (its write fails).
    drop(stuck);
    logged.daemon.stop().await;
}

/// (worker id, bytes of its output dropped) for each worker of `program`.
async fn dropped_per_worker(control: &infant::control::Control, program: &str) -> Vec<(u64, u64)> {
    let mut workers: Vec<(u64, u64)> = control
        .workers(Some(program))
        .await
        .expect("workers")
        .iter()
        .map(|w| (w.id, w.log_dropped_bytes))
        .collect();
    workers.sort();
    workers
}

#[tokio::test]
async fn dropped_output_is_counted_per_worker_and_adds_up_to_the_programs() {
    // `pair.out.log` is a folder: no line of either worker can be written.
    let folder = short_tempdir();
    let logs = folder.path().join("logs");
    std::fs::create_dir_all(logs.join("pair.out.log")).expect("mkdir");
    let config = r#"
[program.pair]
kind = "cluster"
count = 2
command = ["sh", "-c", "seq 1 1000; exec sleep 1000"]

[program.calm]
command = ["sh", "-c", "echo calm; exec sleep 1000"]
"#;
    let logged = Logged::start(config, &["--log-dir", &logs.to_string_lossy()], &[]).await;
    let control = logged.daemon.control().await;
    // Each worker's lines, each behind `TIME pair/ID ` (a 24-byte time).
    let digits: u64 = (1..=1000u64).map(|n| n.to_string().len() as u64 + 1).sum();
    let per_worker = digits + 1000 * "2026-12-01T18:19:30.123Z pair/1 ".len() as u64;
    wait_until("both workers' lines dropped", DEADLINE, || async {
        dropped_per_worker(&control, "pair").await == [(1, per_worker), (2, per_worker)]
    })
    .await;
    let program = control.list(Some("pair")).await.expect("status")[0].log_dropped_bytes;
    assert_eq!(
        program,
        2 * per_worker,
        "the program's figure is the workers' sum"
    );
    let calm = || async { control.workers(Some("calm")).await.expect("workers") };
    wait_until("calm to run", DEADLINE, || async {
        calm().await.len() == 1
    })
    .await;
    assert_eq!(calm().await[0].log_dropped_bytes, 0);

    let (status, stdout, stderr) = logged.daemon.ctl(&["--json", "workers", "pair"]);
    assert!(status.success(), "{stderr}");
    for line in stdout.lines() {
        let worker: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(worker["log_dropped_bytes"], per_worker, "{line}");
    }
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    let (_, stdout, _) = logged.daemon.ctl(&["--json", "workers", "calm"]);
    assert!(!stdout.contains("log_dropped_bytes"), "{stdout}");
    let (_, stdout, _) = logged.daemon.ctl(&["workers"]);
    assert!(
        stdout
            .lines()
            .next()
            .is_some_and(|h| h.ends_with("DROPPED")),
        "{stdout}"
    );
    let calm_row = stdout
        .lines()
        .find(|l| l.starts_with("calm"))
        .expect("calm");
    assert!(calm_row.ends_with(" -"), "{stdout}");
    logged.daemon.stop().await;
}

#[tokio::test]
async fn output_dropped_while_the_writer_is_stuck_is_counted_per_worker() {
    // `pair.out.log` is a named pipe nobody reads: the file writer is stuck,
    // and what does not fit in the queue is dropped as it is read.
    let folder = short_tempdir();
    let logs = folder.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    let stuck = SlowFile::new(&logs.join("pair.out.log"));
    let config = r#"
[program.pair]
kind = "cluster"
count = 2
command = ["sh", "-c", "seq 1 100000; exec sleep 1000"]
"#;
    let logged = Logged::start(config, &["--log-dir", &logs.to_string_lossy()], &[]).await;
    let control = logged.daemon.control().await;
    // (per worker, the program's), the program's read last.
    let dropped = || async {
        let workers = dropped_per_worker(&control, "pair").await;
        let program = control.list(Some("pair")).await.expect("status")[0].log_dropped_bytes;
        (workers, program)
    };
    let adds_up = |(workers, program): &(Vec<(u64, u64)>, u64)| {
        workers.iter().map(|w| w.1).sum::<u64>() == *program
    };
    wait_until("both workers' output dropped", DEADLINE, || async {
        let now = dropped().await;
        now.0.len() == 2 && now.0.iter().all(|w| w.1 > 0) && adds_up(&now)
    })
    .await;
    let (_, before) = dropped().await;
    // Closing the pipe's read end unsticks the writer: the batch it held is
    // dropped too, and counted for the workers whose lines it held.
    drop(stuck);
    wait_until(
        "the stuck batch counted for its workers",
        DEADLINE,
        || async {
            let now = dropped().await;
            now.1 > before && adds_up(&now)
        },
    )
    .await;
    logged.daemon.stop().await;
}

/// A removed program's in-memory tail goes with it: a new program of the same
/// name shows only its own lines (its file goes on, appended to).
#[tokio::test]
async fn a_removed_programs_tail_goes_with_it() {
    let config = r#"
[program.job]
kind = "once"
command = ["sh", "-c", "echo 'first life'"]
"#;
    let logged = Logged::start(config, &[], &[]).await;
    let daemon = &logged.daemon;
    let control = daemon.control().await;
    let file = logged.log_dir().join("job.out.log");
    wait_for_text(&file, "first life").await;
    control.remove("job", None).await.expect("Remove");

    let mut again = spec(
        infant::proto::ProgramKind::Once,
        &["sh", "-c", "echo 'second life'"],
    );
    again.start_grace_ms = Some(0);
    let _ = control.start("job", Some(again), false).await;
    let written = wait_for_text(&file, "second life").await;
    assert!(written.contains("first life"), "the file is appended to");
    let mut stream = control
        .logs(LogsRequest {
            name: "job".into(),
            worker: None,
            stream: LogStream::Unspecified as i32,
            last: Some(100),
            follow: false,
        })
        .await
        .expect("Logs");
    let texts: Vec<String> = collect(&mut stream, 100).await.iter().map(text).collect();
    assert_eq!(texts, ["second life"]);
    logged.daemon.stop().await;
}
