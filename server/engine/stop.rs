//! `Stop` and `Restart`: stopping a program's instances (the worker's `Stop`
//! message or SIGTERM to the group, SIGKILL once the window is over) and what
//! follows a full stop.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::oneshot;

use super::events::{Event, EventKind};
use super::state::{AfterStop, InstanceStatus, ProgramInfo, Run, StopReason, Until, Waiter};
use super::worker_msg::ToWorker;
use super::{Engine, FailedDependency, Timer};
use crate::daemon::error::{Error, Result};

impl Engine {
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
            Run::Stopping(then) => {
                // Already stopping; a restart in progress becomes a plain stop,
                // and whoever waits for it to come back up is told it will not.
                if then == AfterStop::Restart {
                    self.fail_ok_waiters(index, || Error::Precondition {
                        program: name.clone(),
                        reason: "the restart was cancelled: the program was stopped".into(),
                    });
                }
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

    /// Asks one instance to stop: `Stop` over its channel, or its `stop_signal`
    /// (SIGTERM unless configured) to its group;
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
        let stop_signal = self.programs[index].spec.stop_signal;
        let Some(instance) = self.programs[index].instance_mut(id) else {
            return;
        };
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
                        let _ = self.os.signal_group(pid, stop_signal);
                    }
                }
                None => {
                    let _ = self.os.signal_group(pid, stop_signal);
                }
            }
            let mut event = Event::new(&name, EventKind::Status).worker(id, Some(pid));
            event.instance_status = Some(InstanceStatus::Stopping);
            event.reason = reason.as_str().to_string();
            self.publish(event);
        }
        if window.is_zero() {
            let _ = self.os.signal_group(pid, Signal::SIGKILL);
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
        let _ = self.os.signal_group(pid, Signal::SIGKILL);
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
        self.abort_rollout(index, "the program stopped");
        let program = &mut self.programs[index];
        program.run = Run::Idle;
        if then == AfterStop::Restart && !closing {
            // Keep the sockets (a restart must not close the port) and the size.
            // The program is idle for a moment: settle (the `stopped` event, the
            // stops waiting for it) without failing those waiting for the
            // restart's second half.
            if std::mem::take(&mut program.rebind) {
                // Its `listen` changed: bind the new sockets.
                program.sockets.clear();
            }
            let restarting = program.take_waiters(|until| *until == Until::Ok);
            self.settle(index);
            self.programs[index].waiters.extend(restarting);
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
        program.rebind = false;
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
}
