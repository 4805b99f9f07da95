//! Exits, respawns and stops.
//!
//! An exit the daemon asked for (stop, restart, recycle, scale, shutdown) is never
//! respawned. Any other exit of a running program's instance is a crash: respawned
//! after the backoff hold-down if the program respawns.

use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::oneshot;

use super::backoff;
use super::events::{Event, EventKind};
use super::state::{
    AfterStop, InstanceStatus, ProgramInfo, ProgramStatus, Run, StopReason, Until, Waiter,
};
use super::worker_msg::ToWorker;
use super::{Engine, FailedDependency, Timer};
use crate::daemon::error::{Error, Result};
use crate::daemon::process::reaper::{Exit, ExitStatus};
use crate::daemon::process::signal::signal_group;
use crate::daemon::spec::Kind;

impl Engine {
    /// The live instance whose process is `pid`, if any.
    fn instance_of(&mut self, pid: Pid) -> Option<&mut super::state::Instance> {
        let (name, id) = self.pids.get(&pid)?.clone();
        let index = self.find(&name).ok()?;
        self.programs[index]
            .instance_mut(id)
            .filter(|instance| instance.pid == Some(pid))
    }

    /// The exec of `pid` succeeded (`error` is `None`) or failed. An exit that
    /// came in before this is handled now, with the exec's error as its cause.
    pub(super) fn on_exec(&mut self, pid: Pid, error: Option<String>) {
        let Some(instance) = self.instance_of(pid) else {
            return;
        };
        if let Some(error) = &error {
            tracing::debug!(worker = instance.id, %pid, %error, "exec failed");
        }
        instance.exec_pending = false;
        instance.exec_error = error;
        if let Some(exit) = instance.deferred_exit.take() {
            self.on_exit(exit);
        }
    }

    /// A child was reaped.
    pub(super) fn on_exit(&mut self, exit: Exit) {
        // An exit before the exec's outcome waits for it (it is on its way: the
        // pipe closes at the latest when the process ends), so that an exec
        // failure is reported as one.
        if let Some(instance) = self.instance_of(exit.pid) {
            if instance.exec_pending {
                instance.deferred_exit = Some(exit);
                return;
            }
        }
        let Some((name, id)) = self.pids.remove(&exit.pid) else {
            // An orphaned grandchild reparented to us, or a process whose exec
            // failed: reaped, nothing to do.
            tracing::debug!(pid = %exit.pid, status = %exit.status, "reaped a non-instance process");
            return;
        };
        // Whatever the leader left in its group dies with it: no orphans.
        let _ = signal_group(exit.pid, Signal::SIGKILL);
        let Ok(index) = self.find(&name) else { return };
        let program = &mut self.programs[index];
        let Some(instance) = program.instance_mut(id) else {
            return;
        };
        if instance.pid != Some(exit.pid) {
            return;
        }
        let was = instance.status;
        let stopping = instance.stopping;
        let signalled = instance.signalled;
        let killed_because = instance.killed_because.take();
        let exec_error = instance.exec_error.take();
        let exec_failed = exec_error.is_some();
        // What the exit status alone does not say: an SDK worker exits when
        // its attach is refused.
        let status_text = match instance.attach_refused.take() {
            Some(why) => format!("{} after the daemon refused its attach: {why}", exit.status),
            None => exit.status.to_string(),
        };
        let stable = instance
            .ok_at
            .is_some_and(|t| t.elapsed() >= backoff::STABLE_RUN);
        instance.pid = None;
        instance.channel = None;
        instance.last_exit = Some(exit.status);

        let reason = match (stopping, signalled) {
            // The process never became the program: say why.
            _ if exec_error.is_some() => format!(
                "cannot run {}: {}",
                self.programs[index]
                    .spec
                    .command
                    .first()
                    .map_or("", String::as_str),
                exec_error.unwrap_or_default()
            ),
            _ if killed_because.is_some() => {
                format!("{} ({})", exit.status, killed_because.unwrap_or_default())
            }
            (Some(why), _) => format!("{} ({})", exit.status, why.as_str()),
            (None, Some(sig)) => format!("{} (sent {} through kill)", exit.status, sig.as_str()),
            (None, None) => status_text.clone(),
        };
        let mut event = Event::new(&name, EventKind::Exit).worker(id, Some(exit.pid));
        event.exit = Some(exit.status);
        event.reason = reason.clone();
        self.publish(event);

        let program = &self.programs[index];
        let crash = stopping.is_none();
        if !crash || !program.is_running() {
            self.remove_instance(index, id, exit);
            return;
        }
        if program.spec.kind == Kind::Once && !self.job_ended(index, id, exit, &reason) {
            return;
        }

        // A crash of a running program's instance.
        if self.programs[index].spec.kind == Kind::Once {
            // job_ended recorded the failure.
        } else if was == InstanceStatus::Starting {
            let program_starting = self.programs[index].status == ProgramStatus::Starting;
            let why = if exec_failed {
                reason.clone()
            } else {
                format!("exited while starting: {status_text}")
            };
            self.start_failed(index, id, why);
            // An exec failure is deterministic: while the program starts, a respawn
            // would only fail again. Take it down, as a missing executable does.
            if exec_failed && program_starting {
                self.remove_instance(index, id, exit);
                self.abort(index);
                return;
            }
        } else if was != InstanceStatus::Error {
            self.programs[index].last_error = Some(format!("worker {id} {reason}"));
        }
        if !self.programs[index].spec.respawn {
            self.remove_instance(index, id, exit);
            return;
        }
        if let Some(reason) = self.restart_limit_reached(index) {
            self.give_up(index, id, exit, reason);
            return;
        }
        let program = &mut self.programs[index];
        let cap = program.spec.respawn_delay;
        let Some(instance) = program.instance_mut(id) else {
            return;
        };
        if stable || signalled.is_some() {
            instance.streak = 0;
        }
        let delay = backoff::delay(instance.streak, cap);
        instance.streak = instance.streak.saturating_add(1);
        instance.status = InstanceStatus::Backoff;
        // The respawn event reports the hold-down it waited.
        instance.backoff = delay;
        let mut event = Event::new(&name, EventKind::Status).worker(id, None);
        event.instance_status = Some(InstanceStatus::Backoff);
        event.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.publish(event);
        if delay.is_zero() {
            self.respawn(&name, id);
        } else {
            self.after(delay, Timer::Respawn { program: name, id });
        }
        self.settle(index);
    }

    /// Drops a slot whose process exited for good.
    fn remove_instance(&mut self, index: usize, id: u64, exit: Exit) {
        let name = self.programs[index].spec.name.clone();
        self.programs[index].instances.retain(|i| i.id != id);
        let mut event = Event::new(&name, EventKind::Status).worker(id, Some(exit.pid));
        event.instance_status = Some(InstanceStatus::Dead);
        self.publish(event);
        let program = &mut self.programs[index];
        if program.is_running() && program.instances.is_empty() {
            // Nothing left to run and nothing to respawn: the program is done.
            program.run = Run::Idle;
            program.sockets.clear();
            if matches!(exit.status, ExitStatus::Code(0)) {
                program.last_error = None;
            } else if program.last_error.is_none() {
                program.last_error = Some(format!("worker {id} {}", exit.status));
            }
        }
        self.settle(index);
    }

    /// The hold-down of slot `id` is over: spawn its next process.
    pub(super) fn respawn(&mut self, program: &str, id: u64) {
        let Ok(index) = self.find(program) else {
            return;
        };
        let p = &self.programs[index];
        let Some(instance) = p.instance(id) else {
            return;
        };
        let delay = instance.backoff;
        if instance.status != InstanceStatus::Backoff || !p.is_running() {
            return;
        }
        let previous = instance.last_exit;
        match self.spawn_process(index, id) {
            Ok(pid) => {
                let p = &mut self.programs[index];
                p.restarts += 1;
                if let Some(instance) = p.instance_mut(id) {
                    instance.restarts += 1;
                }
                let mut event = Event::new(program, EventKind::Respawn).worker(id, Some(pid));
                event.exit = previous;
                event.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                self.publish(event);
            }
            Err(e) => {
                // The executable vanished or the system is out of resources: keep
                // the slot in backoff and try again later, loudly.
                let p = &mut self.programs[index];
                p.last_error = Some(e.to_string());
                let cap = p.spec.respawn_delay;
                let retry = if let Some(instance) = p.instance_mut(id) {
                    instance.status = InstanceStatus::Backoff;
                    instance.streak = instance.streak.saturating_add(1);
                    instance.backoff = backoff::delay(instance.streak, cap);
                    instance.backoff
                } else {
                    return;
                };
                self.publish(
                    Event::new(program, EventKind::Error)
                        .worker(id, None)
                        .reason(e.to_string()),
                );
                self.after(
                    retry,
                    Timer::Respawn {
                        program: program.to_string(),
                        id,
                    },
                );
            }
        }
        self.settle(index);
    }

    /// `Stop`.
    pub(super) fn stop(
        &mut self,
        name: String,
        timeout: Option<Duration>,
        reply: oneshot::Sender<Result<ProgramInfo>>,
    ) {
        let index = match self.find(&name) {
            Ok(index) => index,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        self.programs[index].waiters.push(Waiter {
            until: Until::Idle,
            reply,
        });
        match self.programs[index].run {
            Run::Idle => {}
            Run::Waiting => self.cancel_waiting(index, "stopped before it started"),
            Run::Stopping(_) => {
                // Already stopping; a restart in progress becomes a plain stop.
                self.programs[index].run = Run::Stopping(AfterStop::Idle);
            }
            Run::Running => {
                // What needs this program stops first, last started first.
                let dependents = self.dependents(&name);
                if let Some(window) = timeout {
                    // The override is for this program, not its dependents.
                    self.programs[index].stop_override = Some(window);
                }
                let mut order = dependents;
                order.push(name);
                // Once the daemon is closing, a stop is part of its shutdown,
                // and the workers are told so.
                let reason = if self.closing() {
                    StopReason::Shutdown
                } else {
                    StopReason::Stop
                };
                self.stop_in_order(order, reason);
            }
        }
        self.settle(index);
    }

    /// `Restart`: rolling for a running cluster unless `full`, else stop then start.
    pub(super) fn restart(
        &mut self,
        name: String,
        full: bool,
        reply: oneshot::Sender<Result<ProgramInfo>>,
    ) {
        if self.closing() {
            let _ = reply.send(Err(Error::ShuttingDown));
            return;
        }
        let index = match self.find(&name) {
            Ok(index) => index,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let program = &self.programs[index];
        let rolling = !full
            && program.spec.kind == crate::daemon::spec::Kind::Cluster
            && program.is_running();
        if program.rollout.is_some() {
            let _ = reply.send(Err(Error::Precondition {
                program: name,
                reason: "a rolling restart is already in progress".into(),
            }));
            return;
        }
        if rolling {
            self.begin_rollout(index, reply);
            return;
        }
        match program.run {
            Run::Idle | Run::Waiting => {
                if matches!(program.run, Run::Idle) {
                    if let Err(e) = self.request_start(index, FailedDependency::Retry) {
                        let _ = reply.send(Err(e));
                        return;
                    }
                }
            }
            Run::Stopping(_) => self.programs[index].run = Run::Stopping(AfterStop::Restart),
            Run::Running => {
                let window = program.spec.stop_timeout;
                self.begin_stop(index, StopReason::Restart, window);
                self.programs[index].run = Run::Stopping(AfterStop::Restart);
            }
        }
        self.programs[index].waiters.push(Waiter {
            until: Until::Ok,
            reply,
        });
        self.settle(index);
    }

    /// Starts stopping every instance of program `index` within `window`.
    pub(super) fn begin_stop(&mut self, index: usize, reason: StopReason, window: Duration) {
        let name = self.programs[index].spec.name.clone();
        let first = !matches!(self.programs[index].run, Run::Stopping(_));
        if first {
            self.programs[index].run = Run::Stopping(AfterStop::Idle);
            self.publish(Event::new(&name, EventKind::Stopping).reason(reason.as_str()));
            let stopping = || Error::Precondition {
                program: name.clone(),
                reason: "was stopped before it became ok".into(),
            };
            self.fail_ok_waiters(index, stopping);
            self.abort_rollout(index, "the program is stopping");
            self.programs[index].recycling.clear();
        }
        // Slots in backoff have no process: drop them now.
        self.programs[index]
            .instances
            .retain(|i| i.status != InstanceStatus::Backoff);
        let ids: Vec<u64> = self.programs[index]
            .instances
            .iter()
            .map(|i| i.id)
            .collect();
        for id in ids {
            self.stop_instance(index, id, reason, window);
        }
        self.settle(index);
    }

    /// Asks one instance to stop: `Stop` over its channel, or SIGTERM to its group;
    /// SIGKILL to the group when `window` has passed. Stopping an instance that is
    /// already stopping only ever shortens its window.
    pub(super) fn stop_instance(
        &mut self,
        index: usize,
        id: u64,
        reason: StopReason,
        window: Duration,
    ) {
        let name = self.programs[index].spec.name.clone();
        let Some(instance) = self.programs[index].instance_mut(id) else {
            return;
        };
        let Some(pid) = instance.pid else { return };
        let already = instance.stopping.is_some();
        instance.stopping = Some(reason);
        if !already {
            instance.status = InstanceStatus::Stopping;
            match &instance.channel {
                Some(channel) => {
                    if channel
                        .try_send(ToWorker::Stop {
                            reason,
                            deadline: window,
                        })
                        .is_err()
                    {
                        let _ = signal_group(pid, Signal::SIGTERM);
                    }
                }
                None => {
                    let _ = signal_group(pid, Signal::SIGTERM);
                }
            }
            let mut event = Event::new(&name, EventKind::Status).worker(id, Some(pid));
            event.instance_status = Some(InstanceStatus::Stopping);
            event.reason = reason.as_str().to_string();
            self.publish(event);
        }
        if window.is_zero() {
            let _ = signal_group(pid, Signal::SIGKILL);
        } else {
            self.after(
                window,
                Timer::KillDeadline {
                    program: name,
                    id,
                    pid,
                },
            );
        }
    }

    /// The stop window of an instance is over.
    pub(super) fn kill_deadline(&mut self, program: &str, id: u64, pid: nix::unistd::Pid) {
        let Ok(index) = self.find(program) else {
            return;
        };
        let Some(instance) = self.programs[index].instance(id) else {
            return;
        };
        if instance.pid != Some(pid) {
            return;
        }
        tracing::info!(program, worker = id, %pid, "stop window over: SIGKILL to the process group");
        let _ = signal_group(pid, Signal::SIGKILL);
        self.publish(
            Event::new(program, EventKind::Error)
                .worker(id, Some(pid))
                .reason("did not stop within its stop window: killed"),
        );
    }

    /// Every instance of a stopping program has exited.
    pub(super) fn finish_stop(&mut self, index: usize) {
        let Run::Stopping(then) = self.programs[index].run else {
            return;
        };
        let closing = self.closing();
        let program = &mut self.programs[index];
        program.run = Run::Idle;
        program.rollout = None;
        if then == AfterStop::Restart && !closing {
            // Keep the sockets (a restart must not close the port) and the size.
            self.settle(index);
            if let Err(e) = self.launch_sized(index, true) {
                let reason = e.to_string();
                let program = self.programs[index].spec.name.clone();
                self.fail_ok_waiters(index, || Error::Precondition {
                    program: program.clone(),
                    reason: reason.clone(),
                });
            }
            return;
        }
        program.sockets.clear();
        if then == AfterStop::Restart {
            // A full restart cut short by the daemon's shutdown: its second half
            // never comes, so nobody waits for it.
            self.fail_ok_waiters(index, || Error::ShuttingDown);
        }
        self.settle(index);
    }

    /// Takes down a program whose start could not complete: SIGKILL what started.
    pub(super) fn abort(&mut self, index: usize) {
        self.begin_stop(index, StopReason::Stop, Duration::ZERO);
    }

    /// A `once` job's run ended by itself. Records the outcome; returns true if
    /// the failed run is to be retried (the caller respawns it with backoff).
    fn job_ended(&mut self, index: usize, id: u64, exit: Exit, reason: &str) -> bool {
        let name = self.programs[index].spec.name.clone();
        let ran_after = self.programs[index]
            .spec
            .after
            .iter()
            .filter_map(|dep| {
                let tick = self.programs[self.find(dep).ok()?].tick;
                Some((dep.clone(), tick))
            })
            .collect();
        let program = &mut self.programs[index];
        program.ran_after = ran_after;
        program.outcome = Some(exit.status);
        if matches!(exit.status, ExitStatus::Code(0)) {
            program.last_error = None;
            program.instances.retain(|i| i.id != id);
            program.run = Run::Idle;
            let mut event = Event::new(&name, EventKind::Status).worker(id, Some(exit.pid));
            event.instance_status = Some(InstanceStatus::Dead);
            self.publish(event);
            self.publish(Event::new(&name, EventKind::Stopped).reason("completed"));
            self.settle(index);
            return false;
        }
        let runs = program.retries + 1;
        let retry = program.spec.respawn
            && program
                .spec
                .max_retries
                .is_none_or(|max| program.retries < max);
        let error = format!("job failed (run {runs}): {reason}");
        program.last_error = Some(error.clone());
        self.publish(
            Event::new(&name, EventKind::Error)
                .worker(id, Some(exit.pid))
                .reason(error),
        );
        if retry {
            self.programs[index].retries += 1;
            return true;
        }
        let program = &mut self.programs[index];
        program.gave_up = program.spec.respawn;
        program.instances.retain(|i| i.id != id);
        program.run = Run::Idle;
        let mut event = Event::new(&name, EventKind::Status).worker(id, Some(exit.pid));
        event.instance_status = Some(InstanceStatus::Dead);
        self.publish(event);
        self.settle(index);
        false
    }

    /// A job ran past its `timeout`: kill its process group.
    pub(super) fn job_timeout(&mut self, program: &str, id: u64, pid: nix::unistd::Pid) {
        let Ok(index) = self.find(program) else {
            return;
        };
        let limit = self.programs[index].spec.timeout.unwrap_or_default();
        let Some(instance) = self.programs[index].instance_mut(id) else {
            return;
        };
        if instance.pid != Some(pid) || instance.stopping.is_some() {
            return;
        }
        instance.killed_because = Some(format!(
            "timed out after {}",
            humantime::format_duration(limit)
        ));
        let _ = signal_group(pid, Signal::SIGKILL);
    }

    /// Counts a respawn against `max_restarts`; the reason to give up if this
    /// one is past the limit.
    fn restart_limit_reached(&mut self, index: usize) -> Option<String> {
        let program = &mut self.programs[index];
        let max = program.spec.max_restarts?;
        let window = program.spec.restart_window;
        let now = std::time::Instant::now();
        while program
            .recent_restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            program.recent_restarts.pop_front();
        }
        if program.recent_restarts.len() >= max as usize {
            return Some(format!(
                "gave up: {} respawns within {} (max_restarts = {max})",
                program.recent_restarts.len(),
                humantime::format_duration(window)
            ));
        }
        program.recent_restarts.push_back(now);
        None
    }

    /// A crash loop hit `max_restarts`: stop the whole program and leave it
    /// `fatal` until it is started again.
    fn give_up(&mut self, index: usize, id: u64, exit: Exit, reason: String) {
        let name = self.programs[index].spec.name.clone();
        tracing::error!(program = %name, "{reason}");
        self.programs[index].instances.retain(|i| i.id != id);
        let mut event = Event::new(&name, EventKind::Status).worker(id, Some(exit.pid));
        event.instance_status = Some(InstanceStatus::Dead);
        self.publish(event);
        self.publish(Event::new(&name, EventKind::Error).reason(reason.clone()));
        let program = &mut self.programs[index];
        program.gave_up = true;
        program.last_error = Some(reason.clone());
        let fail = || Error::Precondition {
            program: name.clone(),
            reason: reason.clone(),
        };
        self.fail_ok_waiters(index, fail);
        let window = self.programs[index].spec.stop_timeout;
        self.begin_stop(index, StopReason::Stop, window);
    }
}
