//! What a reload asks of the engine: the programs as defined, a new
//! definition for one, forgetting one, and the `reload` event. Reading the file
//! and applying the plan step by step is the daemon's (`daemon::reload`).

use super::events::{Event, EventKind};
use super::plan::{Defined, Plan};
use super::state::{Run, Until};
use super::Engine;
use crate::daemon::error::{Error, Result};
use crate::daemon::spec::ProgramSpec;

impl Engine {
    /// Every defined program, in definition order.
    pub(super) fn defined(&self) -> Vec<Defined> {
        self.programs
            .iter()
            .map(|p| Defined {
                spec: p.spec.clone(),
                configured: p.configured,
                // One still waiting for its `after` starts on whatever
                // definition it has by then.
                running: matches!(p.run, Run::Running),
            })
            .collect()
    }

    /// Gives program `spec.name` its new definition, from the config file. Its
    /// instances keep running: the new values apply from now on, and a restart
    /// (which the caller asks for where a field needs one) spawns on them. A
    /// new `count` waits for a scale, unless what the program is changed
    /// (`kind`, `enhanced`), and its next start takes the new size.
    pub(super) fn redefine(&mut self, spec: ProgramSpec) -> Result<()> {
        if self.closing() {
            return Err(Error::ShuttingDown);
        }
        let index = self.find(&spec.name)?;
        let program = &mut self.programs[index];
        let idle = matches!(program.run, Run::Idle);
        if idle || spec.kind != program.spec.kind || spec.enhanced != program.spec.enhanced {
            program.desired = spec.count;
        }
        if spec.listen != program.spec.listen && !program.sockets.is_empty() {
            program.rebind = true;
        }
        program.configured = true;
        self.config.logs.redefine(&spec);
        program.spec = spec;
        Ok(())
    }

    /// Forgets idle program `name`; with `check_only`, only says whether it
    /// could be forgotten once stopped. Refused while another program names it
    /// in `after`: that one could not start any more.
    pub(super) fn forget(&mut self, name: &str, check_only: bool) -> Result<()> {
        let index = self.find(name)?;
        if let Some(other) = self
            .programs
            .iter()
            .find(|p| p.spec.after.iter().any(|dep| dep == name))
        {
            return Err(Error::Precondition {
                program: name.to_owned(),
                reason: format!(
                    "program `{}` names it in `after`; remove that one first",
                    other.spec.name
                ),
            });
        }
        if check_only {
            return Ok(());
        }
        if !matches!(self.programs[index].run, Run::Idle) {
            return Err(Error::Precondition {
                program: name.to_owned(),
                reason: "is running; stop it first".into(),
            });
        }
        let mut program = self.programs.remove(index);
        let info = program.info();
        for waiter in std::mem::take(&mut program.waiters) {
            // Only a stop's waiter can be left, and the program is stopped.
            let _ = waiter.reply.send(match waiter.until {
                Until::Idle | Until::Gone(_) => Ok(info.clone()),
                Until::Ok => Err(Error::Precondition {
                    program: name.to_owned(),
                    reason: "was removed".into(),
                }),
            });
        }
        self.start_order.retain(|n| n != name);
        self.config.logs.forget(name);
        self.publish(Event::new(name, EventKind::Removed));
        Ok(())
    }

    /// Publishes the `reload` event with `plan`.
    pub(super) fn announce(&mut self, plan: Plan) {
        let mut event = Event::new("", EventKind::Reload).reason(plan.summary());
        event.plan = plan.entries;
        self.publish(event);
    }
}
