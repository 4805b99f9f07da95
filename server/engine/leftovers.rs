//! What an instance left behind when its process exited: descendants in a
//! session of their own, double-forked daemons, anything still in its cgroup.
//! They are killed as soon as the instance's process is reaped, within its
//! stop window (without cgroups, a straggler the first search missed is killed
//! when the orphan that hid it is reaped, or when a search that could not tell
//! is run again; see [`crate::daemon::process::contain`]), and counted in an
//! `error` event.

use nix::unistd::Pid;

use super::events::{Event, EventKind};
use super::{Engine, Timer};
use crate::daemon::process::contain::Owner;

impl Engine {
    /// Sets a timer to search again for what exited instances left behind, if
    /// the last search could not tell whether a process carried their token
    /// (it was halfway through an exec) and none is set yet.
    pub(super) fn recheck_leftovers_later(&mut self) {
        if self.recheck_scheduled {
            return;
        }
        if let Some(delay) = self.contain.recheck_after() {
            self.recheck_scheduled = true;
            self.after(delay, Timer::RecheckLeftovers);
        }
    }

    /// Searches the daemon's orphans for what exited instances left behind (an
    /// orphan was reaped, or [`Self::recheck_leftovers_later`]'s timer fired):
    /// kills and reports, each under the instance it came from, what it finds,
    /// and sets the timer again while still unsure.
    pub(super) fn search_leftovers(&mut self) {
        for stragglers in self.contain.search_retired() {
            let Owner { program, id } = stragglers.owner;
            self.report_leftovers(&program, id, stragglers.pid, stragglers.killed);
        }
        self.recheck_leftovers_later();
    }

    /// Instance `id` of `program`, process `pid`, has exited, and `killed` is
    /// what it left behind (see [`Containment::instance_exited`]): says so.
    ///
    /// [`Containment::instance_exited`]: crate::daemon::process::contain::Containment::instance_exited
    pub(super) fn report_leftovers(&mut self, program: &str, id: u64, pid: Pid, killed: Vec<Pid>) {
        if killed.is_empty() {
            return;
        }
        let count = killed.len();
        let pids = killed
            .iter()
            .map(Pid::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let noun = if count == 1 { "process" } else { "processes" };
        let reason = format!("left {count} {noun} behind, killed: {pids}");
        tracing::info!(program, worker = id, %pid, "{reason}");
        self.publish(
            Event::new(program, EventKind::Error)
                .worker(id, Some(pid))
                .reason(reason),
        );
    }
}
