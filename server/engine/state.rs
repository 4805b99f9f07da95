//! The engine's state: programs, their instances, and the snapshots it hands out.
//!
//! Only the engine task touches these; everything outside sees [`ProgramInfo`] and
//! [`WorkerInfo`] copies.

use std::time::Duration;

use tokio::time::Instant;

use nix::unistd::Pid;
use tokio::sync::oneshot;

use super::worker_msg::WorkerLink;
use crate::daemon::error::Result;
use crate::daemon::process::reaper::ExitStatus;
use crate::daemon::process::sockets::BoundSocket;
use crate::daemon::spec::{Kind, ProgramSpec};

/// A program's status (docs/configuration.md, "Statuses").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramStatus {
    /// Defined, not running.
    Ready,
    /// Instances are being started.
    Starting,
    /// Every instance is `ok`.
    Ok,
    /// Instances are being stopped.
    Stopping,
    /// An instance failed to start or crashed; respawns may be pending.
    Error,
    /// Given up.
    Fatal,
}

/// An instance's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceStatus {
    /// Spawned, not yet ready.
    Starting,
    /// Running and ready.
    Ok,
    /// Asked to stop.
    Stopping,
    /// Exited.
    Dead,
    /// Waiting out its hold-down before a respawn.
    Backoff,
    /// Failed to start.
    Error,
}

/// Why the daemon stops an instance. Every one of these is master-initiated: the
/// exit that follows is never respawned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The program is stopping.
    Stop,
    /// The program is restarting.
    Restart,
    /// The worker is being recycled.
    Recycle,
    /// The cluster is shrinking.
    Scale,
    /// The daemon is shutting down.
    Shutdown,
}

impl StopReason {
    /// Lower-case word for events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Stop => "stop",
            StopReason::Restart => "restart",
            StopReason::Recycle => "recycle",
            StopReason::Scale => "scale",
            StopReason::Shutdown => "shutdown",
        }
    }
}

/// What explains an instance's process: why it was killed or failed, what it
/// reported. Most processes never have any of it, so an instance keeps it
/// boxed, and only once there is something to keep: a thousand instances
/// would otherwise carry 100 bytes each of empty strings.
#[derive(Debug, Default)]
pub struct Notes {
    /// Why the daemon killed it without stopping it (a hung worker, a
    /// `start_timeout`), for the exit event.
    pub killed_because: Option<String>,
    /// Why its exec failed (then it exited with 127).
    pub exec_error: Option<String>,
    /// Why the daemon refused its attach over the worker channel, if it did: an
    /// SDK worker then exits, and its exit says why.
    pub attach_refused: Option<String>,
    /// What the worker reported going wrong once running: a `once` run's error
    /// or its stop hook's, kept to explain the exit that follows.
    pub reported_error: Option<String>,
    /// `ready = "notify"`: the last `STATUS=` text the process sent.
    pub notify_status: String,
}

/// One process (or, while in backoff, the slot waiting for its next process).
#[derive(Debug)]
pub struct Instance {
    /// Worker id: kept across respawns, new for scale-ups and replacements.
    pub id: u64,
    /// The running process (also its process group), `None` in backoff.
    pub pid: Option<Pid>,
    /// Its status.
    pub status: InstanceStatus,
    /// The secret of the current process; a new one per spawn, so a dead process's
    /// token is worthless.
    pub token: String,
    /// When the current process was spawned.
    pub spawned_at: Instant,
    /// When it became `ok`.
    pub ok_at: Option<Instant>,
    /// Respawns of this slot.
    pub restarts: u64,
    /// Unstable crashes in a row (drives the backoff).
    pub streak: u32,
    /// The hold-down this slot is waiting out (or last waited).
    pub backoff: Duration,
    /// The SDK channel, once the worker attached.
    pub channel: Option<WorkerLink>,
    /// Connections reported by the worker.
    pub connections: u64,
    /// Requests reported by the worker.
    pub requests: u64,
    /// Set once the daemon decided to stop this process.
    pub stopping: Option<StopReason>,
    /// A signal sent through `Kill`, to explain the exit that may follow.
    pub signalled: Option<nix::sys::signal::Signal>,
    /// How the previous process of this slot ended.
    pub last_exit: Option<ExitStatus>,
    /// For a replacement (rolling restart, recycle): the worker it replaces.
    pub replaces: Option<u64>,
    /// When the worker last said anything on its channel (heartbeat timeout).
    pub last_seen: Instant,
    /// RSS when it became `ok`: the base of `max_memory_gain`.
    pub rss_at_ok: Option<u64>,
    /// The process was forked and its exec's outcome is not known yet.
    pub exec_pending: bool,
    /// An exit that came in while the exec's outcome was pending: handled once it
    /// is known, so the exit is reported with its real cause.
    pub deferred_exit: Option<crate::daemon::process::reaper::Exit>,
    /// What explains the current process's exit or state, once there is
    /// anything to say (see [`Notes`]).
    pub notes: Option<Box<Notes>>,
    /// The worker ran its stop hook and said `Stopped` unasked (SIGHUP, the
    /// SDK's config-reload convention): the exit 0 that follows is planned.
    pub stopped_itself: bool,
    /// `ready = "notify"`: the process sent `WATCHDOG=1`, so its silence counts
    /// (hung detection), as an SDK worker's does.
    pub notify_watchdog: bool,
    /// Being stopped to be started again at once (it passed `max_memory`): its
    /// exit is respawned, not taken away.
    pub respawn_after_stop: bool,
}

impl Instance {
    /// A slot with no process yet.
    pub fn new(id: u64) -> Self {
        Instance {
            id,
            pid: None,
            status: InstanceStatus::Starting,
            token: String::new(),
            spawned_at: Instant::now(),
            ok_at: None,
            restarts: 0,
            // A first crash respawns at once; only crashes in a row back off.
            streak: 0,
            backoff: Duration::ZERO,
            channel: None,
            connections: 0,
            requests: 0,
            stopping: None,
            signalled: None,
            last_exit: None,
            replaces: None,
            last_seen: Instant::now(),
            rss_at_ok: None,
            exec_pending: false,
            deferred_exit: None,
            notes: None,
            stopped_itself: false,
            notify_watchdog: false,
            respawn_after_stop: false,
        }
    }

    /// Its notes, made at the first one.
    pub fn notes_mut(&mut self) -> &mut Notes {
        self.notes.get_or_insert_with(Box::default)
    }

    /// Whether the daemon killed it without stopping it.
    pub fn was_killed(&self) -> bool {
        self.notes
            .as_ref()
            .is_some_and(|n| n.killed_because.is_some())
    }

    /// `ready = "notify"`: the last `STATUS=` text the process sent.
    pub fn notify_status(&self) -> &str {
        self.notes.as_ref().map_or("", |n| n.notify_status.as_str())
    }

    /// Still part of the program's capacity (not being stopped).
    pub fn is_active(&self) -> bool {
        self.stopping.is_none()
    }
}

/// What a program is doing, as the engine drives it.
#[derive(Debug)]
pub enum Run {
    /// Not running.
    Idle,
    /// Asked to start; waiting for the programs in its `after` to be up.
    Waiting,
    /// Running (or starting, or recovering from crashes).
    Running,
    /// Stopping every instance; then `then`.
    Stopping(AfterStop),
}

/// What follows a full stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Stay stopped.
    Idle,
    /// Start again (full restart).
    Restart,
}

/// A reply the engine owes once the program reaches a state.
pub struct Waiter {
    /// The condition.
    pub until: Until,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<ProgramInfo>>,
}

/// Conditions a waiter waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// The program is `ok` (fails if an instance fails to start first).
    Ok,
    /// None of these workers exist any more.
    Gone(Vec<u64>),
    /// The program is stopped.
    Idle,
}

/// A rolling restart in progress.
pub struct Rollout {
    /// Old workers still to replace, in order.
    pub pending: std::collections::VecDeque<u64>,
    /// The worker being replaced, and its replacement being started.
    pub current: Option<(u64, u64)>,
    /// Old workers already told to stop.
    pub retired: Vec<u64>,
    /// The `Restart` caller.
    pub reply: oneshot::Sender<Result<ProgramInfo>>,
}

/// A defined program.
pub struct Program {
    /// Its definition.
    pub spec: ProgramSpec,
    /// What the engine is doing with it.
    pub run: Run,
    /// The status last published.
    pub status: ProgramStatus,
    /// Live instances and slots in backoff.
    pub instances: Vec<Instance>,
    /// Instances wanted while running (changed by `Scale`).
    pub desired: u32,
    /// Next worker id.
    pub next_id: u64,
    /// Respawns since the program last started.
    pub restarts: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Sockets bound while running.
    pub sockets: Vec<BoundSocket>,
    /// Replies owed.
    pub waiters: Vec<Waiter>,
    /// A rolling restart in progress.
    pub rollout: Option<Rollout>,
    /// Recycles in progress: each worker being replaced and its replacement.
    pub recycling: Vec<(u64, u64)>,
    /// Generation of the periodic health tick; a tick of an older launch is stale.
    pub tick: u64,
    /// `once`: how the last run ended (`None` if it never ran to an end).
    pub outcome: Option<ExitStatus>,
    /// `once`: the launch ([`Program::tick`]) of each `after` program when the
    /// last run completed. The completion counts only while those launches last.
    pub ran_after: Vec<(String, u64)>,
    /// `once`: failed runs retried since the job was started.
    pub retries: u32,
    /// The daemon gave up (retries exhausted): `fatal` until started again.
    pub gave_up: bool,
    /// A `Stop`'s own window for this program's next stop.
    pub stop_override: Option<Duration>,
    /// When recent respawns happened (for `max_restarts`).
    pub recent_restarts: std::collections::VecDeque<Instant>,
    /// A worker of this program has attached over the SDK channel: its later
    /// instances wait for `Ready` even if they are slow to attach.
    pub links_sdk: bool,
    /// Defined by the config file (a reload manages it), not over the API.
    pub configured: bool,
    /// Its `listen` changed (a reload) while its sockets were bound: the next
    /// restart binds the new ones instead of keeping them.
    pub rebind: bool,
}

impl Program {
    /// A defined, idle program.
    pub fn new(spec: ProgramSpec) -> Self {
        let desired = spec.count;
        Program {
            spec,
            run: Run::Idle,
            status: ProgramStatus::Ready,
            instances: Vec::new(),
            desired,
            next_id: 1,
            restarts: 0,
            last_error: None,
            sockets: Vec::new(),
            waiters: Vec::new(),
            rollout: None,
            recycling: Vec::new(),
            tick: 0,
            outcome: None,
            ran_after: Vec::new(),
            retries: 0,
            gave_up: false,
            stop_override: None,
            recent_restarts: std::collections::VecDeque::new(),
            links_sdk: false,
            configured: false,
            rebind: false,
        }
    }

    /// The instance with worker id `id`.
    pub fn instance(&self, id: u64) -> Option<&Instance> {
        self.instances.iter().find(|i| i.id == id)
    }

    /// The instance with worker id `id`, mutably.
    pub fn instance_mut(&mut self, id: u64) -> Option<&mut Instance> {
        self.instances.iter_mut().find(|i| i.id == id)
    }

    /// Removes and returns the waiters whose condition matches `which`.
    pub fn take_waiters(&mut self, which: impl Fn(&Until) -> bool) -> Vec<Waiter> {
        let (taken, kept) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| which(&w.until));
        self.waiters = kept;
        taken
    }

    /// Whether the program cannot become `ok` without a new request: it is
    /// idle, or it runs short of workers with none starting, in backoff or
    /// failing (those it lost are not coming back).
    pub fn ok_out_of_reach(&self) -> bool {
        match self.run {
            Run::Idle => true,
            Run::Waiting | Run::Stopping(_) => false,
            Run::Running => {
                let active = self.instances.iter().filter(|i| i.is_active());
                let ok = active
                    .clone()
                    .filter(|i| i.status == InstanceStatus::Ok)
                    .count();
                let in_flight = active.clone().any(|i| {
                    matches!(
                        i.status,
                        InstanceStatus::Starting | InstanceStatus::Backoff | InstanceStatus::Error
                    )
                });
                ok < self.desired as usize && !in_flight
            }
        }
    }

    /// True while the program is meant to be up.
    pub fn is_running(&self) -> bool {
        matches!(self.run, Run::Running)
    }

    /// The status that follows from the instances and the run state.
    pub fn derive_status(&self) -> ProgramStatus {
        match self.run {
            Run::Stopping(_) => ProgramStatus::Stopping,
            Run::Waiting => ProgramStatus::Starting,
            Run::Idle if self.gave_up => ProgramStatus::Fatal,
            Run::Idle if self.last_error.is_some() => ProgramStatus::Error,
            Run::Idle => ProgramStatus::Ready,
            Run::Running => {
                let active = self.instances.iter().filter(|i| i.is_active());
                let ok = active
                    .clone()
                    .filter(|i| i.status == InstanceStatus::Ok)
                    .count();
                // A program that crashed stays `error` until it is whole again,
                // also while a respawned instance is still starting.
                if ok >= self.desired as usize {
                    ProgramStatus::Ok
                } else if self.last_error.is_some()
                    || active.clone().any(|i| {
                        matches!(i.status, InstanceStatus::Backoff | InstanceStatus::Error)
                    })
                {
                    ProgramStatus::Error
                } else {
                    ProgramStatus::Starting
                }
            }
        }
    }

    /// A snapshot for replies.
    pub fn info(&self) -> ProgramInfo {
        ProgramInfo {
            name: self.spec.name.clone(),
            kind: self.spec.kind,
            status: self.status,
            count: self.desired,
            running: self
                .instances
                .iter()
                .filter(|i| i.status == InstanceStatus::Ok)
                .count() as u32,
            restarts: self.restarts,
            error: self.last_error.clone().unwrap_or_default(),
            listen: self.sockets.iter().map(|s| s.local.clone()).collect(),
            command: self.spec.command.clone(),
            enhanced: self.spec.enhanced,
            outcome: self.outcome,
            log_dropped_bytes: 0,
        }
    }
}

/// A program as replies show it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramInfo {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Kind,
    /// Status.
    pub status: ProgramStatus,
    /// Instances wanted.
    pub count: u32,
    /// Instances `ok`.
    pub running: u32,
    /// Respawns since start.
    pub restarts: u64,
    /// Last error, empty if none.
    pub error: String,
    /// Bound listen addresses.
    pub listen: Vec<String>,
    /// The argv.
    pub command: Vec<String>,
    /// Enhanced cluster.
    pub enhanced: bool,
    /// `once`: how the last run ended.
    pub outcome: Option<ExitStatus>,
    /// Bytes of its output dropped because its log files could not be written
    /// (or not fast enough); filled in by listings.
    pub log_dropped_bytes: u64,
}

/// An instance as `EachWorker` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerInfo {
    /// Its program.
    pub program: String,
    /// Worker id.
    pub id: u64,
    /// Pid, 0 in backoff.
    pub pid: u32,
    /// Status.
    pub status: InstanceStatus,
    /// Respawns of its slot.
    pub restarts: u64,
    /// Reported connections.
    pub connections: u64,
    /// Reported requests.
    pub requests: u64,
    /// Resident memory now.
    pub rss_bytes: u64,
    /// Time since spawn.
    pub uptime: Duration,
    /// Attached over the SDK channel.
    pub attached: bool,
    /// CPU time (user + system) used since spawn, read now.
    pub cpu: Duration,
    /// `ready = "notify"`: the last `STATUS=` text it sent.
    pub notify_status: String,
    /// Bytes of its output dropped because its program's log files could not
    /// be written (or not fast enough).
    pub log_dropped_bytes: u64,
}
