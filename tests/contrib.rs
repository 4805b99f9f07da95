//! The recipes in `contrib/`, run as written where this machine can run them:
//! the container's config with infantd as PID 1 of its own PID namespace (what
//! `docker run` gives it), the Dockerfile's own `HEALTHCHECK` command against it,
//! `docker stop`'s SIGTERM inside docker's 10 s grace, and the systemd unit's
//! `ExecStart` as a `Type=notify` service on a fake notify socket.
//!
//! Each test says in its output when it is skipped (no PID namespaces, no
//! python3).

pub mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{children_of, free_port, http_get, infantctl_bin, infantd_bin, poll, short_tempdir};
use common::{Daemon, NotifySocket, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `docker stop`'s default grace period before it SIGKILLs PID 1.
const DOCKER_GRACE: Duration = Duration::from_secs(10);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn contrib(path: &str) -> String {
    std::fs::read_to_string(repo().join("contrib").join(path))
        .unwrap_or_else(|e| panic!("read contrib/{path}: {e}"))
}

/// `text` with `from` replaced by `to`, which must be there: a recipe that
/// changed shape fails here instead of silently testing something else.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the recipe no longer has {from:?}");
    text.replace(from, to)
}

fn can_make_pid_namespaces() -> bool {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--map-root-user", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|status| status.success()) {
        println!(
            "skipped: this machine cannot make a PID namespace \
             (unshare --pid --fork --map-root-user)"
        );
        return false;
    }
    true
}

fn has_python3() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        println!("skipped: python3 is not on this machine");
    }
    found
}

/// The container's config, runnable here: the web worker from this checkout
/// instead of the image's `/app/web.py`, on a free loopback port instead of
/// 8080. Returns the config and the port.
fn container_config() -> (String, u16) {
    let port = free_port();
    let web = repo().join("examples/platform/web.py");
    let config = replaced(
        &contrib("docker/app.toml"),
        "/app/web.py",
        &web.to_string_lossy(),
    );
    let config = replaced(
        &config,
        "tcp://0.0.0.0:8080",
        &format!("tcp://127.0.0.1:{port}"),
    );
    (config, port)
}

/// Starts infantd as the Dockerfile's `ENTRYPOINT` does (`infantd --config
/// FILE`), as PID 1 of a new PID namespace, with `config` as its file.
async fn start_as_pid_1(config: &str) -> Daemon {
    let dir = short_tempdir();
    std::fs::write(dir.path().join("app.toml"), config).expect("write app.toml");
    let socket = dir.path().join("d.sock");
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--map-root-user", "--kill-child"])
        .arg(infantd_bin())
        .arg("--socket")
        .arg(&socket)
        .args(["--config", "app.toml"]);
    Daemon::start_command(command, dir, socket).await
}

/// The Dockerfile's `HEALTHCHECK … CMD [...]`, as argv.
fn health_check_argv() -> Vec<String> {
    let dockerfile = contrib("docker/Dockerfile");
    let at = dockerfile
        .find("HEALTHCHECK")
        .expect("the Dockerfile has a HEALTHCHECK");
    let rest = &dockerfile[at..];
    let cmd = rest.find("CMD [").expect("HEALTHCHECK … CMD [...]") + "CMD ".len();
    let line = rest[cmd..].lines().next().unwrap_or_default();
    serde_json::from_str(line).expect("the HEALTHCHECK command is a JSON array")
}

/// Runs the container's health check against `daemon`, with this build's
/// `infantctl` first on `PATH`, as it is in the image.
fn health_check(daemon: &Daemon) -> bool {
    let argv = health_check_argv();
    let bin_dir = infantctl_bin()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(&argv[0])
        .args(&argv[1..])
        .env("PATH", path)
        .env("INFANT_SOCKET", &daemon.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("run the health check")
        .success()
}

/// The host pid of the infantd that is PID 1 inside the namespace: the only
/// child of `unshare`.
fn infantd_inside(daemon: &Daemon) -> Pid {
    let children = children_of(daemon.pid() as u32);
    assert_eq!(
        children.len(),
        1,
        "unshare runs infantd alone: {children:?}"
    );
    Pid::from_raw(children[0] as i32)
}

#[tokio::test]
async fn the_container_recipe_serves_is_healthy_and_stops_inside_dockers_grace() {
    if !can_make_pid_namespaces() || !has_python3() {
        return;
    }
    let (config, port) = container_config();
    let mut daemon = start_as_pid_1(&config).await;
    let addr = format!("127.0.0.1:{port}");
    let served = poll(DEADLINE, || async { http_get(&addr).await.ok() }).await;
    assert!(
        served.is_some(),
        "the web cluster serves on {addr} after its migrate job"
    );
    assert!(
        health_check(&daemon),
        "the HEALTHCHECK passes while all is ok"
    );

    // docker stop: SIGTERM to PID 1, SIGKILL 10 s later.
    let stopping = Instant::now();
    kill(infantd_inside(&daemon), Signal::SIGTERM).expect("SIGTERM infantd");
    let status = daemon.wait_exit(DEADLINE).await;
    let took = stopping.elapsed();
    assert!(
        status.success(),
        "PID 1 exits 0 after a clean stop: {status}"
    );
    assert!(
        took < DOCKER_GRACE,
        "the example config's stop windows fit docker's grace: took {took:?}"
    );
}

#[tokio::test]
async fn the_container_health_check_fails_while_a_program_cannot_run() {
    if !can_make_pid_namespaces() {
        return;
    }
    let (config, _) = container_config();
    let web = repo().join("examples/platform/web.py");
    let config = replaced(
        &config,
        &format!(r#"command = ["python3", "{}"]"#, web.display()),
        r#"command = ["/app/not-in-the-image"]"#,
    );
    let daemon = start_as_pid_1(&config).await;
    // The failed start is reported, the daemon stays up, and the health check
    // says unhealthy rather than looking like a healthy, empty PID 1.
    let unhealthy = poll(DEADLINE, || async {
        (!health_check(&daemon)).then_some(())
    })
    .await;
    assert!(unhealthy.is_some(), "the HEALTHCHECK fails");
    let (status, out, _) = daemon.ctl(&["status", "web"]);
    assert!(status.success(), "infantd is still up and answering");
    assert!(out.contains("error"), "web is in error: {out}");
    // docker stop. (`unshare --fork` itself ignores SIGTERM while it waits.)
    kill(infantd_inside(&daemon), Signal::SIGTERM).expect("SIGTERM infantd");
    let mut daemon = daemon;
    daemon.wait_exit(DEADLINE).await;
}

/// Two containers on one host network (`--network host`): each infantd is PID
/// 1 of its own namespace, and both must still come up (their notify sockets
/// must not share a name made of their pid).
#[tokio::test]
async fn two_daemons_that_are_each_pid_1_run_side_by_side() {
    if !can_make_pid_namespaces() {
        return;
    }
    let config = "[program.sleeper]\ncommand = [\"sleep\", \"1000\"]\nstart_grace = \"50ms\"\n";
    let mut first = start_as_pid_1(config).await;
    let mut second = start_as_pid_1(config).await;
    for daemon in [&mut first, &mut second] {
        let up = poll(DEADLINE, || async {
            let (_, out, _) = daemon.ctl(&["status", "sleeper"]);
            out.contains(" ok ").then_some(())
        })
        .await;
        assert!(up.is_some(), "both daemons run their program");
        kill(infantd_inside(daemon), Signal::SIGTERM).expect("SIGTERM infantd");
        assert!(daemon.wait_exit(DEADLINE).await.success());
    }
}

/// The value of `key=` in the unit file (the last one, as systemd reads it).
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .unwrap_or_else(|| panic!("infantd.service has no {key}="))
        .trim()
        .to_string()
}

#[tokio::test]
async fn the_systemd_unit_starts_infantd_as_a_notify_service() {
    let unit = contrib("systemd/infantd.service");
    assert_eq!(unit_value(&unit, "Type"), "notify");
    let exec: Vec<String> = unit_value(&unit, "ExecStart")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert!(
        exec[0].ends_with("/infantd"),
        "ExecStart runs infantd: {exec:?}"
    );
    let config_at = exec
        .iter()
        .position(|arg| arg == "--config")
        .expect("ExecStart names a --config");

    let dir = short_tempdir();
    std::fs::write(
        dir.path().join("app.toml"),
        "[program.sleeper]\ncommand = [\"sleep\", \"1000\"]\nstart_grace = \"50ms\"\n",
    )
    .expect("write app.toml");
    let notify_path = dir.path().join("notify.sock");
    let mut manager = NotifySocket::bind(&notify_path);
    // ExecStart as written, with this build's infantd, the test's config, and
    // a private socket instead of /run/infant (RuntimeDirectory=).
    let socket = dir.path().join("d.sock");
    let mut args: Vec<PathBuf> = exec[1..].iter().map(PathBuf::from).collect();
    args[config_at] = dir.path().join("app.toml");
    let mut command = Command::new(infantd_bin());
    command
        .args(&args)
        .arg("--socket")
        .arg(&socket)
        .env("NOTIFY_SOCKET", &notify_path);
    let mut daemon = Daemon::start_command(command, dir, socket).await;

    let ready = manager.wait_for("READY=1", |line| line == "READY=1");
    assert!(
        ready
            .lines()
            .any(|l| l == "STATUS=1 program, 1 instance ok"),
        "READY=1 once the config's programs are up: {ready:?}"
    );
    // systemctl stop: SIGTERM to the main process (KillMode=mixed).
    assert_eq!(unit_value(&unit, "KillMode"), "mixed");
    daemon.signal(Signal::SIGTERM);
    manager.wait_for("STOPPING=1", |line| line == "STOPPING=1");
    assert!(daemon.wait_exit(DEADLINE).await.success());
}
