//! `infantctl top`: `--once` prints one frame with a row per program and per
//! worker and the latest events; without a terminal, plain `top` does the same.

pub mod common;

use common::*;

#[tokio::test]
async fn top_once_prints_one_frame_of_programs_workers_and_events() {
    let daemon = Daemon::start(&[]).await;
    daemon.start_sleepers("pool", 2);
    let mut client = daemon.client().await;
    let pids = ok_pids(&mut client, "pool").await;
    assert_eq!(pids.len(), 2);

    for args in [&["top", "--once"][..], &["top"]] {
        let (status, frame, stderr) = daemon.ctl(args);
        assert!(status.success(), "{args:?}: {stderr}");
        assert!(
            frame.starts_with("infantctl top: 1 programs, 2 workers"),
            "{frame}"
        );
        assert!(frame.contains("NAME"), "{frame}");
        assert!(frame.contains("pool (2/2)"), "{frame}");
        for pid in &pids {
            let row = frame
                .lines()
                .find(|line| line.contains(&format!(" {pid} ")))
                .unwrap_or_else(|| panic!("no row for pid {pid}:\n{frame}"));
            assert!(row.trim_start().starts_with("pool/"), "{row}");
            assert!(row.contains(" ok "), "{row}");
        }
        assert!(frame.contains("events"), "{frame}");
        assert!(frame.contains("online"), "the latest events: {frame}");
        assert!(!frame.contains('\u{1b}'), "plain text: {frame:?}");
    }

    // --json: the programs, then the workers, as objects.
    let (status, lines, _) = daemon.ctl(&["top", "--once", "--json"]);
    assert!(status.success());
    let objects: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(objects.len(), 3, "{lines}");
    assert!(objects[1].get("cpu_ms").is_some(), "{lines}");
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

/// The live view in a pseudo-terminal: it draws a row per worker, a key changes
/// the sort and `/` filters, `q` quits, and on the way out the terminal is given
/// back (the alternate screen left, the cursor shown).
#[tokio::test]
async fn top_runs_live_in_a_terminal_reacts_to_keys_and_restores_it() {
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let daemon = Daemon::start(&[]).await;
    for (name, count) in [("pool", 2), ("other", 1)] {
        daemon.start_sleepers(name, count);
    }
    let mut client = daemon.client().await;
    let pids = ok_pids(&mut client, "pool").await;
    assert_eq!(pids.len(), 2);

    let size = nix::pty::Winsize {
        ws_row: 30,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
    let slave: OwnedFd = pty.slave;
    let slave_fd = slave.as_raw_fd();
    let mut command = Command::new(infantctl_bin());
    command
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("top")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::from(slave.try_clone().expect("dup the pty")))
        .stdout(Stdio::from(slave.try_clone().expect("dup the pty")))
        .stderr(Stdio::from(slave.try_clone().expect("dup the pty")));
    // SAFETY: setsid and ioctl are async-signal-safe. The pty becomes the
    // controlling terminal, so `/dev/tty` (where crossterm asks the window
    // size) is this pty and not whatever terminal runs the tests.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid()?;
            if libc::ioctl(slave_fd, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("run infantctl top");
    // Only the child holds the terminal now (the command kept copies of it).
    drop(command);
    drop(slave);
    let master = std::fs::File::from(pty.master);
    let mut keyboard = master.try_clone().expect("dup the master");

    // Everything the terminal was sent, read on a thread (reads block).
    let shown = Arc::new(Mutex::new(Vec::<u8>::new()));
    let reader = {
        let shown = Arc::clone(&shown);
        let mut master = master.try_clone().expect("dup the master");
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            // EIO once the last holder of the other side is gone.
            while let Ok(n) = master.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                shown.lock().expect("lock").extend_from_slice(&buffer[..n]);
            }
        })
    };
    let text_since = |mark: usize| {
        let all = shown.lock().expect("lock");
        String::from_utf8_lossy(&all[mark.min(all.len())..]).into_owned()
    };
    let mark = || shown.lock().expect("lock").len();
    // What the screen shows now: the whole stream so far played onto a grid.
    let screen = || Screen::play(&text_since(0), 30, 120);
    let wait_for = |what: &str, ok: &dyn Fn(&Screen) -> bool| {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let now = screen();
            if ok(&now) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "top did not show {what} within {DEADLINE:?}:\n{}",
                now.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    let first = wait_for("a row for every worker", &|screen| {
        pids.iter()
            .all(|pid| screen.row_with(&format!(" {pid} ")).is_some())
            && screen.row_with("other/1").is_some()
    });
    assert!(
        text_since(0).contains("\u{1b}[?1049h"),
        "top enters the alternate screen"
    );
    assert!(first.row_with("sort: name").is_some(), "{}", first.text());
    for pid in &pids {
        let row = first.row_with(&format!(" {pid} ")).expect("the row");
        assert!(row.trim_start().starts_with("pool/"), "{row}");
        assert!(row.contains(" ok "), "{row}");
    }

    // `m` sorts by memory.
    keyboard.write_all(b"m").expect("type into the pty");
    wait_for("the memory sort", &|screen| {
        screen.row_with("sort: memory").is_some()
    });

    // `/oth` Enter keeps only the matching program.
    keyboard.write_all(b"/oth\r").expect("type into the pty");
    let filtered = wait_for("the filter", &|screen| {
        screen.row_with("filter: /oth ").is_some() && screen.row_with("pool/").is_none()
    });
    assert!(
        filtered.row_with("other/1").is_some(),
        "{}",
        filtered.text()
    );

    // `q` quits, exits 0 and gives the terminal back.
    let before = mark();
    keyboard.write_all(b"q").expect("type q");
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for top") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("top did not quit on q within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "top exits 0 on q: {status:?}");
    drop(keyboard);
    drop(master);
    reader.join().expect("the pty reader");
    let exit = text_since(before);
    assert!(
        exit.contains("\u{1b}[?1049l"),
        "top leaves the alternate screen: {exit:?}"
    );
    assert!(
        exit.contains("\u{1b}[?25h"),
        "top shows the cursor: {exit:?}"
    );
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

/// A terminal screen as far as `infantctl top` draws it: text placed by
/// cursor moves (`ESC [ row ; col H`), other escape sequences skipped.
struct Screen {
    rows: Vec<Vec<char>>,
}

impl Screen {
    fn play(stream: &str, height: usize, width: usize) -> Screen {
        let mut rows = vec![vec![' '; width]; height];
        let (mut row, mut col) = (0usize, 0usize);
        let mut chars = stream.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\u{1b}' => {
                    if chars.peek() != Some(&'[') {
                        chars.next();
                        continue;
                    }
                    chars.next();
                    let mut params = String::new();
                    let mut end = ' ';
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            end = c;
                            break;
                        }
                        params.push(c);
                    }
                    match end {
                        'H' => {
                            let mut numbers = params.split(';').map(|n| n.parse().unwrap_or(1));
                            row = numbers.next().unwrap_or(1).max(1) - 1;
                            col = numbers.next().unwrap_or(1).max(1) - 1;
                        }
                        'J' if params == "2" => rows = vec![vec![' '; width]; height],
                        _ => {}
                    }
                }
                '\r' => col = 0,
                '\n' => row += 1,
                c if !c.is_control() => {
                    if let Some(cell) = rows.get_mut(row).and_then(|r| r.get_mut(col)) {
                        *cell = c;
                    }
                    col += 1;
                }
                _ => {}
            }
        }
        Screen { rows }
    }

    /// The first row above the events pane (whose lines name workers too)
    /// that contains `text`.
    fn row_with(&self, text: &str) -> Option<String> {
        self.rows
            .iter()
            .map(|r| r.iter().collect::<String>())
            .take_while(|r| !r.contains('┌'))
            .find(|r| r.contains(text))
    }

    fn text(&self) -> String {
        self.rows
            .iter()
            .map(|r| r.iter().collect::<String>().trim_end().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
