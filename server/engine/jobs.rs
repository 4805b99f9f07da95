//! `once` jobs: how a run's end is recorded, which failed runs are retried, and
//! the run time limit.

use nix::sys::signal::Signal;

use super::events::{Event, EventKind};
use super::state::{InstanceStatus, Run};
use super::Engine;
use crate::daemon::process::reaper::{Exit, ExitStatus};

impl Engine {
    /// A `once` job's run ended by itself. Records the outcome; returns true if
    /// the failed run is to be retried (the caller respawns it with backoff).
    pub(super) fn job_ended(&mut self, index: usize, id: u64, exit: Exit, reason: &str) -> bool {
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
        let code = match exit.status {
            ExitStatus::Code(code) => Some(code),
            ExitStatus::Signal(_) => None,
        };
        if program.spec.is_success(code) {
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
        instance.notes_mut().killed_because = Some(format!(
            "timed out after {}",
            humantime::format_duration(limit)
        ));
        let _ = self.os.signal_group(pid, Signal::SIGKILL);
    }
}
