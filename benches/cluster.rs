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
const TARGET_ROLL_FAILED: u64 = 0;

struct Options {
    secs: Duration,
    rounds: usize,
    clients: usize,
    runs: usize,
}

fn main() -> Result<()> {
    let options = Options {
        secs: Duration::from_secs_f64(env_number("INFANT_BENCH_SECS", 5.0)?),
        rounds: env_number("INFANT_BENCH_ROUNDS", 3.0)? as usize,
        clients: env_number("INFANT_BENCH_CONNS", 32.0)? as usize,
        runs: env_number("INFANT_BENCH_RUNS", 3.0)? as usize,
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
    // 1. Throughput: the setups take turns so drift in the machine's load
    // spreads over all of them.
    let mut setups = vec![Setup::Standalone];
    setups.extend(COUNTS.map(Setup::Cluster));
    let mut samples: Vec<Vec<Throughput>> = setups.iter().map(|_| Vec::new()).collect();
    for round in 0..options.rounds {
        for (setup, samples) in setups.iter().zip(&mut samples) {
            let t = throughput(bins, *setup, options).await?;
            println!(
                "  round {}: {:<24} {:>9.0} req/s   cores busy: bench {:.2}, others {:.2}",
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
    let rows: Vec<(Setup, Vec<Throughput>)> = setups.into_iter().zip(samples).collect();
    print_throughput(&rows);

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

    print_targets(&rows, &roll);
    Ok(())
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
    async fn start(bins: &Binaries) -> Result<Standalone> {
        // A port free a moment ago; the worker binds it through `HTTP_ADDR`.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?;
        let child = Command::new(&bins.worker)
            .env("HTTP_ADDR", addr.to_string())
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
    async fn start(bins: &Binaries, name: &'static str, n: u32) -> Result<Cluster> {
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
}

async fn throughput(bins: &Binaries, setup: Setup, options: &Options) -> Result<Throughput> {
    match setup {
        Setup::Standalone => {
            let worker = Standalone::start(bins).await?;
            let t = measure(worker.addr, &[worker.pid()], None, options).await?;
            worker.stop().await?;
            Ok(t)
        }
        Setup::Cluster(n) => {
            let mut cluster = Cluster::start(bins, "web", n).await?;
            let pids: Vec<i32> = cluster
                .ok_pids()
                .await?
                .into_iter()
                .map(|p| p as i32)
                .collect();
            ensure!(pids.len() == n as usize, "{} of {n} workers ok", pids.len());
            let daemon = cluster.daemon.pid();
            let t = measure(cluster.addr, &pids, Some(daemon), options).await?;
            cluster.stop().await?;
            Ok(t)
        }
    }
}

/// Keep-alive load on `addr`: a warm-up, then the measured window.
async fn measure(
    addr: SocketAddr,
    workers: &[i32],
    daemon: Option<i32>,
    options: &Options,
) -> Result<Throughput> {
    let total = WARMUP + options.secs;
    let load = Load::start(Plan {
        addr,
        mode: Mode::KeepAlive,
        clients: options.clients,
        max_requests: MAX_RATE * total.as_secs().max(1) * 2,
        limit: total + Duration::from_secs(5),
        record: false,
    });
    tokio::time::sleep(WARMUP).await;
    let cpu = |pids: &[i32]| -> Result<Duration> {
        pids.iter()
            .map(|&p| thread_cpu(p))
            .sum::<Result<Duration>>()
    };
    let me = [std::process::id() as i32];
    let daemon_pids: Vec<i32> = daemon.into_iter().collect();
    let (ok0, t0) = (load.ok(), Instant::now());
    let (w0, c0, d0) = (cpu(workers)?, cpu(&me)?, cpu(&daemon_pids)?);
    let busy0 = support::machine_busy()?;
    tokio::time::sleep(options.secs).await;
    let (ok1, wall) = (load.ok(), t0.elapsed());
    let (w1, c1, d1) = (cpu(workers)?, cpu(&me)?, cpu(&daemon_pids)?);
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

/// `setup`'s rate over the lone worker's in the same round, median over rounds:
/// pairing rounds cancels drift in what else the machine is doing.
fn paired_ratio(rows: &[(Setup, Vec<Throughput>)], setup: Setup) -> Option<f64> {
    let samples = |s: Setup| rows.iter().find(|(r, _)| *r == s).map(|(_, t)| t);
    let (alone, this) = (samples(Setup::Standalone)?, samples(setup)?);
    let mut ratios: Vec<f64> = alone
        .iter()
        .zip(this)
        .map(|(a, t)| t.rate / a.rate)
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
            Setup::Cluster(_) => {
                paired_ratio(rows, *setup).map_or("-".into(), |r| format!("{r:.3}"))
            }
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
    let requests: u64 = rows
        .iter()
        .flat_map(|(_, s)| s.iter().map(|t| t.requests))
        .sum();
    println!("  ({requests} requests measured in all)");
    println!();
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
    let mut cluster = Cluster::start(bins, "split", n).await?;
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
    let mut cluster = Cluster::start(bins, "roll", ROLL_WORKERS).await?;
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
    let mut cluster = Cluster::start(bins, "eight", RESTART_WORKERS).await?;
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

fn print_targets(rows: &[(Setup, Vec<Throughput>)], roll: &Roll) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("Targets (issue 3):");
    if let Some(ratio) = paired_ratio(rows, Setup::Cluster(1)) {
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
    let failed = roll.keep_alive.failed + roll.fresh.failed;
    println!(
        "  failed during rolling restart = {TARGET_ROLL_FAILED}    measured {failed}       {}",
        verdict(failed == TARGET_ROLL_FAILED)
    );
}
