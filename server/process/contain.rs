//! Containment: nothing an instance started outlives it.
//!
//! When an instance's process exits, whatever it left behind is killed at once:
//! - with cgroups ([`super::cgroup`]), everything in the instance's cgroup: every
//!   descendant, whatever its process group or session;
//! - without, the daemon's children that are not instances (orphans of
//!   instances reparented to the daemon, a child subreaper) and that are in the
//!   instance's process group or carry its `INFANT_TOKEN`, with all their
//!   descendants. A process that left both the group and the environment
//!   behind, while its parent still lives elsewhere, is not found here; it is
//!   killed at shutdown if it has become the daemon's child by then.
//!
//! Each spawn is also announced to the [`Guardian`], which kills what is left
//! if the daemon itself dies.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::cgroup;
use super::guardian::Guardian;

/// The containment of every instance of one supervisor.
#[derive(Debug, Default)]
pub struct Containment {
    cgroups: Option<cgroup::Tree>,
    guardian: Option<Guardian>,
    /// Numbers the instance cgroups.
    next_seq: u64,
    /// Each live instance process: its token and cgroup.
    live: HashMap<Pid, Contained>,
    /// Cgroups of exited instances, removed once their processes are gone.
    to_remove: Vec<PathBuf>,
}

#[derive(Debug)]
struct Contained {
    token: String,
    cgroup: Option<PathBuf>,
}

/// What a spawn needs from [`Containment::prepare`].
#[derive(Debug, Default)]
pub struct Prepared {
    cgroup: Option<cgroup::InstanceCgroup>,
}

impl Prepared {
    /// The `cgroup.procs` the child writes itself into, if it gets a cgroup
    /// and is not created in it.
    pub fn cgroup_procs(&self) -> Option<RawFd> {
        self.cgroup.as_ref().map(|c| c.procs.as_raw_fd())
    }

    /// The directory of the child's cgroup, if it gets one: the spawn creates
    /// the child in it where the kernel can.
    pub fn cgroup_dir(&self) -> Option<RawFd> {
        self.cgroup.as_ref().map(|c| c.dir_fd.as_raw_fd())
    }
}

impl Containment {
    /// Containment with `cgroups` if the daemon has them, and a `guardian` if
    /// one watches over the daemon.
    pub fn new(cgroups: Option<cgroup::Tree>, guardian: Option<Guardian>) -> Containment {
        Containment {
            cgroups,
            guardian,
            next_seq: 0,
            live: HashMap::new(),
            to_remove: Vec::new(),
        }
    }

    /// Gets ready to spawn an instance: its cgroup, if there are cgroups. A
    /// cgroup that cannot be created is logged and the instance runs without.
    pub fn prepare(&mut self) -> Prepared {
        self.remove_finished();
        let Some(tree) = &self.cgroups else {
            return Prepared::default();
        };
        self.next_seq += 1;
        match tree.instance(self.next_seq) {
            Ok(cgroup) => Prepared {
                cgroup: Some(cgroup),
            },
            Err(e) => {
                tracing::warn!("cannot create an instance's cgroup: {e}");
                Prepared::default()
            }
        }
    }

    /// The spawn that `prepared` was for failed.
    pub fn abandon(&mut self, prepared: Prepared) {
        if let Some(cgroup) = prepared.cgroup {
            cgroup::remove_tree(&cgroup.dir);
        }
    }

    /// Instance process `pid` (its own process group) was spawned with `token`.
    pub fn spawned(&mut self, pid: Pid, token: &str, prepared: Prepared) {
        if let Some(guardian) = &self.guardian {
            guardian.watch(pid, token);
        }
        self.live.insert(
            pid,
            Contained {
                token: token.to_owned(),
                cgroup: prepared.cgroup.map(|c| c.dir),
            },
        );
    }

    /// Instance process `pid` exited (and was reaped): SIGKILLs everything it
    /// left behind and returns those pids.
    pub fn instance_exited(&mut self, pid: Pid) -> Vec<Pid> {
        let Some(contained) = self.live.remove(&pid) else {
            return Vec::new();
        };
        let killed = match &contained.cgroup {
            Some(dir) => {
                let alive: Vec<Pid> = cgroup::members(dir)
                    .into_iter()
                    .filter(|&p| p != pid && is_alive(p))
                    .collect();
                if !alive.is_empty() {
                    cgroup::kill(dir);
                }
                self.to_remove.push(dir.clone());
                // What is still in the instance's own process group was killed
                // with it (the engine signals the group): only what left the
                // group was left behind.
                alive
                    .into_iter()
                    .filter(|&p| nix::unistd::getpgid(Some(p)).ok() != Some(pid))
                    .collect()
            }
            None => self.kill_orphans(pid, &contained.token),
        };
        if let Some(guardian) = &self.guardian {
            guardian.forget(pid, &contained.token);
        }
        self.remove_finished();
        killed
    }

    /// The pid of the guardian, which is the daemon's child but no leftover.
    pub fn guardian_pid(&self) -> Option<Pid> {
        self.guardian.as_ref().map(Guardian::pid)
    }

    /// Without cgroups: the daemon's children that are no instance and are in
    /// group `pgid` or carry `token`, and all their descendants.
    fn kill_orphans(&self, pgid: Pid, token: &str) -> Vec<Pid> {
        let me = nix::unistd::getpid();
        let table = process_table();
        let roots = table.iter().filter(|p| {
            p.ppid == me
                && p.state != 'Z'
                && !self.live.contains_key(&p.pid)
                && Some(p.pid) != self.guardian_pid()
                && (p.pgid == pgid || carries_token(p.pid, &[token]))
        });
        let mut found: Vec<Pid> = roots.map(|p| p.pid).collect();
        // Descendants, breadth first: `found` grows as it is walked.
        let mut i = 0;
        while i < found.len() {
            let parent = found[i];
            found.extend(
                table
                    .iter()
                    .filter(|p| p.ppid == parent && p.state != 'Z')
                    .map(|p| p.pid),
            );
            i += 1;
        }
        for &pid in &found {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        // What is still in the instance's own process group was killed with it
        // (the engine signals the group): only what left the group was left
        // behind.
        found
            .into_iter()
            .filter(|&p| {
                table
                    .iter()
                    .find(|e| e.pid == p)
                    .is_none_or(|e| e.pgid != pgid)
            })
            .collect()
    }

    /// Removes the cgroups of exited instances that have emptied.
    fn remove_finished(&mut self) {
        self.to_remove.retain(|dir| !cgroup::remove_tree(dir));
    }
}

impl Drop for Containment {
    fn drop(&mut self) {
        for dir in &self.to_remove {
            cgroup::remove_tree(dir);
        }
        // The tree (dropped next) kills and removes whatever cgroup is left.
    }
}

/// A process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy)]
pub struct ProcEntry {
    /// Its pid.
    pub pid: Pid,
    /// Its state letter (`Z` for a zombie).
    pub state: char,
    /// Its parent.
    pub ppid: Pid,
    /// Its process group.
    pub pgid: Pid,
}

/// Every process on the system (that `/proc` shows).
pub fn process_table() -> Vec<ProcEntry> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(proc_entry)
        .collect()
}

/// `/proc/PID/stat`: the fields after the parenthesised name, which may itself
/// contain spaces and parentheses.
fn proc_entry(pid: i32) -> Option<ProcEntry> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some(ProcEntry {
        pid: Pid::from_raw(pid),
        state,
        ppid: Pid::from_raw(ppid),
        pgid: Pid::from_raw(pgid),
    })
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: Pid) -> bool {
    proc_entry(pid.as_raw()).is_some_and(|p| p.state != 'Z')
}

/// Whether the environment of `pid` has `INFANT_TOKEN` set to one of `tokens`.
pub fn carries_token<S: AsRef<str>>(pid: Pid, tokens: &[S]) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    environ.split(|&b| b == 0).any(|entry| {
        entry.strip_prefix(b"INFANT_TOKEN=").is_some_and(|value| {
            tokens
                .iter()
                .any(|token| token.as_ref().as_bytes() == value)
        })
    })
}
