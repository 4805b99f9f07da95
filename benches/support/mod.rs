//! What the benches share: the release-built binaries, a daemon on a private
//! socket that is always stopped, stopping any child for good, a CPU reader and
//! small number helpers.
//!
//! Included by each bench with `mod support;`; every process started through it
//! is stopped on error and on panic too ([`Daemon`]'s `Drop`, [`terminate`]).

// Each bench uses part of this module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use infant::proto::{self, supervisor_client::SupervisorClient};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long a daemon gets to answer on its socket, and to exit after SIGTERM.
pub const DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Binaries and the daemon
// ---------------------------------------------------------------------------

/// The release-built daemon and worker.
pub struct Binaries {
    pub infantd: PathBuf,
    pub worker: PathBuf,
}

impl Binaries {
    /// `cargo bench` builds `infantd` for this bench but not the examples, so the
    /// bench asks cargo for both (`cargo` is `$CARGO`, set by `cargo bench`): a
    /// no-op when they are up to date, and never a stale worker. It builds them
    /// with the `bench` profile, which inherits `release` (same settings, same
    /// `target/release` folder) and, unlike `--release`, reuses the very library
    /// `cargo bench` just compiled instead of compiling the crate a second time.
    /// Run by hand without cargo, the bench uses the binaries already there.
    ///
    /// `example` names the worker: an example of this package.
    pub fn locate(example: &str) -> Result<Binaries> {
        let infantd = PathBuf::from(env!("CARGO_BIN_EXE_infantd"));
        let release = infantd
            .parent()
            .context("infantd has no parent folder")?
            .to_path_buf();
        let worker = release.join("examples").join(example);
        let cargo = std::env::var_os("CARGO");
        if let Some(cargo) = &cargo {
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--profile",
                    "bench",
                    "--quiet",
                    "--bin",
                    "infantd",
                    "--example",
                    example,
                ])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stdin(Stdio::null())
                .status()
                .context("running cargo build")?;
            ensure!(
                status.success(),
                "cargo build --profile bench --bin infantd --example {example} failed: {status}"
            );
        }
        for path in [&infantd, &worker] {
            if !path.is_file() {
                bail!(
                    "{} is missing: run `cargo build --release --bin infantd --example {example}`",
                    path.display()
                );
            }
        }
        Ok(Binaries { infantd, worker })
    }
}

/// A running `infantd` on a private socket. Dropping it without [`Daemon::stop`]
/// (an error or a panic) still stops it: SIGTERM, so it stops and reaps its
/// workers, and SIGKILL only if it does not exit in time.
pub struct Daemon {
    child: Option<Child>,
    pub socket: PathBuf,
    // Removed when the daemon is dropped, after it has exited.
    _dir: tempfile::TempDir,
}

impl Daemon {
    pub async fn start(bins: &Binaries) -> Result<Daemon> {
        // A short path: Unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("ib")
            .tempdir_in("/tmp")
            .context("creating a temp folder under /tmp")?;
        let socket = dir.path().join("d.sock");
        let child = Command::new(&bins.infantd)
            .arg("--socket")
            .arg(&socket)
            .current_dir(dir.path())
            // Logging at info would write a line per status change; warn keeps
            // the daemon (and the workers, which inherit stderr) quiet.
            .env("INFANT_LOG", "warn")
            .env_remove("RUST_LOG")
            .env_remove("DEBUG")
            .stdin(Stdio::null())
            // The workers inherit it; echo_worker prints a line when started.
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {}", bins.infantd.display()))?;
        let daemon = Daemon {
            child: Some(child),
            socket,
            _dir: dir,
        };
        let began = Instant::now();
        loop {
            if infant::transport::connect_unix(&daemon.socket)
                .await
                .is_ok()
            {
                return Ok(daemon);
            }
            if began.elapsed() > DEADLINE {
                bail!("infantd did not answer on its socket within {DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// SIGTERM and wait for the exit status.
    ///
    /// The wait yields to the runtime: the daemon's graceful shutdown waits for
    /// its clients to answer the GOAWAY/PING that closes each HTTP/2 connection,
    /// and the bench's connections (dropped channels included) are driven by
    /// tasks on this runtime. A blocking wait would cost every stop 2 s.
    pub async fn stop(mut self) -> Result<ExitStatus> {
        let child = self.child.as_mut().context("daemon already stopped")?;
        // On an error the child stays in `self`, and `Drop` makes sure.
        let status = stop(child, "infantd").await?;
        self.child = None;
        Ok(status)
    }
}

impl Drop for Daemon {
    /// The error and panic path: SIGTERM, a blocking wait, SIGKILL past the
    /// deadline (its workers die with it by their parent-death signal).
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, DEADLINE);
        }
    }
}

/// SIGTERM `child` (`what` names it in errors) and wait for its exit status,
/// yielding to the runtime; SIGKILL past [`DEADLINE`] and report that.
pub async fn stop(child: &mut Child, what: &str) -> Result<ExitStatus> {
    if let Some(status) = child.try_wait().ok().flatten() {
        return Ok(status);
    }
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let began = Instant::now();
    while began.elapsed() < DEADLINE {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for {what}"))?
        {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = kill_and_wait(child)?;
    bail!("{what} did not exit within {DEADLINE:?} of SIGTERM; killed ({status})")
}

/// Stops `child` for good from a synchronous context (a `Drop`): SIGTERM, a
/// blocking wait of up to `deadline`, then SIGKILL.
pub fn terminate(child: &mut Child, deadline: Duration) {
    // Already reaped: its pid may belong to someone else by now.
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let began = Instant::now();
    while began.elapsed() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = kill_and_wait(child);
}

/// SIGKILL and reap.
pub fn kill_and_wait(child: &mut Child) -> Result<ExitStatus> {
    let _ = child.kill();
    child.wait().context("waiting for the child")
}

/// The workers of `program`, via `EachWorker`.
pub async fn each_worker(
    client: &mut SupervisorClient<tonic::transport::Channel>,
    program: &str,
) -> Result<Vec<proto::WorkerInfo>> {
    let mut stream = client
        .each_worker(proto::EachWorkerRequest {
            name: program.into(),
        })
        .await
        .context("EachWorker")?
        .into_inner();
    let mut workers = Vec::new();
    while let Some(worker) = stream.message().await.context("EachWorker stream")? {
        workers.push(worker);
    }
    Ok(workers)
}

// ---------------------------------------------------------------------------
// /proc readers
// ---------------------------------------------------------------------------

/// Run time of every live thread of `pid`, from `/proc/PID/task/TID/schedstat`
/// (its first field is nanoseconds on CPU).
pub fn thread_cpu(pid: i32) -> Result<Duration> {
    let mut total = 0u64;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("listing /proc/{pid}/task"))?;
    for task in tasks {
        let path = task?.path().join("schedstat");
        // A thread may exit between the listing and the read.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let ns: u64 = text
            .split_whitespace()
            .next()
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("parsing {}", path.display()))?;
        total += ns;
    }
    Ok(Duration::from_nanos(total))
}

/// CPU time the whole machine spent busy (every core, every process, interrupts
/// included), from the first line of `/proc/stat`; clock-tick precision.
pub fn machine_busy() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().context("malformed /proc/stat"))
        .collect::<Result<_>>()?;
    ensure!(ticks.len() >= 8, "malformed /proc/stat: {line:?}");
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7];
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(busy * 1_000_000_000 / hz))
}

/// The machine line both benches print: CPUs and the load average.
pub fn machine() -> String {
    format!(
        "{} CPUs, load average {}",
        cpus(),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    )
}

/// CPUs this process may run on (0 when unknown).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

// ---------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------

/// The median of sorted durations.
pub fn median(sorted: &[Duration]) -> Duration {
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 0 {
        (sorted[mid - 1] + sorted[mid]) / 2
    } else {
        sorted[mid]
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A number from the environment, or `default` when unset or empty.
pub fn env_number(name: &str, default: f64) -> Result<f64> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => {
            let value: f64 = text
                .trim()
                .parse()
                .with_context(|| format!("{name}={text:?} is not a number"))?;
            ensure!(
                value.is_finite() && value >= 0.0,
                "{name}={text:?} must be a non-negative number"
            );
            Ok(value)
        }
        _ => Ok(default),
    }
}
