//! `Scale`, and replacing workers one at a time: rolling restarts (and, in
//! enhanced clusters, recycling) start the replacement first and retire the old
//! worker only once the replacement is `ok`, so capacity never drops.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::oneshot;

use super::events::{Event, EventKind};
use super::state::{InstanceStatus, ProgramInfo, Rollout, StopReason, Until, Waiter};
use super::Engine;
use crate::daemon::error::{Error, Result};
use crate::daemon::spec::{Kind, MAX_COUNT};

impl Engine {
    /// `Scale`: grow (reply once the new workers are `ok`) or shrink (stop the
    /// newest workers, reply once they exited).
    pub(super) fn scale(
        &mut self,
        name: String,
        count: u32,
        reply: oneshot::Sender<Result<ProgramInfo>>,
    ) {
        match self.try_scale(&name, count) {
            Ok((index, until)) => {
                self.programs[index].waiters.push(Waiter { until, reply });
                self.settle(index);
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    fn try_scale(&mut self, name: &str, count: u32) -> Result<(usize, Until)> {
        if self.closing() {
            return Err(Error::ShuttingDown);
        }
        let index = self.find(name)?;
        let program = &self.programs[index];
        let precondition = |reason: &str| Error::Precondition {
            program: name.to_string(),
            reason: reason.to_string(),
        };
        if program.spec.kind != Kind::Cluster {
            return Err(precondition(
                "is not a cluster; only clusters can be scaled",
            ));
        }
        if count == 0 || count > MAX_COUNT {
            return Err(Error::InvalidArgument {
                field: "count",
                reason: format!("must be from 1 to {MAX_COUNT}, not {count}"),
            });
        }
        if !program.is_running() {
            return Err(precondition("is not running; start it first"));
        }
        if program.rollout.is_some() {
            return Err(precondition("a rolling restart is in progress"));
        }
        let mut active: Vec<u64> = program
            .instances
            .iter()
            .filter(|i| i.is_active())
            .map(|i| i.id)
            .collect();
        active.sort_unstable();
        self.programs[index].desired = count;
        let mut event = Event::new(name, EventKind::Scale);
        event.count = count;
        self.publish(event);

        let current = active.len() as u32;
        if count >= current {
            for _ in current..count {
                self.add_instance(index, None)?;
            }
            return Ok((index, Until::Ok));
        }
        let newest: Vec<u64> = active
            .iter()
            .rev()
            .take((current - count) as usize)
            .copied()
            .collect();
        let window = self.programs[index].spec.stop_timeout;
        for &id in &newest {
            self.retire(index, id, StopReason::Scale, window);
        }
        Ok((index, Until::Gone(newest)))
    }

    /// Takes worker `id` out of service: a running process is stopped gracefully
    /// within `window`; a slot in backoff simply goes.
    pub(super) fn retire(&mut self, index: usize, id: u64, reason: StopReason, window: Duration) {
        let Some(instance) = self.programs[index].instance(id) else {
            return;
        };
        if instance.pid.is_some() {
            self.stop_instance(index, id, reason, window);
            return;
        }
        let name = self.programs[index].spec.name.clone();
        self.programs[index].instances.retain(|i| i.id != id);
        let mut event = Event::new(&name, EventKind::Status).worker(id, None);
        event.instance_status = Some(InstanceStatus::Dead);
        event.reason = reason.as_str().to_string();
        self.publish(event);
    }

    /// Starts a rolling restart of a running cluster.
    pub(super) fn begin_rollout(
        &mut self,
        index: usize,
        reply: oneshot::Sender<Result<ProgramInfo>>,
    ) {
        let mut pending: Vec<u64> = self.programs[index]
            .instances
            .iter()
            .filter(|i| i.is_active())
            .map(|i| i.id)
            .collect();
        pending.sort_unstable();
        tracing::info!(program = %self.programs[index].spec.name, workers = pending.len(), "rolling restart");
        self.programs[index].rollout = Some(Rollout {
            pending: VecDeque::from(pending),
            current: None,
            retired: Vec::new(),
            reply,
        });
        self.advance_rollout(index);
        self.settle(index);
    }

    /// Starts the next replacement of a rolling restart, or finishes it.
    pub(super) fn advance_rollout(&mut self, index: usize) {
        loop {
            let Some(rollout) = self.programs[index].rollout.as_mut() else {
                return;
            };
            if rollout.current.is_some() {
                return;
            }
            let Some(old) = rollout.pending.pop_front() else {
                // Every worker replaced: answer once the old ones have exited.
                let Some(rollout) = self.programs[index].rollout.take() else {
                    return;
                };
                self.programs[index].waiters.push(Waiter {
                    until: Until::Gone(rollout.retired),
                    reply: rollout.reply,
                });
                return;
            };
            if !self.programs[index]
                .instance(old)
                .is_some_and(|i| i.is_active())
            {
                continue; // gone meanwhile (scaled down, crashed without respawn)
            }
            match self.add_instance(index, Some(old)) {
                Ok(new) => {
                    if let Some(rollout) = self.programs[index].rollout.as_mut() {
                        rollout.current = Some((old, new));
                    }
                    return;
                }
                Err(e) => {
                    self.abort_rollout(index, &e.to_string());
                    return;
                }
            }
        }
    }

    /// A worker became `ok`: if it replaces another, retire that one now.
    pub(super) fn replacement_ready(&mut self, index: usize, new: u64) {
        let Some(old) = self.programs[index].instance(new).and_then(|i| i.replaces) else {
            return;
        };
        if let Some(instance) = self.programs[index].instance_mut(new) {
            instance.replaces = None;
        }
        let (reason, window) = self.retirement(index, old);
        self.retire(index, old, reason, window);
        self.programs[index]
            .recycling
            .retain(|&pair| pair != (old, new));
        if let Some(rollout) = self.programs[index].rollout.as_mut() {
            if rollout.current == Some((old, new)) {
                rollout.current = None;
                rollout.retired.push(old);
            }
        }
        self.advance_rollout(index);
        // A recycle slot is free: a worker already past its limit need not wait
        // for the next heartbeat tick to be recycled.
        if self.programs[index].spec.enhanced {
            self.check_recycle(index);
        }
    }

    /// A replacement failed to start: stop the rollout, keep the old workers, and
    /// take the failed replacement away (it must not be respawned in their place).
    pub(super) fn replacement_failed(&mut self, index: usize, new: u64, error: &Error) {
        if self.programs[index]
            .recycling
            .iter()
            .any(|&(_, n)| n == new)
        {
            // The old worker keeps serving; the next tick may try again.
            self.programs[index].recycling.retain(|&(_, n)| n != new);
            self.retire(index, new, StopReason::Recycle, Duration::ZERO);
            return;
        }
        let Some(rollout) = self.programs[index].rollout.as_ref() else {
            return;
        };
        if rollout.current.map(|(_, n)| n) != Some(new) {
            return;
        }
        self.retire(index, new, StopReason::Restart, Duration::ZERO);
        self.abort_rollout(
            index,
            &format!("rolling restart stopped, the old workers keep serving: {error}"),
        );
    }

    /// Ends a rolling restart with an error.
    pub(super) fn abort_rollout(&mut self, index: usize, reason: &str) {
        if let Some(rollout) = self.programs[index].rollout.take() {
            let _ = rollout.reply.send(Err(Error::Precondition {
                program: self.programs[index].spec.name.clone(),
                reason: reason.to_string(),
            }));
        }
    }
}
