//! Worker health, checked once per heartbeat interval per program (and, for a
//! worker about to pass the limit, at that moment): hung workers
//! (attached, but silent for [`HUNG_AFTER`] intervals) are killed and respawned;
//! in enhanced clusters, workers past `max_connections` or `max_memory_gain` are
//! recycled — replacement first, old worker stopped only once it is `ok`.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::events::{Event, EventKind};
use super::state::{InstanceStatus, StopReason};
use super::{Engine, Timer};

/// Heartbeat intervals of silence after which an attached worker counts as hung.
pub const HUNG_AFTER: u32 = 8;

impl Engine {
    /// The periodic health check of `program`.
    pub(super) fn tick(&mut self, program: &str, generation: u64) {
        let Ok(index) = self.find(program) else {
            return;
        };
        let p = &self.programs[index];
        if p.tick != generation || !p.is_running() {
            return; // a tick of an earlier launch, or the program stopped
        }
        let heartbeat = p.spec.heartbeat;
        self.after(
            heartbeat,
            Timer::Tick {
                program: program.to_string(),
                generation,
            },
        );
        self.check_hung(index, generation);
        if self.programs[index].spec.enhanced {
            self.check_recycle(index);
        } else if self.programs[index].spec.max_memory.is_some() {
            self.restart_over_memory(index);
        }
    }

    /// A [`Timer::HungCheck`]: the hung-worker check between two ticks.
    pub(super) fn hung_check(&mut self, program: &str, generation: u64) {
        let Ok(index) = self.find(program) else {
            return;
        };
        let p = &self.programs[index];
        if p.tick == generation && p.is_running() {
            self.check_hung(index, generation);
        }
    }

    /// Kills the hung workers of program `index`. A worker that will have been
    /// silent for [`HUNG_AFTER`] intervals before the next tick gets a check of
    /// its own at that moment, so it is caught after 8 intervals, not up to 9.
    fn check_hung(&mut self, index: usize, generation: u64) {
        let heartbeat = self.programs[index].spec.heartbeat;
        let next_due = self.kill_hung(index, heartbeat * HUNG_AFTER);
        if let Some(due) = next_due.filter(|&due| due < heartbeat) {
            let program = self.programs[index].spec.name.clone();
            // Just past the limit: the check kills only what is past it.
            let margin = Duration::from_millis(1);
            self.after(
                due + margin,
                Timer::HungCheck {
                    program,
                    generation,
                },
            );
        }
    }

    /// SIGKILLs attached workers that have been silent longer than `limit`; the
    /// exit that follows is a crash, so they are respawned. Returns how soon the
    /// next of the others would pass the limit, if none of them speaks.
    fn kill_hung(&mut self, index: usize, limit: Duration) -> Option<Duration> {
        let name = self.programs[index].spec.name.clone();
        let mut hung = Vec::new();
        let mut next_due: Option<Duration> = None;
        for instance in &mut self.programs[index].instances {
            let Some(pid) = instance.pid else { continue };
            // Only an instance that heartbeats can go silent: an attached SDK
            // worker, or a `ready = "notify"` one that has sent WATCHDOG=1.
            if (instance.channel.is_none() && !instance.notify_watchdog)
                || instance.stopping.is_some()
                || instance.was_killed()
            {
                continue;
            }
            let silent = instance.last_seen.elapsed();
            if silent <= limit {
                let due = limit - silent;
                next_due = Some(next_due.map_or(due, |next| next.min(due)));
                continue;
            }
            let why = format!(
                "hung: no heartbeat for {} ms ({HUNG_AFTER} intervals)",
                instance.last_seen.elapsed().as_millis()
            );
            instance.notes_mut().killed_because = Some(why.clone());
            let _ = self.os.signal_group(pid, Signal::SIGKILL);
            hung.push((instance.id, pid, instance.status, why));
        }
        for (id, pid, status, why) in hung {
            tracing::warn!(program = %name, worker = id, %pid, "{why}: killed");
            if status == InstanceStatus::Starting {
                // Whoever waits for it to start (`infantctl start`) learns why it
                // did not, not just the SIGKILL that follows.
                self.start_failed(index, id, why);
                continue;
            }
            self.publish(
                Event::new(&name, EventKind::Error)
                    .worker(id, Some(pid))
                    .reason(why),
            );
        }
        next_due
    }

    /// Starts recycling workers past a limit, at most `max_recycling` at a time
    /// (default 1: capacity stays steady) and never during a rolling restart.
    pub(super) fn check_recycle(&mut self, index: usize) {
        loop {
            let program = &self.programs[index];
            if program.recycling.len() >= program.spec.max_recycling as usize
                || program.rollout.is_some()
                || !self.recycle_next(index)
            {
                return;
            }
        }
    }

    /// Starts recycling the first worker past a limit that is not being
    /// recycled yet; false if there is none (or its replacement failed to spawn).
    fn recycle_next(&mut self, index: usize) -> bool {
        let program = &self.programs[index];
        let spec = &program.spec;
        let due = program.instances.iter().find_map(|instance| {
            let busy = program.recycling.iter().any(|&(old, _)| old == instance.id);
            if instance.status != InstanceStatus::Ok || !instance.is_active() || busy {
                return None;
            }
            let served = instance.connections.max(instance.requests);
            if served >= spec.max_connections {
                // Say what was counted: a request-counting worker may serve many
                // requests over one connection.
                let what = if instance.requests > instance.connections {
                    "requests"
                } else {
                    "connections"
                };
                return Some((
                    instance.id,
                    served,
                    format!(
                        "served {served} {what} (max_connections {})",
                        spec.max_connections
                    ),
                ));
            }
            let now = self.os.rss_bytes(instance.pid?)?;
            if let Some(max) = spec.max_memory.filter(|&max| now > max) {
                return Some((instance.id, served, over_memory(now, max)));
            }
            let base = instance.rss_at_ok?;
            let limit =
                base.saturating_add(base.saturating_mul(u64::from(spec.max_memory_gain)) / 100);
            (now > limit).then(|| {
                let gain = now.saturating_sub(base).saturating_mul(100) / base.max(1);
                (
                    instance.id,
                    served,
                    format!(
                        "memory grew {gain}% ({base} → {now} bytes; max_memory_gain {}%)",
                        spec.max_memory_gain
                    ),
                )
            })
        });
        let Some((old, served, why)) = due else {
            return false;
        };
        self.recycle(index, old, served, why)
    }

    /// Recycles worker `old`: the `recycle` event, then its replacement. False if
    /// the replacement could not be spawned.
    pub(super) fn recycle(&mut self, index: usize, old: u64, served: u64, why: String) -> bool {
        let name = self.programs[index].spec.name.clone();
        let pid = self.programs[index].instance(old).and_then(|i| i.pid);
        let mut event = Event::new(&name, EventKind::Recycle)
            .worker(old, pid)
            .reason(why.clone());
        event.connections = served;
        self.publish(event);
        tracing::info!(program = %name, worker = old, "recycling: {why}");
        match self.add_instance(index, Some(old)) {
            Ok(new) => {
                self.programs[index].recycling.push((old, new));
                true
            }
            Err(e) => {
                self.publish(
                    Event::new(&name, EventKind::Error)
                        .worker(old, pid)
                        .reason(format!("recycle: {e}")),
                );
                false
            }
        }
    }

    /// Restarts the `ok` instances of a program that is not an enhanced
    /// cluster whose RSS passed `max_memory`: each is stopped gracefully (its
    /// stop window) and started again as soon as it exited. (An enhanced
    /// cluster recycles them instead, replacement first: [`Engine::check_recycle`].)
    fn restart_over_memory(&mut self, index: usize) {
        let Some(max) = self.programs[index].spec.max_memory else {
            return;
        };
        let over: Vec<(u64, nix::unistd::Pid, u64)> = self.programs[index]
            .instances
            .iter()
            .filter(|i| i.status == InstanceStatus::Ok && i.is_active())
            .filter_map(|i| {
                let pid = i.pid?;
                let rss = self.os.rss_bytes(pid)?;
                (rss > max).then_some((i.id, pid, rss))
            })
            .collect();
        let name = self.programs[index].spec.name.clone();
        let window = self.programs[index].spec.stop_timeout;
        for (id, pid, rss) in over {
            let why = over_memory(rss, max);
            tracing::info!(program = %name, worker = id, "restarting: {why}");
            let mut event = Event::new(&name, EventKind::Recycle)
                .worker(id, Some(pid))
                .reason(why);
            event.connections = self.programs[index]
                .instance(id)
                .map_or(0, |i| i.connections.max(i.requests));
            self.publish(event);
            if let Some(instance) = self.programs[index].instance_mut(id) {
                instance.respawn_after_stop = true;
            }
            self.stop_instance(index, id, StopReason::Recycle, window);
        }
    }

    /// The stop reason and window for retiring a replaced worker.
    pub(super) fn retirement(&self, index: usize, old: u64) -> (StopReason, Duration) {
        let program = &self.programs[index];
        if program.recycling.iter().any(|&(o, _)| o == old) {
            (StopReason::Recycle, program.spec.recycle_timeout)
        } else {
            (StopReason::Restart, program.spec.stop_timeout)
        }
    }
}

/// Why a worker is restarted for its memory.
fn over_memory(rss: u64, max: u64) -> String {
    format!("memory: RSS {rss} bytes passed max_memory ({max} bytes)")
}
