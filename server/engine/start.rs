//! Starting programs and spawning their instances; readiness.

use std::ffi::OsString;
use tokio::time::Instant;

use nix::unistd::Pid;
use tokio::sync::oneshot;

use super::events::{Event, EventKind};
use super::state::{
    Instance, InstanceStatus, Program, ProgramInfo, ProgramStatus, Run, Until, Waiter,
};
use super::{Engine, FailedDependency, Timer};
use crate::daemon::error::{Error, Result};
use crate::daemon::process::setup::ExecSetup;
use crate::daemon::process::spawn;
use crate::daemon::spec::{Kind, ProgramDef, Ready};

/// How long an instance of a program known to link the SDK may take to attach
/// before it is treated as a plain process.
const SDK_ATTACH_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

impl Engine {
    /// `Start`: define if asked, then bring the program up (and what it needs,
    /// `after`). The reply waits for `ok`; for a `once` job it comes at once, or
    /// with `wait` when the job has completed.
    pub(super) fn start(
        &mut self,
        name: String,
        def: Option<Box<ProgramDef>>,
        wait: bool,
        failed_dependency: FailedDependency,
        reply: oneshot::Sender<Result<ProgramInfo>>,
    ) {
        if self.closing() {
            let _ = reply.send(Err(Error::ShuttingDown));
            return;
        }
        let index = match self.define_or_find(&name, def) {
            Ok(index) => index,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let once = self.programs[index].spec.kind == Kind::Once;
        let program = &mut self.programs[index];
        match program.run {
            Run::Running if program.status == ProgramStatus::Error && !once => {
                let reason = program.last_error.clone().unwrap_or_default();
                let _ = reply.send(Err(Error::Precondition {
                    program: name,
                    reason: format!("is running but failing ({reason}); stop or restart it"),
                }));
                return;
            }
            Run::Stopping(_) => {
                let _ = reply.send(Err(Error::Precondition {
                    program: name,
                    reason: "is stopping; start it again once it has stopped".into(),
                }));
                return;
            }
            Run::Idle => {
                if let Err(e) = self.request_start(index, failed_dependency) {
                    let _ = reply.send(Err(e));
                    return;
                }
            }
            Run::Running | Run::Waiting => {}
        }
        let until = match (once, wait) {
            (true, true) => Until::Idle,
            (true, false) => {
                let _ = reply.send(Ok(self.programs[index].info()));
                self.settle(index);
                return;
            }
            (false, _) => Until::Ok,
        };
        self.programs[index].waiters.push(Waiter { until, reply });
        self.settle(index);
    }

    fn define_or_find(&mut self, name: &str, def: Option<Box<ProgramDef>>) -> Result<usize> {
        let Some(def) = def else {
            crate::daemon::spec::validate_name(name)?;
            return self.find(name);
        };
        let spec = def.validate(name)?;
        self.check_after(&spec)?;
        match self.find(name) {
            Ok(index) => {
                if !matches!(self.programs[index].run, Run::Idle) {
                    return Err(Error::AlreadyRunning(name.to_string()));
                }
                // Redefine a stopped program: the new definition wins.
                self.programs[index] = Program::new(spec);
                Ok(index)
            }
            Err(_) => {
                self.programs.push(Program::new(spec));
                Ok(self.programs.len() - 1)
            }
        }
    }

    /// Binds sockets and spawns every instance of an idle program. On failure the
    /// program is left idle with the error recorded and nothing running.
    pub(super) fn launch(&mut self, index: usize) -> Result<()> {
        self.launch_sized(index, false)
    }

    /// [`Engine::launch`]; with `keep_size` a cluster keeps the size it was
    /// scaled to (a full restart) instead of its configured `count`.
    pub(super) fn launch_sized(&mut self, index: usize, keep_size: bool) -> Result<()> {
        let name = self.programs[index].spec.name.clone();
        if let Some(cwd) = &self.programs[index].spec.cwd {
            if !cwd.is_dir() {
                let error = Error::InvalidField {
                    program: name.clone(),
                    field: "cwd",
                    reason: format!("{} is not a directory", cwd.display()),
                };
                self.programs[index].last_error = Some(error.to_string());
                self.settle(index);
                return Err(error);
            }
        }
        if self.programs[index].sockets.is_empty() {
            let mut bound = Vec::new();
            for addr in &self.programs[index].spec.listen {
                match self.os.bind(addr) {
                    Ok(socket) => bound.push(socket),
                    Err(e) => {
                        let error = Error::Listen {
                            program: name.clone(),
                            address: addr.to_string(),
                            reason: e.to_string(),
                        };
                        self.programs[index].last_error = Some(error.to_string());
                        self.settle(index);
                        return Err(error);
                    }
                }
            }
            self.programs[index].sockets = bound;
        }

        let program = &mut self.programs[index];
        program.run = Run::Running;
        program.last_error = None;
        program.gave_up = false;
        program.restarts = 0;
        program.retries = 0;
        program.outcome = None;
        program.recent_restarts.clear();
        if !keep_size {
            program.desired = program.spec.count;
        }
        self.start_order.retain(|n| n != &name);
        self.start_order.push(name.clone());
        let heartbeat = self.programs[index].spec.heartbeat;
        self.programs[index].tick += 1;
        let generation = self.programs[index].tick;
        self.after(
            heartbeat,
            Timer::Tick {
                program: name.clone(),
                generation,
            },
        );
        if !self.programs[index].sockets.is_empty() {
            let mut event = Event::new(&name, EventKind::Status);
            event.program_status = Some(ProgramStatus::Starting);
            event.reason = format!(
                "listening on {}",
                self.programs[index]
                    .sockets
                    .iter()
                    .map(|s| s.local.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.programs[index].status = ProgramStatus::Starting;
            self.publish(event);
        }

        for _ in 0..self.programs[index].desired {
            if let Err(e) = self.add_instance(index, None) {
                // A spawn failure is deterministic (missing executable, bad cwd):
                // take down what did start and report it.
                self.programs[index].last_error = Some(e.to_string());
                self.abort(index);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Creates a new worker slot in program `index` and spawns its process.
    pub(super) fn add_instance(&mut self, index: usize, replaces: Option<u64>) -> Result<u64> {
        let program = &mut self.programs[index];
        let id = program.next_id;
        program.next_id += 1;
        let mut instance = Instance::new(id);
        instance.replaces = replaces;
        program.instances.push(instance);
        if let Err(e) = self.spawn_process(index, id) {
            self.programs[index].instances.retain(|i| i.id != id);
            return Err(e);
        }
        Ok(id)
    }

    /// Spawns the process for slot `id` of program `index` (a new slot or one in
    /// backoff) and marks it `starting`.
    pub(super) fn spawn_process(&mut self, index: usize, id: u64) -> Result<Pid> {
        let token = new_token();
        let program = &self.programs[index];
        let spec = &program.spec;
        let invalid = |field: &'static str, reason: String| Error::InvalidField {
            program: spec.name.clone(),
            field,
            reason,
        };
        // Users, groups and the env file are looked up at each start, as
        // systemd does: a change to them takes effect at the next respawn.
        let setup = ExecSetup::prepare(spec).map_err(|e| invalid(e.field, e.reason))?;
        let from_file = match &spec.env_file {
            Some(path) => {
                crate::daemon::env_file::read(path).map_err(|e| invalid("env_file", e))?
            }
            None => Vec::new(),
        };
        let mut env: Vec<(OsString, OsString)> = self.inherited_env.clone();
        let mut set = |key: &str, value: &std::ffi::OsStr| {
            env.retain(|(k, _)| k != key);
            env.push((key.into(), value.into()));
        };
        // Another user gets its own name and home, as login(1) and systemd's
        // `User=` give them.
        if let Some((user, home)) = setup.ids.as_ref().and_then(|ids| ids.account.as_ref()) {
            set("USER", user.as_ref());
            set("LOGNAME", user.as_ref());
            set("HOME", home.as_os_str());
        }
        for (key, value) in &from_file {
            if crate::daemon::spec::is_reserved_variable(key) {
                return Err(invalid(
                    "env_file",
                    format!(
                        "{key} is set by infantd for every instance; a program may not override it"
                    ),
                ));
            }
            set(key, value.as_ref());
        }
        for (key, value) in &spec.env {
            set(key, value.as_ref());
        }
        // The control socket admits only the daemon's user and root: an
        // instance running as another user attaches on the worker-only socket.
        let other_user = setup
            .ids
            .as_ref()
            .is_some_and(|ids| ids.uid != nix::unistd::geteuid().as_raw());
        let worker_socket = match (&self.config.worker_socket, other_user) {
            (Some(socket), true) => socket.into(),
            _ => self.config.socket.clone().into_os_string(),
        };
        env.push(("INFANT_SOCKET".into(), worker_socket));
        env.push(("INFANT_WORKER_ID".into(), id.to_string().into()));
        env.push(("INFANT_TOKEN".into(), token.clone().into()));
        env.push(("INFANT_PROGRAM".into(), spec.name.clone().into()));
        env.push(("INFANT_TITLE".into(), spec.title.clone().into()));
        if spec.ready == Ready::Notify {
            if let Some(notify) = &self.config.notify_socket {
                // One socket for every instance: the sender's credentials (its
                // process group) tell which instance spoke.
                env.push(("NOTIFY_SOCKET".into(), notify.into()));
            }
        }
        let ready = spec.ready;
        let fds: Vec<_> = program.sockets.iter().map(|s| s.raw_fd()).collect();
        let names: Vec<String> = fds.iter().map(|_| spec.name.clone()).collect();
        let prepared = self.contain.prepare();
        let outputs = self.config.logs.outputs(spec, id);
        let [stdout, stderr] = outputs.child_fds();
        let request = spawn::SpawnRequest {
            argv: &spec.command,
            cwd: spec.cwd.as_deref(),
            env,
            listen_fds: &fds,
            listen_names: &names,
            cgroup_procs: prepared.cgroup_procs(),
            setup: &setup,
            stdout,
            stderr,
            cgroup_dir: prepared.cgroup_dir(),
        };
        let spawned = match self.os.spawn(&request) {
            Ok(spawned) => spawned,
            Err(e) => {
                self.contain.abandon(prepared);
                return Err(match e {
                    spawn::SpawnError::Executable { command, reason } => Error::Spawn {
                        program: spec.name.clone(),
                        command,
                        reason,
                    },
                    spawn::SpawnError::Os(reason) => Error::Spawn {
                        program: spec.name.clone(),
                        command: spec.command[0].clone(),
                        reason,
                    },
                });
            }
        };
        outputs.start();
        self.contain.spawned(spawned.pid, &token, prepared);
        let pid = spawned.pid;
        // The exec finishes on its own; its outcome comes back as an engine input.
        let exec_tx = self.exec_tx.clone();
        tokio::spawn(async move {
            let error = spawned.exec.await;
            let _ = exec_tx.send(super::ExecOutcome { pid, error });
        });

        let name = spec.name.clone();
        // A program known to link the SDK gets time to attach even when it is
        // slow to boot; a plain one is `ok` after its start grace.
        let grace = if program.links_sdk {
            spec.start_grace.max(SDK_ATTACH_GRACE)
        } else {
            spec.start_grace
        };
        let job = (spec.kind == Kind::Once).then_some(spec.timeout);
        let start_timeout = spec.start_timeout;
        let program = &mut self.programs[index];
        let Some(instance) = program.instance_mut(id) else {
            // Cannot happen: callers create the slot first. Do not leak the process.
            let _ = self.os.signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            return Err(Error::UnknownWorker {
                program: name,
                worker: id,
            });
        };
        instance.pid = Some(pid);
        instance.token = token;
        instance.status = InstanceStatus::Starting;
        instance.spawned_at = Instant::now();
        instance.ok_at = None;
        instance.channel = None;
        instance.connections = 0;
        instance.requests = 0;
        instance.signalled = None;
        instance.notes = None;
        instance.exec_pending = true;
        instance.deferred_exit = None;
        instance.stopped_itself = false;
        instance.notify_watchdog = false;
        instance.respawn_after_stop = false;
        instance.rss_at_ok = None;
        instance.last_seen = Instant::now();
        self.pids.insert(pid, (name.clone(), id));
        tracing::debug!(program = %name, worker = id, %pid, "spawned");
        let mut event = Event::new(&name, EventKind::Status).worker(id, Some(pid));
        event.instance_status = Some(InstanceStatus::Starting);
        self.publish(event);
        match job {
            // A job has no readiness to wait for: it is up once it runs.
            Some(timeout) => {
                if let Some(limit) = timeout {
                    self.after(
                        limit,
                        Timer::JobTimeout {
                            program: name,
                            id,
                            pid,
                        },
                    );
                }
                self.mark_ok(index, id);
            }
            None => {
                // `spawn` is ok on its exec, `sdk` on `Ready`, `notify` on
                // READY=1; the others once their start grace is over.
                let graced = !matches!(ready, Ready::Spawn | Ready::Sdk | Ready::Notify);
                // Whatever makes it `ok`, it has `start_timeout` to get there.
                // One that is `ok` when its grace is over needs no timer for
                // that: it is set then if the instance still waits (an SDK
                // worker that has not said `Ready`). A burst of thousands of
                // spawns keeps one timer each, not two.
                let timeout_set = match start_timeout {
                    Some(limit) if !graced || limit <= grace => {
                        self.after(
                            limit,
                            Timer::StartTimeout {
                                program: name.clone(),
                                id,
                                pid,
                            },
                        );
                        true
                    }
                    _ => false,
                };
                if graced {
                    self.after(
                        grace,
                        Timer::StartGrace {
                            program: name,
                            id,
                            pid,
                            timeout_set,
                        },
                    );
                }
            }
        }
        Ok(pid)
    }

    /// An instance's `start_timeout` is over: if it is still not `ok`, kill it;
    /// its start failed (a rolling restart or recycle waiting for it stops, and
    /// whoever waits for `ok` is told why).
    pub(super) fn start_timed_out(&mut self, program: &str, id: u64, pid: Pid) {
        let Ok(index) = self.find(program) else {
            return;
        };
        let limit = self.programs[index].spec.start_timeout.unwrap_or_default();
        let Some(instance) = self.programs[index].instance_mut(id) else {
            return;
        };
        if instance.pid != Some(pid)
            || instance.status != InstanceStatus::Starting
            || instance.stopping.is_some()
            || instance.was_killed()
        {
            return;
        }
        let why = format!(
            "not ok within its start_timeout ({}): killed",
            humantime::format_duration(limit)
        );
        instance.notes_mut().killed_because = Some(why.clone());
        let _ = self.os.signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        tracing::warn!(program, worker = id, %pid, "{why}");
        self.start_failed(index, id, why);
    }

    /// A plain instance that lived through its start grace without attaching is
    /// `ok`. An SDK worker that attached in time waits for its `Ready` instead.
    /// Its `start_timeout` is set now if it was not at the spawn
    /// (`timeout_set`) and it still waits.
    pub(super) fn start_grace_over(&mut self, program: &str, id: u64, pid: Pid, timeout_set: bool) {
        let Ok(index) = self.find(program) else {
            return;
        };
        let Some(instance) = self.programs[index].instance(id) else {
            return;
        };
        if instance.pid != Some(pid) || instance.status != InstanceStatus::Starting {
            return;
        }
        // `auto`: an SDK worker that attached in time waits for its `Ready`.
        let waits_for_sdk =
            instance.channel.is_some() && self.programs[index].spec.ready != Ready::Grace;
        if !waits_for_sdk {
            self.mark_ok(index, id);
            return;
        }
        if let (false, Some(limit)) = (timeout_set, self.programs[index].spec.start_timeout) {
            let left = limit.saturating_sub(instance.spawned_at.elapsed());
            self.after(
                left,
                Timer::StartTimeout {
                    program: program.to_owned(),
                    id,
                    pid,
                },
            );
        }
    }

    /// Instance `id` is ready.
    pub(super) fn mark_ok(&mut self, index: usize, id: u64) {
        let name = self.programs[index].spec.name.clone();
        let Some(instance) = self.programs[index].instance_mut(id) else {
            return;
        };
        if instance.status != InstanceStatus::Starting || instance.stopping.is_some() {
            return;
        }
        instance.status = InstanceStatus::Ok;
        instance.ok_at = Some(Instant::now());
        let pid = instance.pid;
        if self.programs[index].spec.enhanced {
            let rss = pid.and_then(|pid| self.os.rss_bytes(pid));
            if let Some(instance) = self.programs[index].instance_mut(id) {
                instance.rss_at_ok = rss;
            }
        }
        let mut event = Event::new(&name, EventKind::Status).worker(id, pid);
        event.instance_status = Some(InstanceStatus::Ok);
        self.publish(event);
        self.publish(Event::new(&name, EventKind::Online).worker(id, pid));
        self.replacement_ready(index, id);
        self.settle(index);
    }

    /// Instance `id` failed to become ready (`reason` says how): record it, tell
    /// whoever waits for `ok`, and let the exit path respawn it with backoff.
    pub(super) fn start_failed(&mut self, index: usize, id: u64, reason: String) {
        let name = self.programs[index].spec.name.clone();
        let pid = self.programs[index].instance(id).and_then(|i| i.pid);
        if let Some(instance) = self.programs[index].instance_mut(id) {
            instance.status = InstanceStatus::Error;
        }
        let error = Error::StartFailed {
            program: name.clone(),
            worker: id,
            reason: reason.clone(),
        };
        self.programs[index].last_error = Some(error.to_string());
        let mut event = Event::new(&name, EventKind::Status).worker(id, pid);
        event.instance_status = Some(InstanceStatus::Error);
        event.reason = reason.clone();
        self.publish(event);
        self.publish(
            Event::new(&name, EventKind::Error)
                .worker(id, pid)
                .reason(error.to_string()),
        );
        self.fail_ok_waiters(index, || Error::StartFailed {
            program: name.clone(),
            worker: id,
            reason: reason.clone(),
        });
        self.replacement_failed(index, id, &error);
        self.settle(index);
    }
}

impl Engine {
    /// An inline definition's `after` must name defined programs and not close
    /// a cycle with them.
    fn check_after(&self, spec: &crate::daemon::spec::ProgramSpec) -> Result<()> {
        if spec.after.is_empty() {
            return Ok(());
        }
        let mut all: Vec<_> = self
            .programs
            .iter()
            .filter(|p| p.spec.name != spec.name)
            .map(|p| p.spec.clone())
            .collect();
        all.push(spec.clone());
        crate::daemon::config::check_order(&all)
            .map(drop)
            .map_err(|(_, reason)| Error::InvalidField {
                program: spec.name.clone(),
                field: "after",
                reason,
            })
    }
}

/// A fresh 128-bit secret for one process, as hex.
fn new_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source at all: fall back to something still unguessable by
        // other local users (they cannot read our memory or environment).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ u128::from(std::process::id()) << 64).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
