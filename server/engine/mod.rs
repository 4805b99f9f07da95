//! The supervisor engine: one task that owns every program and instance.
//!
//! It loops over a `select!` on three inputs — commands from [`EngineHandle`]s,
//! exits from the reaper, and its own timers — and publishes every change on the
//! [`events::EventBus`]. No lock, no shared state: a command is applied whole before
//! the next one is looked at, which is what makes the supervisor's promises (no
//! lost process, no double respawn) easy to check.
//!
//! The work is split by concern, each an `impl Engine` block:
//! [`start`] (starting programs and spawning instances), [`exit`] (exits and
//! respawns), [`stop`] (`Stop`, `Restart`, stop windows), [`jobs`] (`once` runs),
//! [`workers`] (the SDK channel, `Send`, `Kill`), [`scale`] (`Scale`
//! and rolling restarts), [`recycle`] (heartbeat timeouts and recycling),
//! [`order`] (`after` dependencies and ordered stops), [`redefine`] (what a
//! config reload asks: new definitions, forgetting; its [`plan`] is pure),
//! [`query`] (`List`, `EachWorker`). Every call into the operating system goes
//! through [`os::Os`].

pub mod backoff;
pub mod events;
mod exit;
mod handle;
mod jobs;
mod leftovers;
mod notify;
mod order;
pub mod os;
pub mod plan;
mod query;
mod recycle;
mod redefine;
mod scale;
mod start;
pub mod state;
mod stop;
pub mod worker_msg;
mod workers;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::unistd::Pid;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamExt;
use tokio_util::time::DelayQueue;

pub use handle::{Command, EngineHandle, FailedDependency};

use self::events::{Event, EventBus, EventKind};
use self::os::Os;
use self::state::{Program, ProgramInfo, ProgramStatus, Run, Until};
use crate::daemon::error::{Error, Result};
use crate::daemon::process::contain::Containment;
use crate::daemon::process::reaper::{self, Exit};

/// Timers the engine sets for itself. Each names its instance by program and id
/// and is checked against the instance's state when it fires, so a timer that
/// outlived its purpose does nothing.
#[derive(Debug, Clone)]
enum Timer {
    /// A plain instance has lived through its start grace: it is `ok`.
    /// `timeout_set`: its [`Timer::StartTimeout`] is set already; if not, and
    /// it still waits (for an SDK worker's `Ready`), it is set now.
    StartGrace {
        program: String,
        id: u64,
        pid: Pid,
        timeout_set: bool,
    },
    /// The stop window of an instance is over: SIGKILL its group.
    KillDeadline { program: String, id: u64, pid: Pid },
    /// The hold-down of an instance in backoff is over: respawn it.
    Respawn { program: String, id: u64 },
    /// Once per heartbeat interval while a program runs: find hung workers and,
    /// in enhanced clusters, workers due for recycling.
    Tick { program: String, generation: u64 },
    /// A worker of the program will have been silent for 8 intervals before the
    /// next tick: check for hung workers at that moment.
    HungCheck { program: String, generation: u64 },
    /// An instance has had its `start_timeout` to become `ok`.
    StartTimeout { program: String, id: u64, pid: Pid },
    /// A `once` job has run for its `timeout`: kill it.
    JobTimeout { program: String, id: u64, pid: Pid },
    /// A deferred [`Engine::trim_memory`].
    TrimMemory,
    /// The search for what exited instances left behind ended unsure: search
    /// again (see [`Engine::recheck_leftovers_later`]).
    RecheckLeftovers,
}

/// Where the engine's instances find the daemon, and what they are told.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The socket workers attach to (`INFANT_SOCKET`).
    pub socket: PathBuf,
    /// Trim the process's resident memory after bursts (see [`Engine::trim_memory`]).
    pub trim_memory: bool,
    /// The `NOTIFY_SOCKET` given to `ready = "notify"` instances, if the daemon
    /// listens on one (see [`notify`]).
    pub notify_socket: Option<String>,
    /// The socket that serves only the worker channel, to any user (an
    /// instance's token is its credential): the `INFANT_SOCKET` of instances
    /// that run as another user than the daemon's, which the control socket
    /// would refuse.
    pub worker_socket: Option<String>,
    /// Where instances' stdout and stderr go.
    pub logs: crate::daemon::logs::Logs,
}

/// The engine task's state.
pub struct Engine {
    config: EngineConfig,
    /// The daemon's environment, read once, less its own `INFANT_*` variables:
    /// the base every instance's environment is built on.
    inherited_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    programs: Vec<Program>,
    /// pid → (program, worker id) for every live instance process.
    pids: HashMap<Pid, (String, u64)>,
    /// Programs in the order they last started; shutdown runs it backwards.
    start_order: Vec<String>,
    events: EventBus,
    timers: DelayQueue<Timer>,
    shutdown: Option<Shutdown>,
    /// No more starts: the daemon is about to stop (see [`Engine::close`]).
    closed: bool,
    /// Ordered stops in progress.
    sequences: Vec<StopSequence>,
    /// Set while [`Engine::advance_sequences`] runs (it re-enters through settle).
    advancing: bool,
    /// A drop of cold code, data and free heap from memory is due (see [`Engine::trim_memory`]).
    trim_scheduled: bool,
    /// A [`Timer::RecheckLeftovers`] is set.
    recheck_scheduled: bool,
    /// Where the tasks watching each spawn's exec report its outcome.
    exec_tx: mpsc::UnboundedSender<ExecOutcome>,
    /// Spawning, signalling, binding and memory reads: the operating system, or
    /// a fake in unit tests.
    os: Box<dyn Os>,
    /// Cgroups and the guardian: what an instance leaves behind dies with it.
    contain: Containment,
}

/// How the exec of a spawned process went: `error` is `None` once it exec'd.
struct ExecOutcome {
    pid: Pid,
    error: Option<String>,
}

/// A daemon shutdown in progress.
struct Shutdown {
    /// Told when everything has stopped.
    done: Vec<oneshot::Sender<()>>,
}

/// Programs to stop one after another, each once the previous is idle: a
/// shutdown (reverse start order), or a `Stop` that takes down the programs
/// depending on the stopped one first.
struct StopSequence {
    queue: std::collections::VecDeque<String>,
    reason: state::StopReason,
}

/// Starts the engine task and the reaper; returns the handle.
///
/// Must run inside a tokio runtime. The engine owns all child reaping of this
/// process (see [`crate::daemon::process::reaper`]).
pub fn spawn(
    config: EngineConfig,
    contain: Containment,
) -> std::io::Result<(EngineHandle, tokio::task::JoinHandle<()>)> {
    let (exit_tx, exit_rx) = mpsc::unbounded_channel();
    reaper::start(exit_tx)?;
    Ok(spawn_with(config, Box::new(os::RealOs), contain, exit_rx))
}

/// Starts the engine task on `os`, taking the exits of its processes from
/// `exits`; returns the handle.
pub(crate) fn spawn_with(
    config: EngineConfig,
    os: Box<dyn Os>,
    contain: Containment,
    exits: mpsc::UnboundedReceiver<Exit>,
) -> (EngineHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(1024);
    let (exec_tx, exec_rx) = mpsc::unbounded_channel();
    let logs = config.logs.clone();
    let engine = Engine {
        config,
        inherited_env: std::env::vars_os()
            .filter(|(k, _)| passed_on(&k.to_string_lossy()))
            .collect(),
        programs: Vec::new(),
        pids: HashMap::new(),
        start_order: Vec::new(),
        events: EventBus::new(),
        timers: DelayQueue::new(),
        shutdown: None,
        closed: false,
        sequences: Vec::new(),
        advancing: false,
        trim_scheduled: false,
        recheck_scheduled: false,
        exec_tx,
        os,
        contain,
    };
    let task = tokio::spawn(engine.run(rx, exits, exec_rx));
    (EngineHandle::new(tx, logs), task)
}

/// Whether a variable of the daemon's own environment is passed on to its
/// programs. Not the daemon's `INFANT_*`, and not what its service manager told
/// the daemon alone: `NOTIFY_SOCKET` (a program would speak for the daemon),
/// `WATCHDOG_USEC`/`WATCHDOG_PID` (the daemon's watchdog), `LISTEN_*` (the
/// daemon's activated sockets; a program's own are set per spawn).
fn passed_on(key: &str) -> bool {
    !(key.starts_with("INFANT_")
        || key.starts_with("LISTEN_")
        || key.starts_with("WATCHDOG_")
        || key == "NOTIFY_SOCKET")
}

impl Engine {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut exits: mpsc::UnboundedReceiver<Exit>,
        mut execs: mpsc::UnboundedReceiver<ExecOutcome>,
    ) {
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    // Every handle is gone: nobody can ask for anything any more.
                    None => break,
                },
                Some(exit) = exits.recv() => self.on_exit(exit),
                Some(exec) = execs.recv() => self.on_exec(exec.pid, exec.error),
                Some(expired) = self.timers.next(), if !self.timers.is_empty() => {
                    self.on_timer(expired.into_inner());
                }
            }
            if self.shutdown_finished() {
                break;
            }
        }
        // Leave nothing behind even if the loop ended early.
        self.kill_everything();
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Define(specs, reply) => {
                let _ = reply.send(self.define(specs, true));
            }
            Command::DefineOther(specs, reply) => {
                let _ = reply.send(self.define(specs, false));
            }
            Command::Defined(reply) => {
                let _ = reply.send(self.defined());
            }
            Command::Redefine(spec, reply) => {
                let _ = reply.send(self.redefine(*spec));
            }
            Command::Forget {
                name,
                check_only,
                reply,
            } => {
                let _ = reply.send(self.forget(&name, check_only));
            }
            Command::Announce(plan) => self.announce(plan),
            Command::Start {
                name,
                def,
                wait,
                failed_dependency,
                reply,
            } => self.start(name, def, wait, failed_dependency, reply),
            Command::Stop {
                name,
                timeout,
                reply,
            } => self.stop(name, timeout, reply),
            Command::Restart { name, full, reply } => self.restart(name, full, reply),
            Command::Send {
                name,
                worker,
                payload,
                reply,
            } => {
                let _ = reply.send(self.send(&name, worker, payload));
            }
            Command::Kill {
                name,
                worker,
                signal,
                reply,
            } => {
                let _ = reply.send(self.kill(&name, worker, signal));
            }
            Command::Scale { name, count, reply } => self.scale(name, count, reply),
            Command::List { name, reply } => {
                let _ = reply.send(self.list(name.as_deref()));
            }
            Command::Workers { name, reply } => {
                let _ = reply.send(self.workers(name.as_deref()));
            }
            Command::Running(reply) => {
                let _ = reply.send(self.running_last_first());
            }
            Command::Subscribe(reply) => {
                let _ = reply.send(self.events.subscribe());
            }
            Command::Attach {
                hello,
                peer_pid,
                channel,
                reply,
            } => {
                let _ = reply.send(self.attach(hello, peer_pid, channel));
            }
            Command::FromWorker(key, message) => self.on_worker_message(key, message),
            Command::Detach(key) => self.detach(key),
            Command::Shutdown(done) => self.begin_shutdown(done),
            Command::Close(done) => {
                self.close();
                let _ = done.send(());
            }
            Command::ForceShutdown => self.force_shutdown(),
            Command::Notify { pid, text } => self.on_notify(pid, &text),
        }
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::StartGrace {
                program,
                id,
                pid,
                timeout_set,
            } => self.start_grace_over(&program, id, pid, timeout_set),
            Timer::KillDeadline { program, id, pid } => self.kill_deadline(&program, id, pid),
            Timer::Respawn { program, id } => self.respawn(&program, id),
            Timer::Tick {
                program,
                generation,
            } => self.tick(&program, generation),
            Timer::HungCheck {
                program,
                generation,
            } => self.hung_check(&program, generation),
            Timer::JobTimeout { program, id, pid } => self.job_timeout(&program, id, pid),
            Timer::StartTimeout { program, id, pid } => self.start_timed_out(&program, id, pid),
            Timer::TrimMemory => {
                self.trim_scheduled = false;
                crate::daemon::process::trim_resident_memory();
            }
            Timer::RecheckLeftovers => {
                self.recheck_scheduled = false;
                self.search_leftovers();
            }
        }
    }

    fn after(&mut self, delay: Duration, timer: Timer) {
        // The timer wheel panics on a deadline more than about two years out.
        // Every duration is validated to at most 7 days on the way in; this
        // keeps a missed path from taking the engine down.
        self.timers
            .insert(timer, delay.min(crate::daemon::spec::MAX_DURATION));
    }

    /// Index of the program called `name`.
    fn find(&self, name: &str) -> Result<usize> {
        self.programs
            .iter()
            .position(|p| p.spec.name == name)
            .ok_or_else(|| Error::UnknownProgram(name.to_string()))
    }

    fn define(
        &mut self,
        specs: Vec<crate::daemon::spec::ProgramSpec>,
        configured: bool,
    ) -> Result<()> {
        for spec in &specs {
            if self.find(&spec.name).is_ok() {
                return Err(Error::Precondition {
                    program: spec.name.clone(),
                    reason: "is already defined".into(),
                });
            }
        }
        for spec in specs {
            let mut program = Program::new(spec);
            program.configured = configured;
            self.programs.push(program);
        }
        Ok(())
    }

    /// Publishes an event.
    fn publish(&mut self, event: Event) {
        self.events.publish(event);
    }

    /// Recomputes program `index`'s status, publishes a change, and answers the
    /// waiters whose condition now holds. Call after every state change.
    fn settle(&mut self, index: usize) {
        let program = &mut self.programs[index];
        let before = program.status;
        let after = program.derive_status();
        if before != after {
            program.status = after;
            if after == ProgramStatus::Ok {
                // Whole again: the error was about a state that is over (the
                // events keep its history).
                program.last_error = None;
            }
            let name = program.spec.name.clone();
            let mut event = Event::new(&name, EventKind::Status);
            event.program_status = Some(after);
            self.publish(event);
            // The end of a start or a stop: a burst of code that ran once.
            if !matches!(after, ProgramStatus::Starting | ProgramStatus::Stopping) {
                self.trim_memory();
            }
            match after {
                ProgramStatus::Ok => self.publish(Event::new(&name, EventKind::Started)),
                ProgramStatus::Ready | ProgramStatus::Error | ProgramStatus::Fatal
                    if before == ProgramStatus::Stopping =>
                {
                    self.publish(Event::new(&name, EventKind::Stopped))
                }
                _ => {}
            }
        }

        let program = &mut self.programs[index];
        let info = program.info();
        // A waiter for `ok` that nothing under way can satisfy is answered now,
        // not left to hang until some later request happens to bring it up.
        let out_of_reach = program.ok_out_of_reach();
        let waiters = std::mem::take(&mut program.waiters);
        for waiter in waiters {
            let done = match &waiter.until {
                Until::Ok => program.status == ProgramStatus::Ok,
                Until::Gone(ids) => !program.instances.iter().any(|i| ids.contains(&i.id)),
                Until::Idle => matches!(program.run, Run::Idle),
            };
            if done {
                let _ = waiter.reply.send(Ok(info.clone()));
            } else if waiter.until == Until::Ok && out_of_reach {
                let reason = match &program.last_error {
                    Some(error) => format!("did not become ok: {error}"),
                    None if program.is_running() => {
                        "cannot become ok: workers are missing and none is starting".to_string()
                    }
                    // Its instances ended on their own with a success code,
                    // which this restart policy does not start again.
                    None if program.desired == 0
                        && program.spec.restart != crate::daemon::spec::Restart::Always =>
                    {
                        format!(
                            "finished before it became ok: it exited with a success code, \
                             which restart = \"{}\" does not start again",
                            program.spec.restart.as_str()
                        )
                    }
                    None => "was stopped before it became ok".to_string(),
                };
                let _ = waiter.reply.send(Err(Error::Precondition {
                    program: program.spec.name.clone(),
                    reason,
                }));
            } else {
                program.waiters.push(waiter);
            }
        }
        self.after_settle(index);
    }

    /// Fails every waiter of program `index` waiting for `ok`.
    fn fail_ok_waiters(&mut self, index: usize, error: impl Fn() -> Error) {
        let program = &mut self.programs[index];
        let waiters = std::mem::take(&mut program.waiters);
        for waiter in waiters {
            if waiter.until == Until::Ok {
                let _ = waiter.reply.send(Err(error()));
            } else {
                program.waiters.push(waiter);
            }
        }
    }

    /// Follow-ups once a program's state settled: a full restart's second half,
    /// the next step of a rolling restart, programs whose dependencies are now
    /// up, the next program of an ordered stop.
    fn after_settle(&mut self, index: usize) {
        let program = &self.programs[index];
        if matches!(program.run, Run::Stopping(_)) && program.instances.is_empty() {
            self.finish_stop(index);
        }
        self.advance_rollout(index);
        self.start_waiting();
        self.advance_sequences();
    }

    /// Whether starts are refused: the daemon is stopping, or about to.
    fn closing(&self) -> bool {
        self.closed || self.shutdown.is_some()
    }

    /// Takes no more starts: programs waiting for their dependencies never
    /// start now.
    fn close(&mut self) {
        self.closed = true;
        for index in 0..self.programs.len() {
            if matches!(self.programs[index].run, Run::Waiting) {
                self.cancel_waiting(index, "the daemon is shutting down");
            }
        }
    }

    fn begin_shutdown(&mut self, done: oneshot::Sender<()>) {
        if let Some(shutdown) = &mut self.shutdown {
            shutdown.done.push(done);
            return;
        }
        tracing::info!("shutting down: stopping programs in reverse start order");
        self.shutdown = Some(Shutdown { done: vec![done] });
        self.close();
        let mut order: Vec<String> = self.start_order.iter().rev().cloned().collect();
        // Anything running that is somehow not in the start order goes last.
        for program in &self.programs {
            if !order.contains(&program.spec.name) {
                order.push(program.spec.name.clone());
            }
        }
        self.sequences.clear();
        self.sequences.push(StopSequence {
            queue: order.into(),
            reason: state::StopReason::Shutdown,
        });
        self.advance_sequences();
    }

    fn shutdown_finished(&mut self) -> bool {
        let Some(shutdown) = &mut self.shutdown else {
            return false;
        };
        let all_idle =
            self.sequences.is_empty() && self.programs.iter().all(|p| matches!(p.run, Run::Idle));
        if !all_idle {
            return false;
        }
        for done in shutdown.done.drain(..) {
            let _ = done.send(());
        }
        true
    }

    fn force_shutdown(&mut self) {
        tracing::warn!("forced shutdown: killing every instance");
        if self.shutdown.is_none() {
            self.shutdown = Some(Shutdown { done: Vec::new() });
        }
        self.sequences.clear();
        for index in 0..self.programs.len() {
            match self.programs[index].run {
                Run::Idle => {}
                Run::Waiting => self.cancel_waiting(index, "the daemon is shutting down"),
                Run::Running | Run::Stopping(_) => {
                    self.begin_stop(index, state::StopReason::Shutdown, Duration::ZERO)
                }
            }
        }
    }

    /// Last resort when the loop ends: SIGKILL every group and reap what we can.
    fn kill_everything(&mut self) {
        for pid in self.pids.keys() {
            let _ = self
                .os
                .signal_group(*pid, nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// Drops cold code, read-only data and free heap pages from the resident set
    /// once a burst of activity (a start, a stop) has settled — see
    /// [`crate::daemon::process::trim_resident_memory`].
    /// Deferred a little, so the code that finishes the burst (replies, events)
    /// has run and is dropped too; a burst within the delay joins the same trim.
    fn trim_memory(&mut self) {
        const SETTLE: Duration = Duration::from_millis(500);
        if self.config.trim_memory && !self.trim_scheduled {
            self.trim_scheduled = true;
            self.after(SETTLE, Timer::TrimMemory);
        }
    }

    /// Info for program `index`.
    fn info(&self, index: usize) -> ProgramInfo {
        self.programs[index].info()
    }
}
