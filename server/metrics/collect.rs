//! One scrape: the engine's snapshots and the daemon's own figures, encoded.
//!
//! Names are prefixed `infant_`; per-program series carry the label `program`,
//! per-instance series `program` and `worker` (the worker id, stable across
//! respawns). Pids are never labels: they would make a new series per respawn.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::tally::Tally;
use crate::daemon::engine::state::{InstanceStatus, ProgramInfo, ProgramStatus, WorkerInfo};
use crate::daemon::engine::EngineHandle;
use crate::daemon::error::Result;
use crate::daemon::grpc::RpcStats;
use crate::daemon::process::rss::rss_bytes;

/// Every program status, in the order the `status` series lists them.
const STATUSES: [(ProgramStatus, &str); 6] = [
    (ProgramStatus::Ready, "ready"),
    (ProgramStatus::Starting, "starting"),
    (ProgramStatus::Ok, "ok"),
    (ProgramStatus::Stopping, "stopping"),
    (ProgramStatus::Error, "error"),
    (ProgramStatus::Fatal, "fatal"),
];

/// The size of the last page encoded: the next one's first guess.
static LAST_PAGE: AtomicUsize = AtomicUsize::new(0);

/// What one scrape reports.
#[derive(Debug)]
pub struct Snapshot {
    programs: Vec<(ProgramInfo, super::tally::ProgramTally)>,
    workers: Vec<WorkerInfo>,
    daemon_rss: u64,
    open_fds: u64,
    drops: u64,
    watchers: u64,
    calls: Vec<(&'static str, &'static str, u64)>,
    logs: Vec<crate::daemon::logs::LogStats>,
}

impl Snapshot {
    /// Asks the engine and reads the daemon's own figures.
    pub async fn take(engine: &EngineHandle, tally: &Tally, rpcs: &RpcStats) -> Result<Snapshot> {
        let programs = engine.list(None).await?;
        let workers = engine.workers(None).await?;
        let programs = programs
            .into_iter()
            .map(|program| {
                let counts = tally.program(&program.name);
                (program, counts)
            })
            .collect();
        Ok(Snapshot {
            programs,
            workers,
            daemon_rss: rss_bytes(nix::unistd::getpid()).unwrap_or(0),
            open_fds: open_fds(),
            drops: tally.drops() + rpcs.drops(),
            watchers: rpcs.watchers(),
            calls: rpcs.calls(),
            logs: engine.logs().stats(),
        })
    }

    /// The OpenMetrics text of this snapshot.
    pub fn encode(self) -> std::result::Result<String, fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        // Sized like the last page (plus some room), so the text is written
        // once instead of copied through a dozen doublings on the way to
        // hundreds of kilobytes. The buffer itself goes out with the reply.
        let mut text = String::with_capacity(LAST_PAGE.load(Ordering::Relaxed) / 8 * 9);
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        LAST_PAGE.store(text.len(), Ordering::Relaxed);
        Ok(text)
    }
}

/// The daemon's open file descriptors.
fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count() as u64)
}

type ProgramLabel<'a> = [(&'static str, &'a str); 1];
type StatusLabels<'a> = [(&'static str, &'a str); 2];
type WorkerLabels<'a> = ([(&'static str, &'a str); 1], [(&'static str, u64); 1]);
/// The daemon's own series have no labels.
const NO_LABELS: [(&str, &str); 0] = [];

fn gauge<T>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl Iterator<Item = (T, i64)>,
) -> fmt::Result
where
    T: prometheus_client::encoding::EncodeLabelSet,
{
    let mut family =
        encoder.encode_descriptor(name, help, unit, ConstGauge::new(0i64).metric_type())?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge_f64<T>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl Iterator<Item = (T, f64)>,
) -> fmt::Result
where
    T: prometheus_client::encoding::EncodeLabelSet,
{
    let mut family =
        encoder.encode_descriptor(name, help, unit, ConstGauge::new(0f64).metric_type())?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter<T>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl Iterator<Item = (T, u64)>,
) -> fmt::Result
where
    T: prometheus_client::encoding::EncodeLabelSet,
{
    let mut family =
        encoder.encode_descriptor(name, help, unit, ConstCounter::new(0u64).metric_type())?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn program(p: &ProgramInfo) -> ProgramLabel<'_> {
    [("program", p.name.as_str())]
}

fn worker(w: &WorkerInfo) -> WorkerLabels<'_> {
    ([("program", w.program.as_str())], [("worker", w.id)])
}

fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let programs = || self.programs.iter();

        // Per program.
        counter(
            &mut encoder,
            "infant_log_written",
            "Bytes of program output written to its log files",
            Some(&Unit::Bytes),
            self.logs
                .iter()
                .map(|l| ([("program", l.program.as_str())], l.written)),
        )?;
        counter(
            &mut encoder,
            "infant_log_dropped",
            "Bytes of program output dropped: its log files could not be written, or not as \
             fast as it wrote",
            Some(&Unit::Bytes),
            self.logs
                .iter()
                .map(|l| ([("program", l.program.as_str())], l.dropped)),
        )?;
        gauge(
            &mut encoder,
            "infant_program_status",
            "1 for the program's current status, 0 for the others",
            None,
            programs().flat_map(|(p, _)| {
                STATUSES.iter().map(move |(status, name)| {
                    let labels: StatusLabels<'_> = [("program", p.name.as_str()), ("status", name)];
                    (labels, i64::from(p.status == *status))
                })
            }),
        )?;
        gauge(
            &mut encoder,
            "infant_program_desired_instances",
            "Instances the program should have when running",
            None,
            programs().map(|(p, _)| (program(p), i64::from(p.count))),
        )?;
        gauge(
            &mut encoder,
            "infant_program_running_instances",
            "Instances currently ok",
            None,
            programs().map(|(p, _)| (program(p), i64::from(p.running))),
        )?;
        counter(
            &mut encoder,
            "infant_program_restarts",
            "Respawns since the program was last started",
            None,
            programs().map(|(p, _)| (program(p), p.restarts)),
        )?;
        counter(
            &mut encoder,
            "infant_program_recycles",
            "Workers recycled since the daemon started",
            None,
            programs().map(|(p, t)| (program(p), t.recycles)),
        )?;
        counter(
            &mut encoder,
            "infant_program_starts_failed",
            "Instances that failed to start since the daemon started",
            None,
            programs().map(|(p, t)| (program(p), t.starts_failed)),
        )?;

        // Per instance.
        let workers = || self.workers.iter();
        gauge(
            &mut encoder,
            "infant_worker_up",
            "1 while the instance is ok, 0 while starting, stopping or in backoff",
            None,
            workers().map(|w| (worker(w), i64::from(w.status == InstanceStatus::Ok))),
        )?;
        gauge(
            &mut encoder,
            "infant_worker_resident_memory",
            "Resident set size of the instance's process",
            Some(&Unit::Bytes),
            workers().map(|w| (worker(w), count(w.rss_bytes))),
        )?;
        counter_f64(
            &mut encoder,
            "infant_worker_cpu",
            "CPU time (user and system) the instance's process has used",
            workers().map(|w| (worker(w), w.cpu.as_secs_f64())),
        )?;
        gauge(
            &mut encoder,
            "infant_worker_connections",
            "Connections the worker accepted, as last reported (SDK workers)",
            None,
            workers().map(|w| (worker(w), count(w.connections))),
        )?;
        gauge(
            &mut encoder,
            "infant_worker_requests",
            "Requests the worker served, as last reported (SDK workers)",
            None,
            workers().map(|w| (worker(w), count(w.requests))),
        )?;
        gauge_f64(
            &mut encoder,
            "infant_worker_uptime",
            "Time since the instance's process was spawned",
            Some(&Unit::Seconds),
            workers().map(|w| (worker(w), w.uptime.as_secs_f64())),
        )?;
        gauge(
            &mut encoder,
            "infant_worker_restarts",
            "Respawns of the worker's slot",
            None,
            workers().map(|w| (worker(w), count(w.restarts))),
        )?;

        // The daemon.
        gauge(
            &mut encoder,
            "infant_daemon_resident_memory",
            "Resident set size of infantd",
            Some(&Unit::Bytes),
            std::iter::once((NO_LABELS, count(self.daemon_rss))),
        )?;
        gauge(
            &mut encoder,
            "infant_daemon_open_fds",
            "File descriptors infantd has open",
            None,
            std::iter::once((NO_LABELS, count(self.open_fds))),
        )?;
        counter(
            &mut encoder,
            "infant_daemon_event_drops",
            "Events watchers (Events streams, the metrics page's own) lost by falling behind",
            None,
            std::iter::once((NO_LABELS, self.drops)),
        )?;
        gauge(
            &mut encoder,
            "infant_daemon_event_watchers",
            "Events streams open and following",
            None,
            std::iter::once((NO_LABELS, count(self.watchers))),
        )?;
        counter(
            &mut encoder,
            "infant_daemon_rpcs",
            "gRPC calls answered, by method and status code",
            None,
            self.calls.iter().map(|(method, code, calls)| {
                let labels: StatusLabels<'_> = [("method", method), ("code", code)];
                (labels, *calls)
            }),
        )?;
        Ok(())
    }
}

/// CPU seconds: a counter with a fractional value, unit seconds.
fn counter_f64<T>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (T, f64)>,
) -> fmt::Result
where
    T: prometheus_client::encoding::EncodeLabelSet,
{
    let mut family = encoder.encode_descriptor(
        name,
        help,
        Some(&Unit::Seconds),
        ConstCounter::new(0f64).metric_type(),
    )?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}
