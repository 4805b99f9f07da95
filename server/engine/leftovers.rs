//! What an instance left behind when its process exited: descendants in a
//! session of their own, double-forked daemons, anything still in its cgroup.
//! They are killed as soon as the instance's process is reaped, within its
//! stop window (without cgroups, a straggler the first search missed is killed
//! when the orphan that hid it is reaped; see [`crate::daemon::process::contain`]),
//! and counted in an `error` event.

use nix::unistd::Pid;

use super::events::{Event, EventKind};
use super::Engine;

impl Engine {
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
