//! Cluster benchmark: what the daemon-owned shared socket costs per request, how
//! requests spread over workers, and what a rolling restart costs.
//!
//! ```text
//! cargo bench --bench cluster
//! INFANT_BENCH_SECS=2 INFANT_BENCH_ROUNDS=1 cargo bench --bench cluster   # quicker
//! ```
//!
//! Every figure comes from the release-built `examples/http_worker` (an SDK
//! worker answering `pid <pid>`, one thread) and a load generator in this bench
//! (see `cluster/load.rs`), all on 127.0.0.1:
//!
//! 1. **Throughput.** Requests/s over keep-alive connections for a fixed window,
//!    through ONE worker binding the port itself (the same binary, no daemon) and
//!    through an enhanced cluster of N = 1, 2, 4 workers accepting on the
//!    daemon's shared socket. The setups take turns, round after round, and the
//!    table shows each one's median round, and its ratio to the lone worker of
//!    the same round (median over rounds, which cancels drift in whatever else
//!    the machine runs; the table shows how busy other processes kept it).
//!    Workers accept on the socket directly, so the N = 1 cluster should match
//!    the lone worker (target ≥ 0.98); the CPU each process spent per request
//!    shows where the time goes.
//!
//!    With a request this cheap the load generator, on the same cores, spends
//!    about as much CPU per request as the worker, so the table cannot show
//!    the workers scaling; 1b does.
//!
//!    **1b. Scaling with CPU-bound requests.** The same setups and rounds, but
//!    every request burns `INFANT_BENCH_WORK_US` of worker CPU (the worker's
//!    `HTTP_WORK_US`), so the workers, not the load generator, are the
//!    bottleneck. The clients connect one at a time over the warm-up (at once,
//!    one worker of a small machine may accept them all and keep them).
//!    Scaling is each setup's rate over the N = 1 cluster's in the same round
//!    (median over rounds); the expected ceiling is
//!    min(N, cores × the workers' share of the CPU a request costs in all): a
//!    worker is one thread, and the load generator takes the rest. Target: the
//!    N = cores cluster scales ≥ 0.9 × cores.
//! 2. **Split.** Requests with a new connection each (`Connection: close`) to
//!    N = 2 and 4 workers, so the kernel's accept distribution shows: requests
//!    per worker from `EachWorker` (heartbeat counts), checked against the
//!    response bodies.
//! 3. **Rolling restart under load.** `Restart` of a 4-worker cluster while
//!    keep-alive and new-connection clients send requests: failed requests
//!    (target 0).
//! 4. **Rolling restart time.** Wall time of `Restart` (rolling) of 8 idle
//!    workers, each replaced and ready-gated in turn; median of a few runs.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `INFANT_BENCH_SECS` | `5` | measured window of each throughput and split load (seconds) |
//! | `INFANT_BENCH_ROUNDS` | `3` | throughput rounds (each runs every setup once) |
//! | `INFANT_BENCH_CONNS` | `32` | concurrent client connections |
//! | `INFANT_BENCH_WORK_US` | `500` | worker CPU each request burns in 1b (µs); `0` skips 1b |
//! | `INFANT_BENCH_RUNS` | `3` | rolling restarts of 8 workers |
//!
//! Every load is bounded in time and in requests. Every process the bench
//! starts is stopped before it returns, on error and on panic too: the daemon
//! (and with it its workers) by `support::Daemon`, the lone worker by
//! [`Standalone`]'s `Drop`.

mod support;

#[path = "cluster/load.rs"]
mod load;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use infant::proto::supervisor_client::SupervisorClient;
use infant::proto::{self, InstanceStatus, ProgramKind, ProgramSpec, ProgramStatus};
use load::{Load, Mode, Plan, Totals};
use support::{each_worker, env_number, median, ms, thread_cpu, Binaries, Daemon, DEADLINE};
use tonic::transport::Channel;

/// Cluster sizes of the throughput table.
const COUNTS: [u32; 3] = [1, 2, 4];
/// Cluster sizes of the split table (one worker has no split).
const SPLIT_COUNTS: [u32; 2] = [2, 4];
/// Load before each measured window, not counted: connections open, caches warm.
const WARMUP: Duration = Duration::from_secs(1);
/// 1b's clients connect one at a time over this first part of the warm-up (see
/// [`Clients::start`]).
const RAMP: Duration = Duration::from_millis(500);
/// A ceiling on requests per second of load that loopback on a small machine
/// never reaches; it only bounds the count.
const MAX_RATE: u64 = 500_000;
/// The split load stops after this many requests if its window is not over:
/// each leaves a socket in TIME_WAIT.
const SPLIT_MAX_REQUESTS: u64 = 20_000;
/// Heartbeat interval of the bench's clusters: the split reads per-worker
/// counts from heartbeats, so they must arrive soon after the load.
const HEARTBEAT_MS: i64 = 200;
/// Workers in the rolling restart under load, and in the timed one.
const ROLL_WORKERS: u32 = 4;
const RESTART_WORKERS: u32 = 8;
/// Load before and after the rolling restart under load.
const ROLL_MARGIN: Duration = Duration::from_secs(1);

/// Targets of issue 3.
const TARGET_RATIO_N1: f64 = 0.98;
/// Target of 1b: the N = cores cluster's scaling over N = 1, as a share of the
/// cores. The ceiling on this machine is ~0.97 × cores (the load generator
/// takes ~3% of a request's CPU at 500 µs of work); 0.9 leaves the rest for
/// the scheduler's switches between more runnable threads than cores and for
/// whatever else the machine runs.
const TARGET_SCALING_PER_CORE: f64 = 0.9;
const TARGET_ROLL_FAILED: u64 = 0;

struct Options {
    secs: Duration,
    rounds: usize,
    clients: usize,
    runs: usize,
    /// Worker CPU per request in 1b (`HTTP_WORK_US`); 0 skips 1b.
    work_us: u64,
}

fn main() -> Result<()> {
    let options = Options {
        secs: Duration::from_secs_f64(env_number("INFANT_BENCH_SECS", 5.0)?),
        rounds: env_number("INFANT_BENCH_ROUNDS", 3.0)? as usize,
        clients: env_number("INFANT_BENCH_CONNS", 32.0)? as usize,
        runs: env_number("INFANT_BENCH_RUNS", 3.0)? as usize,
        work_us: env_number("INFANT_BENCH_WORK_US", 500.0)? as u64,
    };
    ensure!(
        options.secs >= Duration::from_millis(100),
        "INFANT_BENCH_SECS must be at least 0.1"
    );
    ensure!(
        options.rounds >= 1,
        "INFANT_BENCH_ROUNDS must be at least 1"
    );
    ensure!(
        options.clients >= 2,
        "INFANT_BENCH_CONNS must be at least 2"
    );
    ensure!(options.runs >= 1, "INFANT_BENCH_RUNS must be at least 1");
    let bins = Binaries::locate("http_worker")?;

    // The load generator uses every core, as a real client on this machine would.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(support::cpus().max(1))
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;

    println!(
        "infant cluster benchmark: http_worker (SDK, 1 thread each), {} keep-alive client \
         connections, {:.1} s windows, {} rounds",
        options.clients,
        options.secs.as_secs_f64(),
        options.rounds
    );
    println!("  infantd:     {}", bins.infantd.display());
    println!("  http_worker: {}", bins.worker.display());
    println!("  machine:     {}", support::machine());
    println!(
        "  note:        the load generator runs on the same {} cores as the workers",
        support::cpus()
    );
    println!();

    runtime.block_on(run(&bins, &options))
}

async fn run(bins: &Binaries, options: &Options) -> Result<()> {
    // 1. Throughput.
    let rows = rounds(bins, options, 0).await?;
    print_throughput(&rows);

    // 1b. Scaling with CPU-bound requests.
    let scaling = if options.work_us > 0 {
        let rows = rounds(bins, options, options.work_us).await?;
        print_scaling(&rows, options.work_us);
        Some(rows)
    } else {
        None
    };

    // 2. Split.
    let mut splits = Vec::new();
    for n in SPLIT_COUNTS {
        splits.push(split(bins, n, options).await?);
    }
    print_split(&splits, options);

    // 3. Rolling restart under load.
    let roll = roll_under_load(bins, options).await?;
    print_roll(&roll, options);

    // 4. Rolling restart time.
    let restarts = restart_times(bins, options.runs).await?;
    print_restarts(&restarts);

    print_targets(&rows, scaling.as_deref(), &roll);
    Ok(())
}

/// Every setup measured once a round, each request burning `work_us` of worker
/// CPU: the setups take turns so drift in the machine's load spreads over all
/// of them.
async fn rounds(
    bins: &Binaries,
    options: &Options,
    work_us: u64,
) -> Result<Vec<(Setup, Vec<Throughput>)>> {
    let mut setups = vec![Setup::Standalone];
    setups.extend(COUNTS.map(Setup::Cluster));
    let mut samples: Vec<Vec<Throughput>> = setups.iter().map(|_| Vec::new()).collect();
    let work = match work_us {
        0 => String::new(),
        us => format!(", {us} µs work"),
    };
    for round in 0..options.rounds {
        for (setup, samples) in setups.iter().zip(&mut samples) {
            let t = throughput(bins, *setup, options, work_us).await?;
            // With CPU-bound requests, how the busy workers shared the cores.
            let workers = match work_us {
                0 => String::new(),
                _ => format!(", workers {}", cores_list(&t.worker_cores)),
            };
            println!(
                "  round {}{work}: {:<24} {:>9.0} req/s   cores busy: bench {:.2}, others {:.2}\
                 {workers}",
                round + 1,
                setup.label(),
                t.rate,
                t.cores_ours,
                t.cores_others
            );
            samples.push(t);
        }
    }
    println!();
    Ok(setups.into_iter().zip(samples).collect())
}

// ---------------------------------------------------------------------------
// Setups: a lone worker, or a cluster under a daemon
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// One http_worker run by hand, binding the port itself.
    Standalone,
    /// An enhanced cluster of N http_workers on the daemon's socket.
    Cluster(u32),
}

impl Setup {
    fn label(self) -> String {
        match self {
            Setup::Standalone => "1 worker, own port".into(),
            Setup::Cluster(n) => format!("cluster N={n}, shared"),
        }
    }
}

/// `http_worker` run by hand on a port of its own, without a daemon. Dropping it
/// without [`Standalone::stop`] still stops it: SIGTERM, then SIGKILL.
struct Standalone {
    child: Option<Child>,
    addr: SocketAddr,
}

impl Standalone {
    /// Every request burns `work_us` of CPU (`HTTP_WORK_US`).
    async fn start(bins: &Binaries, work_us: u64) -> Result<Standalone> {
        // A port free a moment ago; the worker binds it through `HTTP_ADDR`.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?;
        let child = Command::new(&bins.worker)
            .env("HTTP_ADDR", addr.to_string())
            .env("HTTP_WORK_US", work_us.to_string())
            // A standalone run even if the bench itself runs under infant.
            .env_remove("INFANT_WORKER_ID")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {}", bins.worker.display()))?;
        let mut worker = Standalone {
            child: Some(child),
            addr,
        };
        let began = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(worker);
            }
            if let Some(child) = worker.child.as_mut() {
                if let Some(status) = child.try_wait().context("waiting for http_worker")? {
                    bail!("standalone http_worker on {addr} exited at start: {status}");
                }
            }
            if began.elapsed() > DEADLINE {
                bail!("standalone http_worker did not listen on {addr} within {DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    async fn stop(mut self) -> Result<()> {
        let child = self.child.as_mut().context("already stopped")?;
        let status = support::stop(child, "standalone http_worker").await?;
        self.child = None;
        ensure!(
            status.success(),
            "standalone http_worker exited with {status} after SIGTERM"
        );
        Ok(())
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            support::terminate(&mut child, DEADLINE);
        }
    }
}

/// A daemon with one enhanced cluster of `n` http_workers on a shared
/// `tcp://127.0.0.1:0` socket.
struct Cluster {
    // Dropped before the daemon (field order), so its connection is closed
    // before the daemon's graceful shutdown waits for it.
    client: SupervisorClient<Channel>,
    daemon: Daemon,
    name: &'static str,
    addr: SocketAddr,
}

impl Cluster {
    /// Every request burns `work_us` of worker CPU (`HTTP_WORK_US`).
    async fn start(bins: &Binaries, name: &'static str, n: u32, work_us: u64) -> Result<Cluster> {
        let daemon = Daemon::start(bins).await?;
        let mut client = SupervisorClient::new(
            infant::transport::connect_unix(&daemon.socket)
                .await
                .context("connecting to infantd")?,
        );
        let spec = ProgramSpec {
            kind: ProgramKind::Cluster as i32,
            command: vec![bins.worker.to_string_lossy().into_owned()],
            count: Some(n),
            enhanced: true,
            listen: vec!["tcp://127.0.0.1:0".into()],
            heartbeat_ms: Some(HEARTBEAT_MS),
            // Set even when 0: the workers would inherit it from the bench.
            env: [("HTTP_WORK_US".to_string(), work_us.to_string())].into(),
            ..Default::default()
        };
        let info = client
            .start(proto::StartRequest {
                name: name.into(),
                spec: Some(spec),
                wait: false,
            })
            .await
            .with_context(|| format!("Start of a cluster of {n}"))?
            .into_inner();
        ensure!(
            info.running == n,
            "Start replied with {} of {n} workers running",
            info.running
        );
        let listen = info
            .listen
            .first()
            .context("Start reported no listen address")?;
        let addr: SocketAddr = listen
            .trim_start_matches("tcp://")
            .parse()
            .with_context(|| format!("parsing the listen address {listen:?}"))?;
        let cluster = Cluster {
            client,
            daemon,
            name,
            addr,
        };
        Ok(cluster)
    }

    async fn workers(&mut self) -> Result<Vec<proto::WorkerInfo>> {
        each_worker(&mut self.client, self.name).await
    }

    /// Pids of the workers that are `ok`.
    async fn ok_pids(&mut self) -> Result<Vec<u32>> {
        Ok(self
            .workers()
            .await?
            .into_iter()
            .filter(|w| w.status == InstanceStatus::Ok as i32)
            .map(|w| w.pid)
            .collect())
    }

    /// A rolling `Restart`; its wall time. Checks that every worker was replaced.
    async fn rolling_restart(&mut self) -> Result<Duration> {
        let before = self.ok_pids().await?;
        let began = Instant::now();
        let info = self
            .client
            .restart(proto::RestartRequest {
                name: self.name.into(),
                full: false,
            })
            .await
            .context("Restart (rolling)")?
            .into_inner();
        let wall = began.elapsed();
        ensure!(
            info.status == ProgramStatus::Ok as i32,
            "after the rolling restart the program is {:?}",
            ProgramStatus::try_from(info.status)
        );
        let after = self.ok_pids().await?;
        ensure!(
            after.len() == before.len() && after.iter().all(|p| !before.contains(p)),
            "the rolling restart did not replace every worker: before {before:?}, after {after:?}"
        );
        Ok(wall)
    }

    async fn stop(self) -> Result<()> {
        let Cluster { client, daemon, .. } = self;
        drop(client);
        let status = daemon.stop().await?;
        ensure!(
            status.success(),
            "infantd exited with {status} after SIGTERM"
        );
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// 1. Throughput
// ---------------------------------------------------------------------------

/// One measured window.
struct Throughput {
    rate: f64,
    requests: u64,
    failed: u64,
    /// CPU per answered request in the window: workers, load generator, daemon.
    worker_us: f64,
    client_us: f64,
    daemon_us: Option<f64>,
    /// Daemon CPU as a share of one core over the window.
    daemon_pct: Option<f64>,
    /// Cores kept busy over the window by the bench's processes (workers, load
    /// generator, daemon), and by everything else on the machine.
    cores_ours: f64,
    cores_others: f64,
    /// Cores each worker kept busy over the window, in the order of `measure`'s
    /// `workers`.
    worker_cores: Vec<f64>,
}

async fn throughput(
    bins: &Binaries,
    setup: Setup,
    options: &Options,
    work_us: u64,
) -> Result<Throughput> {
    match setup {
        Setup::Standalone => {
            let worker = Standalone::start(bins, work_us).await?;
            let t = measure(worker.addr, &[worker.pid()], None, options, work_us > 0).await?;
            worker.stop().await?;
            Ok(t)
        }
        Setup::Cluster(n) => {
            let mut cluster = Cluster::start(bins, "web", n, work_us).await?;
            let pids: Vec<i32> = cluster
                .ok_pids()
                .await?
                .into_iter()
                .map(|p| p as i32)
                .collect();
            ensure!(pids.len() == n as usize, "{} of {n} workers ok", pids.len());
            let daemon = cluster.daemon.pid();
            let t = measure(cluster.addr, &pids, Some(daemon), options, work_us > 0).await?;
            cluster.stop().await?;
            Ok(t)
        }
    }
}

/// Keep-alive clients on `addr`: one load of them all, or a load per client when
/// they connect one at a time.
struct Clients(Vec<Load>);

impl Clients {
    /// `clients` keep-alive clients, each sending for at most `total` (and a
    /// margin). Staggered, they connect one at a time over [`RAMP`], as a
    /// population of clients would: started at once, their connections reach a
    /// shared socket in one burst, and on a machine with few cores one worker
    /// may accept the whole burst before another is scheduled, then keep every
    /// connection (keep-alive) — a race of the kernel's scheduler, not a
    /// measure of the workers.
    async fn start(addr: SocketAddr, clients: usize, total: Duration, stagger: bool) -> Clients {
        let max_requests = MAX_RATE * total.as_secs().max(1) * 2;
        let plan = |clients: usize, max_requests: u64| Plan {
            addr,
            mode: Mode::KeepAlive,
            clients,
            max_requests,
            limit: total + Duration::from_secs(5),
            record: false,
        };
        if !stagger {
            return Clients(vec![Load::start(plan(clients, max_requests))]);
        }
        let per_client = max_requests.div_ceil(clients as u64);
        let mut loads = Vec::with_capacity(clients);
        for _ in 0..clients {
            loads.push(Load::start(plan(1, per_client)));
            tokio::time::sleep(RAMP / clients as u32).await;
        }
        Clients(loads)
    }

    /// Requests answered so far.
    fn ok(&self) -> u64 {
        self.0.iter().map(Load::ok).sum()
    }

    /// Stops every client after its current request and sums up.
    async fn finish(self) -> Totals {
        let mut sum = Totals::default();
        for load in self.0 {
            let totals = load.finish().await;
            sum.ok += totals.ok;
            sum.failed += totals.failed;
            sum.retried += totals.retried;
            sum.errors.extend(totals.errors);
        }
        sum
    }
}

/// Keep-alive load on `addr`: a warm-up, then the measured window; `stagger`:
/// the clients connect one at a time (see [`Clients::start`]).
async fn measure(
    addr: SocketAddr,
    workers: &[i32],
    daemon: Option<i32>,
    options: &Options,
    stagger: bool,
) -> Result<Throughput> {
    let began = Instant::now();
    let load = Clients::start(addr, options.clients, WARMUP + options.secs, stagger).await;
    tokio::time::sleep(WARMUP.saturating_sub(began.elapsed())).await;
    let each =
        |pids: &[i32]| -> Result<Vec<Duration>> { pids.iter().map(|&p| thread_cpu(p)).collect() };
    let cpu = |pids: &[i32]| -> Result<Duration> { Ok(each(pids)?.into_iter().sum()) };
    let me = [std::process::id() as i32];
    let daemon_pids: Vec<i32> = daemon.into_iter().collect();
    let (ok0, t0) = (load.ok(), Instant::now());
    let (each0, c0, d0) = (each(workers)?, cpu(&me)?, cpu(&daemon_pids)?);
    let busy0 = support::machine_busy()?;
    tokio::time::sleep(options.secs).await;
    let (ok1, wall) = (load.ok(), t0.elapsed());
    let (each1, c1, d1) = (each(workers)?, cpu(&me)?, cpu(&daemon_pids)?);
    let (w0, w1): (Duration, Duration) = (each0.iter().sum(), each1.iter().sum());
    let busy = support::machine_busy()?.saturating_sub(busy0);
    let totals = load.finish().await;
    let requests = ok1 - ok0;
    ensure!(
        requests > 0,
        "no request answered on {addr}: {:?}",
        totals.errors
    );
    let per_request = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
    let ours = (w1 + c1 + d1).saturating_sub(w0 + c0 + d0);
    let cores = |d: Duration| d.as_secs_f64() / wall.as_secs_f64();
    Ok(Throughput {
        cores_ours: cores(ours),
        cores_others: cores(busy.saturating_sub(ours)),
        rate: requests as f64 / wall.as_secs_f64(),
        requests,
        failed: totals.failed,
        worker_us: per_request(w1.saturating_sub(w0)),
        client_us: per_request(c1.saturating_sub(c0)),
        daemon_us: daemon.map(|_| per_request(d1.saturating_sub(d0))),
        daemon_pct: daemon
            .map(|_| 100.0 * d1.saturating_sub(d0).as_secs_f64() / wall.as_secs_f64()),
        worker_cores: each1
            .iter()
            .zip(&each0)
            .map(|(b, a)| cores(b.saturating_sub(*a)))
            .collect(),
    })
}

/// The median round of a setup, by rate.
fn median_round(samples: &[Throughput]) -> &Throughput {
    let mut order: Vec<&Throughput> = samples.iter().collect();
    order.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    order[(order.len() - 1) / 2]
}

fn rate_of(rows: &[(Setup, Vec<Throughput>)], setup: Setup) -> Option<f64> {
    rows.iter()
        .find(|(s, _)| *s == setup)
        .map(|(_, samples)| median_round(samples).rate)
}

/// `setup`'s rate over `base`'s in the same round, median over rounds: pairing
/// rounds cancels drift in what else the machine is doing.
fn paired_ratio(rows: &[(Setup, Vec<Throughput>)], setup: Setup, base: Setup) -> Option<f64> {
    let samples = |s: Setup| rows.iter().find(|(r, _)| *r == s).map(|(_, t)| t);
    let (base, this) = (samples(base)?, samples(setup)?);
    let mut ratios: Vec<f64> = base
        .iter()
        .zip(this)
        .map(|(b, t)| t.rate / b.rate)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let mid = ratios.len() / 2;
    match ratios.len() {
        0 => None,
        n if n % 2 == 0 => Some((ratios[mid - 1] + ratios[mid]) / 2.0),
        _ => Some(ratios[mid]),
    }
}

fn print_throughput(rows: &[(Setup, Vec<Throughput>)]) {
    println!(
        "1. Throughput, keep-alive, median round; vs alone: median over rounds of the ratio to \
         the same round's lone worker; CPU per request by process; cores kept busy by the bench \
         and by other processes over the window"
    );
    println!(
        "{:<24} | {:>10} | {:>19} | {:>8} | {:>6} | {:>6} | {:>13} | {:>12} | {:>6}",
        "setup",
        "req/s",
        "rounds min–max",
        "vs alone",
        "worker",
        "client",
        "daemon",
        "cores: bench",
        "failed"
    );
    println!(
        "{:<24} | {:>10} | {:>19} | {:>8} | {:>6} | {:>6} | {:>13} | {:>12} | {:>6}",
        "", "", "", "", "µs/req", "µs/req", "µs/req (core)", "/ others", ""
    );
    println!("{}", "-".repeat(129));
    let one = rate_of(rows, Setup::Cluster(1));
    for (setup, samples) in rows {
        let m = median_round(samples);
        let min = samples.iter().map(|t| t.rate).fold(f64::INFINITY, f64::min);
        let max = samples.iter().map(|t| t.rate).fold(0.0, f64::max);
        let versus = match setup {
            Setup::Cluster(_) => paired_ratio(rows, *setup, Setup::Standalone)
                .map_or("-".into(), |r| format!("{r:.3}")),
            Setup::Standalone => "1".into(),
        };
        let daemon = match (m.daemon_us, m.daemon_pct) {
            (Some(us), Some(pct)) => format!("{us:.3} ({pct:.2}%)"),
            _ => "-".into(),
        };
        let failed: u64 = samples.iter().map(|t| t.failed).sum();
        println!(
            "{:<24} | {:>10.0} | {:>8.0} – {:>8.0} | {:>8} | {:>6.1} | {:>6.1} | {:>13} | {:>12} | {:>6}",
            setup.label(),
            m.rate,
            min,
            max,
            versus,
            m.worker_us,
            m.client_us,
            daemon,
            format!("{:.2} / {:.2}", m.cores_ours, m.cores_others),
            failed
        );
    }
    if let Some(one) = one {
        let scaling: Vec<String> = COUNTS
            .iter()
            .filter_map(|&n| {
                Some(format!(
                    "N={n} {:.2}×",
                    rate_of(rows, Setup::Cluster(n))? / one
                ))
            })
            .collect();
        println!("  scaling over the N=1 cluster: {}", scaling.join(", "));
    }
    // What the cores allow: with every core busy, the rate is bounded by the
    // CPU one request costs in all (worker + load generator + daemon).
    if let Some((_, samples)) = rows.iter().find(|(s, _)| *s == Setup::Cluster(1)) {
        let m = median_round(samples);
        let per_request = m.worker_us + m.client_us + m.daemon_us.unwrap_or(0.0);
        let cores = support::cpus() as f64;
        let ceiling = cores * 1e6 / per_request;
        println!(
            "  ceiling with all {cores:.0} cores busy at N=1's CPU cost ({per_request:.1} µs per \
             request, worker + client + daemon): {ceiling:.0} req/s = {:.2}× N=1",
            ceiling / m.rate
        );
        println!(
            "  the load generator shares the cores: N ≥ {cores:.0} workers compete with it, so \
             scaling stops well short of N×"
        );
    }
    print_request_total(rows);
}

// ---------------------------------------------------------------------------
// 1b. Scaling with CPU-bound requests
// ---------------------------------------------------------------------------

/// The CPU a request costs in all: worker, load generator and daemon (µs).
/// The requests every round of `rows` measured, and a blank line to end the table.
fn print_request_total(rows: &[(Setup, Vec<Throughput>)]) {
    let requests: u64 = rows
        .iter()
        .flat_map(|(_, s)| s.iter().map(|t| t.requests))
        .sum();
    println!("  ({requests} requests measured in all)");
    println!();
}

fn request_us(t: &Throughput) -> f64 {
    t.worker_us + t.client_us + t.daemon_us.unwrap_or(0.0)
}

/// What `n` workers can reach over one, given `t`, their setup's median round:
/// a worker is one thread, so `n` workers use at most `n` cores; and with every
/// core busy the workers get only their share of the CPU a request costs, the
/// load generator and the daemon on the same cores taking the rest.
fn scaling_ceiling(t: &Throughput, n: u32) -> f64 {
    let workers_share = t.worker_us / request_us(t);
    (n as f64).min(support::cpus() as f64 * workers_share)
}

/// Cores kept busy, one figure per worker.
fn cores_list(cores: &[f64]) -> String {
    let each: Vec<String> = cores.iter().map(|c| format!("{c:.2}")).collect();
    each.join(" ")
}

/// The scaling target: `TARGET_SCALING_PER_CORE` × cores, at N = cores.
fn scaling_target() -> (u32, f64) {
    let cores = support::cpus();
    (cores as u32, TARGET_SCALING_PER_CORE * cores as f64)
}

fn print_scaling(rows: &[(Setup, Vec<Throughput>)], work_us: u64) {
    println!(
        "1b. Scaling with CPU-bound requests: each burns {work_us} µs of worker CPU \
         (HTTP_WORK_US), keep-alive, median round; scaling: median over rounds of the ratio to \
         the same round's N=1 cluster; ceiling: what the cores allow (below); cores each \
         worker kept busy"
    );
    println!(
        "{:<24} | {:>8} | {:>17} | {:>8} | {:>7} | {:>7} | {:>6} | {:>6} | {:<23} | {:>12} | {:>6}",
        "setup",
        "req/s",
        "rounds min–max",
        "scaling",
        "ceiling",
        "of ceil",
        "worker",
        "client",
        "cores per worker",
        "cores: bench",
        "failed"
    );
    println!(
        "{:<24} | {:>8} | {:>17} | {:>8} | {:>7} | {:>7} | {:>6} | {:>6} | {:<23} | {:>12} | {:>6}",
        "", "", "", "over N=1", "", "", "µs/req", "µs/req", "", "/ others", ""
    );
    println!("{}", "-".repeat(152));
    for (setup, samples) in rows {
        let m = median_round(samples);
        let min = samples.iter().map(|t| t.rate).fold(f64::INFINITY, f64::min);
        let max = samples.iter().map(|t| t.rate).fold(0.0, f64::max);
        let scaling = paired_ratio(rows, *setup, Setup::Cluster(1));
        // The lone worker is a reference for the N=1 cluster, not a cluster.
        let ceiling = match setup {
            Setup::Cluster(n) => Some(scaling_ceiling(m, *n)),
            Setup::Standalone => None,
        };
        let fixed = |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v:.2}{unit}"));
        let share = match (scaling, ceiling) {
            (Some(s), Some(c)) => format!("{:.0}%", 100.0 * s / c),
            _ => "-".into(),
        };
        let failed: u64 = samples.iter().map(|t| t.failed).sum();
        println!(
            "{:<24} | {:>8.0} | {:>7.0} – {:>7.0} | {:>8} | {:>7} | {:>7} | {:>6.1} | {:>6.1} | {:<23} | {:>12} | {:>6}",
            setup.label(),
            m.rate,
            min,
            max,
            fixed(scaling, "×"),
            fixed(ceiling, "×"),
            share,
            m.worker_us,
            m.client_us,
            cores_list(&m.worker_cores),
            format!("{:.2} / {:.2}", m.cores_ours, m.cores_others),
            failed
        );
    }
    let cores = support::cpus();
    println!(
        "  the clients connect one at a time over the first {:.1} s of the warm-up: connecting \
         all at once, on a machine with few cores, one worker may accept every connection before \
         another is scheduled, and keep them all (keep-alive)",
        RAMP.as_secs_f64()
    );
    println!(
        "  ceiling = min(N, cores × the workers' share of the CPU a request costs in all, worker \
         + client + daemon, in that setup's median round): a worker is one thread, and the load \
         generator runs on the same {cores} cores"
    );
    let (n, target) = scaling_target();
    let at_cores = rows
        .iter()
        .find(|(s, _)| *s == Setup::Cluster(n))
        .map(|(_, samples)| median_round(samples));
    match at_cores {
        Some(m) => {
            let ceiling = scaling_ceiling(m, n);
            let fits = if target <= ceiling {
                format!(
                    "the target is {:.0}% of it, the rest left for the scheduler switching \
                     between more runnable threads (workers and the load generator's) than \
                     cores, and for what else the machine runs",
                    100.0 * target / ceiling
                )
            } else {
                "below the target, out of reach: a larger INFANT_BENCH_WORK_US shrinks the load \
                 generator's share"
                    .to_string()
            };
            println!(
                "  target: N={n} (= cores) scaling ≥ {TARGET_SCALING_PER_CORE} × {cores} = \
                 {target:.2}×; at N={n} the load generator and the daemon took {:.1}% of the CPU \
                 ({:.1} + {:.3} of {:.1} µs per request), a {ceiling:.2}× ceiling; {fits}",
                100.0 * (1.0 - m.worker_us / request_us(m)),
                m.client_us,
                m.daemon_us.unwrap_or(0.0),
                request_us(m)
            );
        }
        None => println!("  target: N={n} (= cores) scaling; no N={n} cluster measured"),
    }
    print_request_total(rows);
}

// ---------------------------------------------------------------------------
// 2. Split
// ---------------------------------------------------------------------------

struct Split {
    n: u32,
    totals: Totals,
    /// Requests per worker pid, from `EachWorker`.
    counted: BTreeMap<u32, u64>,
    /// Whether the heartbeat counts caught up with the responses.
    complete: bool,
}

async fn split(bins: &Binaries, n: u32, options: &Options) -> Result<Split> {
    let mut cluster = Cluster::start(bins, "split", n, 0).await?;
    let before: BTreeMap<u32, u64> = cluster
        .workers()
        .await?
        .iter()
        .map(|w| (w.pid, w.requests))
        .collect();
    let load = Load::start(Plan {
        addr: cluster.addr,
        mode: Mode::NewConnection,
        clients: options.clients,
        max_requests: SPLIT_MAX_REQUESTS,
        limit: options.secs,
        record: true,
    });
    let began = Instant::now();
    while began.elapsed() < options.secs && load.ok() < SPLIT_MAX_REQUESTS {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let totals = load.finish().await;
    // The counts reach the daemon in heartbeats: wait for them to add up to
    // what was answered, a few heartbeats at most.
    let began = Instant::now();
    let (counted, complete) = loop {
        let counted: BTreeMap<u32, u64> = cluster
            .workers()
            .await?
            .iter()
            .map(|w| {
                let base = before.get(&w.pid).copied().unwrap_or(0);
                (w.pid, w.requests.saturating_sub(base))
            })
            .collect();
        let sum: u64 = counted.values().sum();
        if sum >= totals.ok {
            break (counted, true);
        }
        if began.elapsed() > Duration::from_millis(20 * HEARTBEAT_MS as u64) {
            break (counted, false);
        }
        tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS as u64 / 4)).await;
    };
    cluster.stop().await?;
    Ok(Split {
        n,
        totals,
        counted,
        complete,
    })
}

fn print_split(splits: &[Split], options: &Options) {
    println!(
        "2. Request split, a new connection per request, {} clients, ≤ {:.1} s or {} requests \
         (no target: the kernel's accept distribution)",
        options.clients,
        options.secs.as_secs_f64(),
        SPLIT_MAX_REQUESTS
    );
    println!(
        "{:>3} | {:>8} | {:>6} | {:<44} | {:>7} | {:<10}",
        "N", "answered", "failed", "requests per worker (EachWorker)", "max/min", "bodies"
    );
    println!("{}", "-".repeat(94));
    for s in splits {
        let counts: Vec<u64> = s.counted.values().copied().collect();
        let max = counts.iter().copied().max().unwrap_or(0);
        let min = counts.iter().copied().min().unwrap_or(0);
        let ratio = if min == 0 {
            "∞".to_string()
        } else {
            format!("{:.2}", max as f64 / min as f64)
        };
        // The bodies name the worker: `pid <pid>`.
        let agree = s.counted.iter().all(|(pid, n)| {
            s.totals
                .bodies
                .get(&format!("pid {pid}"))
                .copied()
                .unwrap_or(0)
                == *n
        });
        let bodies = match (s.complete, agree) {
            (true, true) => "agree",
            (true, false) => "DIFFER",
            (false, _) => "counts late",
        };
        println!(
            "{:>3} | {:>8} | {:>6} | {:<44} | {:>7} | {:<10}",
            s.n,
            s.totals.ok,
            s.totals.failed,
            counts
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" / "),
            ratio,
            bodies
        );
        if !s.totals.errors.is_empty() {
            println!("      errors: {:?}", s.totals.errors);
        }
    }
    println!();
}

// ---------------------------------------------------------------------------
// 3. Rolling restart under load
// ---------------------------------------------------------------------------

struct Roll {
    wall: Duration,
    keep_alive: Totals,
    fresh: Totals,
}

async fn roll_under_load(bins: &Binaries, options: &Options) -> Result<Roll> {
    let mut cluster = Cluster::start(bins, "roll", ROLL_WORKERS, 0).await?;
    let limit = Duration::from_secs(120);
    let half = options.clients / 2;
    let plan = |mode, clients| Plan {
        addr: cluster.addr,
        mode,
        clients,
        max_requests: MAX_RATE * limit.as_secs(),
        limit,
        record: false,
    };
    let keep_alive = Load::start(plan(Mode::KeepAlive, options.clients - half));
    let fresh = Load::start(plan(Mode::NewConnection, half));
    tokio::time::sleep(ROLL_MARGIN).await;
    let wall = cluster.rolling_restart().await;
    tokio::time::sleep(ROLL_MARGIN).await;
    let keep_alive = keep_alive.finish().await;
    let fresh = fresh.finish().await;
    let wall = wall?;
    cluster.stop().await?;
    Ok(Roll {
        wall,
        keep_alive,
        fresh,
    })
}

fn print_roll(roll: &Roll, options: &Options) {
    println!(
        "3. Rolling restart of {ROLL_WORKERS} workers under load ({} keep-alive + {} \
         new-connection clients, {:.0} s before and after): Restart took {:.0} ms",
        options.clients - options.clients / 2,
        options.clients / 2,
        ROLL_MARGIN.as_secs_f64(),
        ms(roll.wall)
    );
    println!(
        "{:<16} | {:>9} | {:>6} | {:>34}",
        "clients", "answered", "failed", "retried (keep-alive closed idle)"
    );
    println!("{}", "-".repeat(74));
    for (label, t) in [
        ("keep-alive", &roll.keep_alive),
        ("new connection", &roll.fresh),
    ] {
        println!(
            "{:<16} | {:>9} | {:>6} | {:>34}",
            label, t.ok, t.failed, t.retried
        );
        if !t.errors.is_empty() {
            println!("      errors: {:?}", t.errors);
        }
    }
    println!();
}

// ---------------------------------------------------------------------------
// 4. Rolling restart time
// ---------------------------------------------------------------------------

async fn restart_times(bins: &Binaries, runs: usize) -> Result<Vec<Duration>> {
    let mut cluster = Cluster::start(bins, "eight", RESTART_WORKERS, 0).await?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(cluster.rolling_restart().await?);
    }
    cluster.stop().await?;
    times.sort();
    Ok(times)
}

fn print_restarts(times: &[Duration]) {
    println!(
        "4. Rolling restart of {RESTART_WORKERS} idle workers (Restart, full=false), {} runs: \
         median {:.0} ms (min {:.0}, max {:.0}); {:.1} ms per worker",
        times.len(),
        ms(median(times)),
        ms(times[0]),
        ms(times[times.len() - 1]),
        ms(median(times)) / RESTART_WORKERS as f64
    );
    println!();
}

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

fn print_targets(
    rows: &[(Setup, Vec<Throughput>)],
    scaling: Option<&[(Setup, Vec<Throughput>)]>,
    roll: &Roll,
) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("Targets (issue 3):");
    if let Some(ratio) = paired_ratio(rows, Setup::Cluster(1), Setup::Standalone) {
        println!(
            "  N=1 cluster / lone worker  ≥ {TARGET_RATIO_N1:.2}   measured {ratio:.3}   {}",
            verdict(ratio >= TARGET_RATIO_N1)
        );
    }
    if let Some(one) = rate_of(rows, Setup::Cluster(1)) {
        let cores = support::cpus();
        for n in COUNTS.into_iter().filter(|&n| n > 1) {
            if let Some(rate) = rate_of(rows, Setup::Cluster(n)) {
                println!(
                    "  N={n} scaling               near-linear to {cores} cores, load generator \
                     on the same cores: measured {:.2}×",
                    rate / one
                );
            }
        }
    }
    let (n, target) = scaling_target();
    match scaling {
        None => println!("  N=cores scaling, CPU-bound: not measured (INFANT_BENCH_WORK_US=0)"),
        Some(scaling) => match paired_ratio(scaling, Setup::Cluster(n), Setup::Cluster(1)) {
            None => {
                println!("  N=cores scaling, CPU-bound: no N={n} cluster measured (N = {COUNTS:?})")
            }
            Some(measured) => println!(
                "  N={n} (cores) scaling, CPU-bound ≥ {target:.2}   measured {measured:.2}×   {}",
                verdict(measured >= target)
            ),
        },
    }
    let failed = roll.keep_alive.failed + roll.fresh.failed;
    println!(
        "  failed during rolling restart = {TARGET_ROLL_FAILED}    measured {failed}       {}",
        verdict(failed == TARGET_ROLL_FAILED)
    );
}
