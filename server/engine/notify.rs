//! `ready = "notify"` instances speaking systemd's notify protocol to the daemon.
//!
//! Every such instance gets the same `NOTIFY_SOCKET`; a datagram is credited to
//! the instance whose process group the sender is in (the kernel's credentials
//! name the sender's pid), so a program that forks its server, or a shell
//! wrapper, can notify from any of its processes. Datagrams from anyone else
//! are dropped.
//!
//! - `READY=1`: the instance is `ok`.
//! - `STATUS=text`: shown in the worker listing.
//! - `WATCHDOG=1`: a heartbeat; from the first one on the instance's silence
//!   counts, and it is killed as hung after 8 silent heartbeat intervals.
//! - `STOPPING=1`: noted in the log; the exit that follows is handled as usual.
//! - `MAINPID=`: refused with an `error` event. The daemon supervises the
//!   process it started and its process group; a daemon that forks away and
//!   names a new main process does not fit that, so run it in the foreground.

use nix::unistd::Pid;

use super::events::{Event, EventKind};
use super::state::InstanceStatus;
use super::Engine;
use crate::daemon::spec::Ready;

impl Engine {
    /// A datagram `text` from process `pid`.
    pub(super) fn on_notify(&mut self, pid: i32, text: &str) {
        let Some((name, id, index)) = self.notifying_instance(pid) else {
            tracing::debug!(
                pid,
                "notify message from a process that is no notify instance: dropped"
            );
            return;
        };
        for line in text.lines() {
            let (key, value) = line.split_once('=').unwrap_or((line, ""));
            match key {
                "READY" if value == "1" => {
                    let starting = self.programs[index]
                        .instance(id)
                        .is_some_and(|i| i.status == InstanceStatus::Starting);
                    if starting {
                        self.mark_ok(index, id);
                    }
                }
                "STATUS" => {
                    if let Some(instance) = self.programs[index].instance_mut(id) {
                        // A line of text for a listing, not a novel.
                        instance.notes_mut().notify_status = value.chars().take(200).collect();
                    }
                }
                "WATCHDOG" if value == "1" => {
                    if let Some(instance) = self.programs[index].instance_mut(id) {
                        instance.notify_watchdog = true;
                        instance.last_seen = tokio::time::Instant::now();
                    }
                }
                "STOPPING" if value == "1" => {
                    tracing::info!(program = %name, worker = id, "the worker says it is stopping");
                }
                "MAINPID" => {
                    let reason = format!(
                        "worker {id}: MAINPID={value} refused: infant supervises the process \
                         it started; run the program in the foreground"
                    );
                    tracing::warn!(program = %name, "{reason}");
                    let pid = self.programs[index].instance(id).and_then(|i| i.pid);
                    self.publish(
                        Event::new(&name, EventKind::Error)
                            .worker(id, pid)
                            .reason(reason),
                    );
                }
                _ => {}
            }
        }
    }

    /// The `ready = "notify"` instance that process `pid` belongs to: the
    /// instance itself, or a process of its group.
    fn notifying_instance(&self, pid: i32) -> Option<(String, u64, usize)> {
        let leader = Pid::from_raw(pid);
        let (name, id) = self.pids.get(&leader).or_else(|| {
            let group = nix::unistd::getpgid(Some(leader)).ok()?;
            self.pids.get(&group)
        })?;
        let index = self.find(name).ok()?;
        (self.programs[index].spec.ready == Ready::Notify).then(|| (name.clone(), *id, index))
    }
}
