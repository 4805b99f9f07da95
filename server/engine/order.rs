//! Order between programs: `after` dependencies on the way up, and stops that
//! take programs down one after another (dependents first) on the way down.
//!
//! A program started while what it names in `after` is not up waits in
//! [`Run::Waiting`] (status `starting`); starting it also starts those programs.
//! It is launched once every dependency is satisfied — `ok`, or for a `once` job,
//! completed with exit code 0 while what the job needs is still satisfied — and
//! fails if one of them fails.

use std::collections::VecDeque;

use super::events::{Event, EventKind};
use super::state::{ProgramStatus, Run, StopReason};
use super::{Engine, FailedDependency, StopSequence};
use crate::daemon::error::{Error, Result};
use crate::daemon::spec::Kind;

/// Where a dependency stands.
enum Dep {
    /// Up (or, for a job, completed successfully).
    Satisfied,
    /// On its way up.
    Pending,
    /// Not running and not asked to.
    Idle,
    /// It failed, with this reason.
    Failed(String),
}

impl Engine {
    fn dependency(&self, name: &str) -> Dep {
        let Ok(index) = self.find(name) else {
            return Dep::Failed(format!("program `{name}` is not defined"));
        };
        let p = &self.programs[index];
        match (&p.run, p.spec.kind) {
            (Run::Idle, Kind::Once) if p.outcome.is_some() && p.last_error.is_none() => {
                // Done, as long as what it ran after is still the launch it ran
                // after, and up: once one of those has been stopped or started
                // again, the job runs again, after it, before anything that
                // needs it. A dependency that is failing fails it, as it would
                // fail a program that named it directly.
                let mut done = Dep::Satisfied;
                for (dep, launch) in &p.ran_after {
                    let relaunched = self
                        .find(dep)
                        .map_or(true, |d| self.programs[d].tick != *launch);
                    if relaunched {
                        return Dep::Idle;
                    }
                    match self.dependency(dep) {
                        Dep::Satisfied => {}
                        Dep::Pending => done = Dep::Pending,
                        Dep::Idle => return Dep::Idle,
                        Dep::Failed(reason) => return Dep::Failed(reason),
                    }
                }
                done
            }
            (Run::Idle, _) => match &p.last_error {
                Some(error) => Dep::Failed(format!("`{name}` failed: {error}")),
                None => Dep::Idle,
            },
            (Run::Waiting, _) => Dep::Pending,
            (Run::Stopping(_), _) => Dep::Failed(format!("`{name}` is stopping")),
            (Run::Running, Kind::Once) => Dep::Pending,
            (Run::Running, _) => match p.status {
                ProgramStatus::Ok => Dep::Satisfied,
                ProgramStatus::Error => Dep::Failed(format!(
                    "`{name}` failed: {}",
                    p.last_error.clone().unwrap_or_default()
                )),
                _ => Dep::Pending,
            },
        }
    }

    /// Brings program `index` up: launches it if its dependencies are satisfied,
    /// else starts those that are idle and leaves it waiting for them. A failed
    /// dependency is started again, or with [`FailedDependency::Refuse`] fails
    /// this program too.
    pub(super) fn request_start(
        &mut self,
        index: usize,
        failed_dependency: FailedDependency,
    ) -> Result<()> {
        let after = self.programs[index].spec.after.clone();
        let mut ready = true;
        for dep in &after {
            let dep_index = self.find(dep)?;
            let idle = matches!(self.programs[dep_index].run, Run::Idle);
            match self.dependency(dep) {
                Dep::Satisfied => {}
                Dep::Pending => ready = false,
                Dep::Failed(reason) if !idle || failed_dependency == FailedDependency::Refuse => {
                    return Err(self.refuse_start(index, failed_dependency, &reason));
                }
                Dep::Idle | Dep::Failed(_) => {
                    if let Err(e) = self.request_start(dep_index, failed_dependency) {
                        let why = match &e {
                            Error::Precondition { reason, .. } => reason.clone(),
                            other => other.to_string(),
                        };
                        let why = why.strip_prefix("not started: ").unwrap_or(&why);
                        let reason = format!("`{dep}` could not start: {why}");
                        return Err(self.refuse_start(index, failed_dependency, &reason));
                    }
                    ready &= matches!(self.dependency(dep), Dep::Satisfied);
                }
            }
        }
        if ready {
            return self.launch(index);
        }
        let name = self.programs[index].spec.name.clone();
        let program = &mut self.programs[index];
        program.run = Run::Waiting;
        program.last_error = None;
        program.gave_up = false;
        let waiting: Vec<&str> = after
            .iter()
            .map(String::as_str)
            .filter(|d| !matches!(self.dependency(d), Dep::Satisfied))
            .collect();
        let mut event = Event::new(&name, EventKind::Status);
        event.program_status = Some(ProgramStatus::Starting);
        event.reason = format!("waiting for {}", waiting.join(", "));
        self.programs[index].status = ProgramStatus::Starting;
        self.publish(event);
        Ok(())
    }

    /// Launches waiting programs whose dependencies are now satisfied, and fails
    /// those with a failed dependency.
    pub(super) fn start_waiting(&mut self) {
        for index in 0..self.programs.len() {
            if !matches!(self.programs[index].run, Run::Waiting) {
                continue;
            }
            let mut ready = true;
            let mut failed = None;
            for dep in &self.programs[index].spec.after {
                match self.dependency(dep) {
                    Dep::Satisfied => {}
                    Dep::Pending => ready = false,
                    Dep::Idle => {
                        ready = false;
                        failed = Some(format!("`{dep}` was stopped"));
                    }
                    Dep::Failed(reason) => {
                        ready = false;
                        failed = Some(reason);
                    }
                }
            }
            if let Some(reason) = failed {
                self.cancel_waiting(index, &format!("not started: {reason}"));
            } else if ready {
                self.programs[index].run = Run::Idle;
                if let Err(e) = self.launch(index) {
                    let reason = e.to_string();
                    let name = self.programs[index].spec.name.clone();
                    self.fail_ok_waiters(index, || Error::Precondition {
                        program: name.clone(),
                        reason: reason.clone(),
                    });
                    self.settle(index);
                }
            }
        }
    }

    /// The error for program `index`, not started because of a dependency. In the
    /// daemon's start-up ([`FailedDependency::Refuse`]) it is also recorded: the
    /// program's status and an `error` event say why, as nobody waits on a reply.
    fn refuse_start(&mut self, index: usize, mode: FailedDependency, reason: &str) -> Error {
        let name = self.programs[index].spec.name.clone();
        let reason = format!("not started: {reason}");
        if mode == FailedDependency::Refuse {
            self.programs[index].last_error = Some(reason.clone());
            self.publish(Event::new(&name, EventKind::Error).reason(&reason));
            self.settle(index);
        }
        Error::Precondition {
            program: name,
            reason,
        }
    }

    /// Gives up on starting a waiting program.
    pub(super) fn cancel_waiting(&mut self, index: usize, reason: &str) {
        let name = self.programs[index].spec.name.clone();
        let program = &mut self.programs[index];
        program.run = Run::Idle;
        program.last_error = Some(reason.to_string());
        self.publish(Event::new(&name, EventKind::Error).reason(reason));
        self.fail_ok_waiters(index, || Error::Precondition {
            program: name.clone(),
            reason: reason.to_string(),
        });
        self.settle(index);
    }

    /// Running or waiting programs that need `name`, directly or through others
    /// (running or not, like a completed job between them), last started first:
    /// they stop before it.
    pub(super) fn dependents(&self, name: &str) -> Vec<String> {
        let mut queue = vec![name.to_string()];
        let mut seen: Vec<String> = Vec::new();
        while let Some(current) = queue.pop() {
            for p in &self.programs {
                if p.spec.after.contains(&current) && !seen.contains(&p.spec.name) {
                    seen.push(p.spec.name.clone());
                    queue.push(p.spec.name.clone());
                }
            }
        }
        let mut found: Vec<String> = seen
            .into_iter()
            .filter(|n| {
                self.find(n)
                    .is_ok_and(|i| !matches!(self.programs[i].run, Run::Idle))
            })
            .collect();
        let position = |n: &String| self.start_order.iter().position(|s| s == n);
        found.sort_by_key(|n| std::cmp::Reverse(position(n)));
        found
    }

    /// Stops `programs` one after another.
    pub(super) fn stop_in_order(&mut self, programs: Vec<String>, reason: StopReason) {
        self.sequences.push(StopSequence {
            queue: VecDeque::from(programs),
            reason,
        });
        self.advance_sequences();
    }

    /// Moves every ordered stop along: the next program begins to stop once the
    /// one before it is idle.
    pub(super) fn advance_sequences(&mut self) {
        // Beginning a stop settles the program, which comes back here; the outer
        // call carries on where the inner one would start.
        if self.advancing {
            return;
        }
        self.advancing = true;
        let mut i = 0;
        while i < self.sequences.len() {
            while let Some(name) = self.sequences[i].queue.front().cloned() {
                let Ok(index) = self.find(&name) else {
                    self.sequences[i].queue.pop_front();
                    continue;
                };
                match self.programs[index].run {
                    Run::Idle => {
                        self.sequences[i].queue.pop_front();
                    }
                    Run::Waiting => {
                        self.sequences[i].queue.pop_front();
                        self.cancel_waiting(index, "stopped before it started");
                    }
                    Run::Running => {
                        let reason = self.sequences[i].reason;
                        let window = self.programs[index]
                            .stop_override
                            .take()
                            .unwrap_or(self.programs[index].spec.stop_timeout);
                        if reason == StopReason::Stop {
                            self.programs[index].last_error = None;
                        }
                        // Look again: a program with nothing left to stop is idle
                        // at once, and the next one can go.
                        self.begin_stop(index, reason, window);
                    }
                    Run::Stopping(_) => break,
                }
                if i >= self.sequences.len() {
                    break;
                }
            }
            if i < self.sequences.len() && self.sequences[i].queue.is_empty() {
                self.sequences.remove(i);
            } else {
                i += 1;
            }
        }
        self.advancing = false;
    }
}
