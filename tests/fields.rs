//! Program fields acting on real processes: `user`, `group` and `umask` (read
//! back from `/proc/PID/status`), `stop_signal` (the signal a worker logs),
//! `rlimits` (`/proc/PID/limits`), `nice` (`/proc/PID/stat`), `env_file`
//! (`/proc/PID/environ`), `max_memory` (a memory hog restarted, with its
//! event), `start_timeout` (a never-ready replacement stops a rolling restart
//! while the old workers serve on), `restart = "on-failure"` with
//! `success_exit_codes`, and bad values refused with the field's name.
//!
//! The user tests need a root daemon; run as another user, they say they were
//! skipped.

pub mod common;

use common::*;
use infant::proto::{self, EventKind, ProgramKind, ProgramSpec, ProgramStatus};

/// A `key:` line of `/proc/PID/status`, its value trimmed.
fn status_line(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .map(|value| value.trim_start_matches(':').trim().to_string())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// The environment `pid` was started with.
fn environ(pid: u32) -> Vec<(String, String)> {
    let bytes = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    bytes
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (k, v) = text.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

fn env_of(pid: u32, key: &str) -> Option<String> {
    environ(pid)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A child that is `ok` once exec'd: what most of these tests need.
fn sleeper() -> ProgramSpec {
    let mut s = spec(ProgramKind::Child, &["sleep", "1000"]);
    s.ready = "spawn".into();
    s
}

async fn the_pid(control: &infant::control::Control, program: &str) -> u32 {
    let pids = control.ok_pids(program).await;
    assert_eq!(pids.len(), 1, "{program}: one ok worker, got {pids:?}");
    pids[0]
}

#[tokio::test]
async fn user_group_and_umask_are_those_of_the_running_process() {
    if !is_root() {
        println!("skipped: running as another user needs a root daemon, and this is not root");
        return;
    }
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;

    let mut nobody = sleeper();
    nobody.user = "nobody".into();
    nobody.umask = "027".into();
    control.start_spec("as-nobody", nobody).await;
    let pid = the_pid(&control, "as-nobody").await;
    assert_eq!(status_line(pid, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_line(pid, "Gid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_line(pid, "Groups"), "65534", "nobody's groups only");
    assert_eq!(status_line(pid, "Umask"), "0027");
    assert_eq!(env_of(pid, "USER").as_deref(), Some("nobody"));
    assert_eq!(env_of(pid, "HOME").as_deref(), Some("/nonexistent"));

    // A group of its own choosing; uid by number.
    let mut grouped = sleeper();
    grouped.user = "65534".into();
    grouped.group = "daemon".into();
    control.start_spec("grouped", grouped).await;
    let pid = the_pid(&control, "grouped").await;
    assert!(status_line(pid, "Uid").starts_with("65534\t"));
    assert_eq!(status_line(pid, "Gid"), "1\t1\t1\t1");
    assert!(status_line(pid, "Groups")
        .split_whitespace()
        .any(|g| g == "1"));

    // Still in an instance cgroup of its own (`…/infantd.PID.N/iSEQ`), as every
    // instance is where the machine has a writable cgroup v2 hierarchy.
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let daemon_cgroup =
        std::fs::read_to_string(format!("/proc/{}/cgroup", daemon.pid())).expect("daemon cgroup");
    if daemon_cgroup.starts_with("0::") && daemon_cgroup.lines().count() == 1 {
        assert!(
            cgroup.contains(&format!("infantd.{}.", daemon.pid())),
            "an instance cgroup: {cgroup}"
        );
    } else {
        println!("no cgroup v2 hierarchy here: the cgroup check is skipped");
    }
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn an_sdk_worker_running_as_another_user_attaches_and_serves() {
    if !is_root() {
        println!("skipped: running as another user needs a root daemon, and this is not root");
        return;
    }
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let mut web = http_cluster(1);
    web.user = "nobody".into();
    // Only the SDK's `Ready` makes it ok: the attach must work.
    web.ready = "sdk".into();
    web.start_timeout_ms = Some(20_000);
    control.start_spec("web", web).await;
    let pid = the_pid(&control, "web").await;
    assert!(status_line(pid, "Uid").starts_with("65534\t"));
    // The control socket admits the daemon's user only: this one attached on
    // the worker-only socket.
    let socket = env_of(pid, "INFANT_SOCKET").expect("INFANT_SOCKET");
    assert!(socket.starts_with('@'), "{socket}");
    let addr = control.listen_addr("web").await;
    let reply = http_get(addr.trim_start_matches("tcp://"))
        .await
        .expect("GET");
    assert!(reply.contains(&format!("pid {pid}")), "{reply}");
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_daemon_that_is_not_root_refuses_another_user() {
    if !is_root() {
        println!("skipped: this test starts infantd as nobody, which needs root");
        return;
    }
    let dir = short_tempdir();
    nix::unistd::chown(
        dir.path(),
        Some(nix::unistd::Uid::from_raw(65534)),
        Some(nix::unistd::Gid::from_raw(65534)),
    )
    .expect("chown the daemon's folder");
    let socket = dir.path().join("d.sock");
    let mut command = std::process::Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(infantd_bin())
        .arg("--socket")
        .arg(&socket);
    let daemon = Daemon::start_command(command, dir, socket).await;
    let control = daemon.control().await;
    let mut root = sleeper();
    root.user = "root".into();
    let err = control
        .start("as-root", Some(root), false)
        .await
        .expect_err("a non-root daemon cannot start a program as root")
        .to_string();
    assert!(
        err.contains("`user`") && err.contains("not as root"),
        "{err}"
    );
    // Its own user is fine.
    let mut own = sleeper();
    own.user = "nobody".into();
    control.start_spec("as-self", own).await;
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_plain_program_is_stopped_with_its_stop_signal() {
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    for (name, signal, want) in [
        ("int", "INT", "INT"),
        ("quit", "SIGQUIT", "QUIT"),
        ("default", "", "TERM"),
    ] {
        let log = daemon.dir.path().join(format!("{name}.log"));
        // The shell logs the signal it got; its `sleep`s are short so that the
        // trap runs at once.
        // It says `up` once its traps are set.
        let script = r#"for s in INT QUIT TERM; do trap "echo $s > \"$0\"; exit 0" $s; done
                        echo up > "$0"; while :; do sleep 0.05; done"#;
        let mut s = spec(
            ProgramKind::Child,
            &["sh", "-c", script, &log.to_string_lossy()],
        );
        s.ready = "spawn".into();
        s.stop_signal = signal.into();
        control.start_spec(name, s).await;
        let log_ref = &log;
        wait_until("the traps set", DEADLINE, || async move {
            std::fs::read_to_string(log_ref).is_ok_and(|t| t.trim() == "up")
        })
        .await;
        control.stop(name, None).await.expect("stop");
        let got = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(got.trim(), want, "{name}");
    }
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn rlimits_and_nice_are_those_of_the_running_process() {
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let mut s = sleeper();
    s.rlimits = [("nofile", "1024"), ("core", "unlimited"), ("stack", "4MiB")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s.nice = Some(7);
    control.start_spec("limited", s).await;
    let pid = the_pid(&control, "limited").await;
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("{name} in {limits}"))
    };
    assert_eq!(line("Max open files"), "Max open files 1024 1024 files");
    assert_eq!(
        line("Max core file size"),
        "Max core file size unlimited unlimited bytes"
    );
    assert_eq!(
        line("Max stack size"),
        "Max stack size 4194304 4194304 bytes"
    );
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_name = &stat[stat.rfind(')').expect("stat name") + 2..];
    // Fields after the name start at field 3 (state); nice is field 19.
    let nice = after_name
        .split_whitespace()
        .nth(19 - 3)
        .expect("nice field");
    assert_eq!(nice, "7");
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn env_file_is_read_at_each_start_and_env_wins() {
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let file = daemon.dir.path().join("app.env");
    std::fs::write(
        &file,
        "# settings\nexport FROM_FILE=yes\nQUOTED=\"two words\"\nBOTH=file\n",
    )
    .expect("write env file");
    let mut s = sleeper();
    s.env_file = file.to_string_lossy().into_owned();
    s.env = [("BOTH".to_string(), "env".to_string())].into();
    control.start_spec("envy", s).await;
    let pid = the_pid(&control, "envy").await;
    assert_eq!(env_of(pid, "FROM_FILE").as_deref(), Some("yes"));
    assert_eq!(env_of(pid, "QUOTED").as_deref(), Some("two words"));
    assert_eq!(env_of(pid, "BOTH").as_deref(), Some("env"), "env wins");

    // Read again at the next start: a respawn sees the change.
    std::fs::write(&file, "FROM_FILE=changed\n").expect("rewrite env file");
    control
        .kill("envy", None, Some("KILL"))
        .await
        .expect("kill the instance");
    let mut again = 0;
    wait_until("the respawned instance", DEADLINE, || {
        let control = &control;
        async move {
            let pids = control.ok_pids("envy").await;
            pids.first().is_some_and(|&p| p != pid)
        }
    })
    .await;
    if let Some(&p) = control.ok_pids("envy").await.first() {
        again = p;
    }
    assert_eq!(env_of(again, "FROM_FILE").as_deref(), Some("changed"));

    // A missing file fails the start, naming the field and the file.
    let mut missing = sleeper();
    missing.env_file = "/nonexistent/app.env".into();
    let err = control
        .start("missing", Some(missing), false)
        .await
        .expect_err("a missing env file")
        .to_string();
    assert!(
        err.contains("`env_file`") && err.contains("/nonexistent/app.env"),
        "{err}"
    );
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_memory_hog_is_restarted_with_an_event_that_says_why() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    // The shell keeps 24 MB of text in a variable, then idles.
    let hog = r#"x=$(head -c 24000000 /dev/zero | tr '\0' a); while :; do sleep 1; done"#;
    let mut s = spec(ProgramKind::Child, &["sh", "-c", hog]);
    s.ready = "spawn".into();
    s.max_memory = "16MiB".into();
    s.heartbeat_ms = Some(200);
    control.start_spec("hog", s).await;
    let first = the_pid(&control, "hog").await;
    let recycle = events
        .wait_for("the hog's recycle event", |e| {
            is(e, EventKind::Recycle) && e.program == "hog"
        })
        .await;
    assert_eq!(recycle.pid, first);
    assert!(recycle.reason.contains("max_memory"), "{}", recycle.reason);
    let respawn = events
        .wait_for("the hog's respawn", |e| {
            is(e, EventKind::Respawn) && e.program == "hog"
        })
        .await;
    assert_ne!(respawn.pid, first);
    let stopping = events.all().into_iter().any(|e| {
        e.pid == first
            && e.kind == EventKind::Status as i32
            && e.instance_status == proto::InstanceStatus::Stopping as i32
    });
    assert!(stopping, "stopped gracefully first");
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_never_ready_replacement_fails_within_start_timeout_and_the_old_workers_serve_on() {
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let stuck = daemon.dir.path().join("stuck");
    // While `stuck` exists, a new worker is a plain `sleep`: with `ready =
    // "sdk"` it never becomes ok.
    let worker = example_bin("http_worker");
    let script = r#"if [ -e "$STUCK" ]; then exec sleep 1000; fi; exec "$0""#;
    let mut web = spec(
        ProgramKind::Cluster,
        &["sh", "-c", script, &worker.to_string_lossy()],
    );
    web.count = Some(2);
    web.listen = vec!["tcp://127.0.0.1:0".into()];
    web.ready = "sdk".into();
    web.start_timeout_ms = Some(8_000);
    web.env = [("STUCK".to_string(), stuck.to_string_lossy().into_owned())].into();
    control.start_spec("web", web).await;
    let old = {
        let mut pids = control.ok_pids("web").await;
        pids.sort_unstable();
        pids
    };
    assert_eq!(old.len(), 2);
    let addr = control.listen_addr("web").await;
    let addr = addr.trim_start_matches("tcp://").to_string();

    std::fs::write(&stuck, "").expect("touch stuck");
    let restart = tokio::time::timeout(DEADLINE * 2, control.restart("web", false))
        .await
        .expect("the rolling restart must end, not wait forever for a stuck replacement");
    let err = restart.expect_err("the rolling restart fails").to_string();
    assert!(err.contains("start_timeout"), "{err}");
    assert!(err.contains("old workers keep serving"), "{err}");
    let mut now = control.ok_pids("web").await;
    now.sort_unstable();
    assert_eq!(now, old, "the old workers serve on");
    let reply = http_get(&addr).await.expect("the old workers answer");
    assert!(
        reply.starts_with("pid ") || reply.contains("pid "),
        "{reply}"
    );

    // Nothing is left blocked: a later scale and a later restart work.
    std::fs::remove_file(&stuck).expect("remove stuck");
    control
        .scale("web", 3)
        .await
        .expect("scale up after the failed restart");
    control
        .restart("web", false)
        .await
        .expect("a later rolling restart");
    let after = control.ok_pids("web").await;
    assert_eq!(after.len(), 3);
    assert!(
        after.iter().all(|p| !old.contains(p)),
        "every worker replaced"
    );
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn on_failure_respawns_failures_only_and_jobs_honour_success_exit_codes() {
    let daemon = Daemon::start(&[]).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let code = daemon.dir.path().join("code");
    std::fs::write(&code, "4").expect("write code");
    // Exits with the code in the file, once it is up.
    let script = r#"sleep 0.3; exit $(cat "$0")"#;
    let mut s = spec(
        ProgramKind::Child,
        &["sh", "-c", script, &code.to_string_lossy()],
    );
    s.ready = "spawn".into();
    s.restart = "on-failure".into();
    s.success_exit_codes = vec![0, 3];
    control.start_spec("flaky", s).await;
    events
        .wait_for("a respawn after exit 4", |e| {
            is(e, EventKind::Respawn) && e.program == "flaky"
        })
        .await;
    std::fs::write(&code, "3").expect("write code");
    control
        .wait_program("flaky", "flaky finished with exit 3", DEADLINE, |p| {
            p.status() == ProgramStatus::Ready && p.error.is_empty()
        })
        .await;

    let mut job = spec(ProgramKind::Once, &["sh", "-c", "exit 75"]);
    job.success_exit_codes = vec![0, 75];
    let done = control
        .start("job", Some(job), true)
        .await
        .expect("exit 75 is a success");
    assert!(done.error.is_empty(), "{}", done.error);
    assert!(daemon.stop().await.success());
}

/// A program that finishes (a success code, not restarted) before it is `ok`
/// says so, rather than that something stopped it.
#[tokio::test]
async fn a_child_that_finishes_before_it_is_ok_says_so() {
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let mut s = spec(ProgramKind::Child, &["true"]);
    s.restart = "on-failure".into();
    s.start_grace_ms = Some(2_000);
    let error = control
        .start("quick", Some(s), false)
        .await
        .expect_err("it exits before its start_grace");
    let text = error.to_string();
    assert!(
        text.contains("finished before it became ok") && text.contains("restart = \"on-failure\""),
        "{text}"
    );
    assert!(daemon.stop().await.success());
}

/// Makes a good spec bad.
type Breaker = Box<dyn Fn(&mut ProgramSpec)>;

#[tokio::test]
async fn bad_values_are_refused_naming_the_field() {
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let cases: Vec<(&str, Breaker)> = vec![
        ("umask", Box::new(|s| s.umask = "999".into())),
        ("stop_signal", Box::new(|s| s.stop_signal = "NOPE".into())),
        ("restart", Box::new(|s| s.restart = "sometimes".into())),
        (
            "restart",
            Box::new(|s| {
                s.restart = "never".into();
                s.respawn = Some(true);
            }),
        ),
        (
            "success_exit_codes",
            Box::new(|s| s.success_exit_codes = vec![300]),
        ),
        (
            "rlimits",
            Box::new(|s| {
                s.rlimits = [("bogus".to_string(), "1".to_string())].into();
            }),
        ),
        (
            "rlimits",
            Box::new(|s| {
                s.rlimits = [("nofile".to_string(), "many".to_string())].into();
            }),
        ),
        ("nice", Box::new(|s| s.nice = Some(40))),
        ("max_memory", Box::new(|s| s.max_memory = "lots".into())),
        ("start_timeout", Box::new(|s| s.start_timeout_ms = Some(-1))),
        ("user", Box::new(|s| s.user = "no-such-user-here".into())),
        ("group", Box::new(|s| s.group = "no-such-group-here".into())),
    ];
    for (field, break_it) in cases {
        let mut s = sleeper();
        break_it(&mut s);
        let err = control
            .start("bad", Some(s), false)
            .await
            .expect_err(field)
            .to_string();
        assert!(err.contains(&format!("`{field}`")), "{field}: {err}");
    }
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn config_files_take_the_fields_and_name_bad_ones() {
    let good = r#"
[program.web]
command = ["sleep", "1000"]
ready = "spawn"
user = "nobody"
umask = "077"
stop_signal = "INT"
restart = "on-failure"
success_exit_codes = [0, 3]
rlimits = { nofile = 2048, core = "unlimited" }
nice = 3
max_memory = "512MiB"
start_timeout = "30s"
"#;
    let text = if is_root() {
        good.to_string()
    } else {
        good.replace("user = \"nobody\"\n", "")
    };
    let daemon = Daemon::with_config(&text).await;
    let control = daemon.control().await;
    control
        .wait_program("web", "web ok", DEADLINE, |p| {
            p.status() == ProgramStatus::Ok
        })
        .await;
    let pid = the_pid(&control, "web").await;
    assert_eq!(status_line(pid, "Umask"), "0077");
    assert!(daemon.stop().await.success());

    // A bad value in a file names the field and its line.
    for (bad, field) in [
        ("rlimits = { nofile = true }", "rlimits"),
        ("rlimits = { files = 10 }", "rlimits"),
        ("umask = \"8\"", "umask"),
        ("restart = \"sometimes\"", "restart"),
        ("max_memory = \"1 lot\"", "max_memory"),
        ("start_timeout = \"soon\"", "start_timeout"),
        ("respawn = true\nrestart = \"never\"", "restart"),
    ] {
        let text = format!("[program.web]\ncommand = [\"sleep\", \"1\"]\n{bad}\n");
        let err = infant::daemon::config::parse(&text).expect_err(bad);
        assert!(err.contains(field) && err.contains("line "), "{bad}: {err}");
    }
    // Keys from other supervisors point to infant's.
    for (foreign, ours) in [
        ("stopsignal = \"INT\"", "stop_signal"),
        ("autorestart = \"unexpected\"", "restart"),
        ("exitcodes = [0]", "success_exit_codes"),
        ("max_memory_restart = \"1G\"", "max_memory"),
        ("user_name = \"x\"", ""),
    ] {
        let text = format!("[program.web]\ncommand = [\"sleep\", \"1\"]\n{foreign}\n");
        let err = infant::daemon::config::parse(&text).expect_err(foreign);
        assert!(err.contains(ours), "{foreign}: {err}");
    }
}

#[tokio::test]
async fn infantctl_start_takes_a_flag_for_each_field() {
    let daemon = Daemon::start(&[]).await;
    let env_file = daemon.dir.path().join("cli.env");
    std::fs::write(&env_file, "FROM_FILE=cli\n").expect("write env file");
    let env_file = env_file.to_string_lossy().into_owned();
    let (status, _, stderr) = daemon.ctl(&[
        "start",
        "cli",
        "--ready",
        "spawn",
        "--umask",
        "077",
        "--nice",
        "4",
        "--rlimit",
        "nofile=512",
        "--rlimit",
        "core=0",
        "--stop-signal",
        "INT",
        "--restart",
        "on-failure",
        "--success-exit-codes",
        "0,3",
        "--env-file",
        &env_file,
        "--max-memory",
        "1GiB",
        "--start-timeout",
        "30s",
        "--",
        "sleep",
        "1000",
    ]);
    assert!(status.success(), "{stderr}");
    let control = daemon.control().await;
    let pid = the_pid(&control, "cli").await;
    assert_eq!(status_line(pid, "Umask"), "0077");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    assert!(
        limits.lines().any(|l| l.starts_with("Max open files")
            && l.split_whitespace().filter(|w| *w == "512").count() == 2),
        "{limits}"
    );
    assert_eq!(env_of(pid, "FROM_FILE").as_deref(), Some("cli"));

    let (status, _, stderr) = daemon.ctl(&["start", "bad", "--nice", "99", "--", "sleep", "1"]);
    assert!(!status.success());
    assert!(stderr.contains("`nice`"), "{stderr}");
    assert!(daemon.stop().await.success());
}
