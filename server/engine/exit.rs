//! Exits and respawns.
//!
//! An exit the daemon asked for (stop, restart, recycle, scale, shutdown) is never
//! respawned. Any other exit of a running program's instance is a crash: respawned
//! after the backoff hold-down if the program respawns, until `max_restarts`.

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::backoff;
use super::events::{Event, EventKind};
use super::state::{InstanceStatus, ProgramStatus, Run, StopReason};
use super::{Engine, Timer};
use crate::daemon::error::Error;
use crate::daemon::process::contain::Owner;
use crate::daemon::process::reaper::{Exit, ExitStatus};
use crate::daemon::spec::{Kind, Restart};

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
        let exec_ok = error.is_none();
        if error.is_some() {
            instance.notes_mut().exec_error = error;
        }
        if let Some(exit) = instance.deferred_exit.take() {
            self.on_exit(exit);
            return;
        }
        // `ready = "spawn"`: the exec succeeding is all it takes.
        if exec_ok {
            if let Some((name, id)) = self.pids.get(&pid).cloned() {
                if let Ok(index) = self.find(&name) {
                    if self.programs[index].spec.ready == crate::daemon::spec::Ready::Spawn {
                        self.mark_ok(index, id);
                    }
                }
            }
        }
    }

    /// A child was reaped.
    pub(super) fn on_exit(&mut self, exit: Exit) {
        // An exit before the exec's outcome waits for it (it is on its way: the
        // pipe closes at the latest when the process ends), so that an exec
        // failure is reported as one.
        let token = match self.instance_of(exit.pid) {
            Some(instance) if instance.exec_pending => {
                instance.deferred_exit = Some(exit);
                return;
            }
            Some(instance) => Some(instance.token.clone()),
            None => None,
        };
        let Some((name, id)) = self.pids.remove(&exit.pid) else {
            // An orphaned grandchild reparented to us, or a process whose exec
            // failed: reaped, nothing to do.
            tracing::debug!(pid = %exit.pid, status = %exit.status, "reaped a non-instance process");
            // Its children, if any, are ours now: any that an exited instance
            // left behind dies.
            self.search_leftovers();
            return;
        };
        // Whatever the leader left in its group dies with it: no orphans.
        let _ = self.os.signal_group(exit.pid, Signal::SIGKILL);
        // And whatever it left elsewhere (a new session, its cgroup).
        let owner = Owner {
            program: name.clone(),
            id,
        };
        let leftovers = self
            .contain
            .instance_exited(exit.pid, token.as_deref(), owner);
        self.recheck_leftovers_later();
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
        let (killed_because, exec_error, reported_error, attach_refused) =
            match instance.notes.as_deref_mut() {
                Some(n) => (
                    n.killed_because.take(),
                    n.exec_error.take(),
                    n.reported_error.take(),
                    n.attach_refused.take(),
                ),
                None => (None, None, None, None),
            };
        // Stopped because it passed `max_memory`: started again at once.
        let memory_restart = std::mem::take(&mut instance.respawn_after_stop);
        // An exit the worker or the API asked for, not a failure: a `Kill`
        // through the API, or a worker that stopped itself gracefully (SIGHUP,
        // the config-reload convention) and exited 0. Respawned at once, without
        // the program turning `error`.
        let planned = signalled.is_some()
            || memory_restart
            || (instance.stopped_itself && matches!(exit.status, ExitStatus::Code(0)));
        let exec_failed = exec_error.is_some();
        // What the exit status alone does not say: an SDK worker exits when
        // its attach is refused.
        let status_text = match attach_refused {
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
        // A running job reported why its run failed: say it first.
        let reason = match reported_error {
            Some(text) if stopping.is_none() && !exec_failed => {
                format!("{text} ({reason})")
            }
            _ => reason,
        };
        let mut event = Event::new(&name, EventKind::Exit).worker(id, Some(exit.pid));
        event.exit = Some(exit.status);
        event.reason = reason.clone();
        self.publish(event);
        self.report_leftovers(&name, id, exit.pid, leftovers);

        let program = &self.programs[index];
        let crash = stopping.is_none() || memory_restart;
        if !crash || !program.is_running() {
            self.remove_instance(index, id, exit);
            return;
        }
        if program.spec.kind == Kind::Once && !self.job_ended(index, id, exit, &reason) {
            return;
        }

        // An exit of a running program's instance that the daemon did not ask
        // for. One with a success code is not restarted unless `restart =
        // "always"`: it finished.
        let spec = &self.programs[index].spec;
        let code = match exit.status {
            ExitStatus::Code(code) => Some(code),
            ExitStatus::Signal(_) => None,
        };
        let finished = spec.kind != Kind::Once
            && !planned
            && !exec_failed
            && spec.restart != Restart::Always
            && spec.is_success(code);
        if finished {
            // One instance fewer to keep: what is left is the whole program.
            let program = &mut self.programs[index];
            program.desired = program.desired.saturating_sub(1);
            self.remove_instance(index, id, exit);
            return;
        }
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
        } else if was != InstanceStatus::Error && !planned {
            self.programs[index].last_error = Some(format!("worker {id} {reason}"));
        }
        if !self.programs[index].spec.respawn && !memory_restart {
            self.remove_instance(index, id, exit);
            return;
        }
        if !planned {
            if let Some(reason) = self.restart_limit_reached(index) {
                self.give_up(index, id, exit, reason);
                return;
            }
        }
        let program = &mut self.programs[index];
        let cap = program.spec.respawn_delay;
        let Some(instance) = program.instance_mut(id) else {
            return;
        };
        if stable || planned {
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
            let code = match exit.status {
                ExitStatus::Code(code) => Some(code),
                ExitStatus::Signal(_) => None,
            };
            if program.spec.is_success(code) {
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

    /// Counts a respawn against `max_restarts`; the reason to give up if this
    /// one is past the limit.
    fn restart_limit_reached(&mut self, index: usize) -> Option<String> {
        let program = &mut self.programs[index];
        let max = program.spec.max_restarts?;
        let window = program.spec.restart_window;
        let now = tokio::time::Instant::now();
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
