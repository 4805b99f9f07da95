//! Containment: nothing an instance started outlives it.
//!
//! When an instance's process exits, whatever it left behind is killed at once:
//! - with cgroups ([`super::cgroup`]), everything in the instance's cgroup: every
//!   descendant, whatever its process group or session;
//! - without, the daemon's children that are not instances (orphans of
//!   instances reparented to the daemon, a child subreaper) and that are in the
//!   instance's process group or carry its `INFANT_TOKEN`, with all their
//!   descendants. `/proc` is no snapshot, so a process that forks and exits
//!   while it is read can hide its child from that search: the token of an
//!   exited instance is looked for again among the daemon's children each time
//!   an orphan is reaped, for [`RETIRED_FOR`]. A process that left both the
//!   group and the environment behind, while its parent still lives elsewhere,
//!   is not found here; it is killed at shutdown if it has become the daemon's
//!   child by then.
//!
//! Each spawn is also announced to the [`Guardian`], which kills what is left
//! if the daemon itself dies.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::num::NonZeroU64;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::cgroup;
use super::guardian::Guardian;

/// How many times [`Containment`] searches `/proc` for an instance's orphans
/// before it gives up on a tree that keeps growing.
const MAX_ROUNDS: usize = 64;

/// How long, without cgroups, the token of an exited instance is looked for
/// among the daemon's orphans.
pub const RETIRED_FOR: Duration = Duration::from_secs(10);

/// At most this many exited instances are remembered for [`RETIRED_FOR`].
const RETIRED_MAX: usize = 1024;

/// The first wait before a search that ended unsure is run again; each
/// further one waits twice as long, up to [`RECHECK_MAX`]. An exec takes well
/// under a millisecond, but on a loaded machine the process doing it may not
/// run for a while.
const RECHECK_FIRST: Duration = Duration::from_millis(5);

/// The longest wait between two searches that ended unsure.
const RECHECK_MAX: Duration = Duration::from_secs(1);

/// The containment of every instance of one supervisor.
#[derive(Debug, Default)]
pub struct Containment {
    cgroups: Option<cgroup::Tree>,
    guardian: Option<Guardian>,
    /// Numbers the instance cgroups.
    next_seq: u64,
    /// Each live instance process, and the number of its cgroup if it has
    /// one. Its token and owner are the engine's to give back at its exit: one
    /// copy of each per instance, which thousands of instances notice.
    live: HashMap<Pid, Option<NonZeroU64>>,
    /// Cgroups of exited instances, removed once their processes are gone.
    to_remove: Vec<PathBuf>,
    /// Without cgroups: instances that exited lately, oldest first.
    retired: VecDeque<Retired>,
    /// How many searches in a row ended unsure (a daemon's child showed no
    /// environment): while non-zero, [`Self::recheck_after`] asks for another.
    unsure_searches: u32,
}

#[derive(Debug)]
struct Retired {
    token: String,
    owner: Owner,
    pid: Pid,
    at: Instant,
}

/// Which instance a process belongs to: its program and worker id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The program's name.
    pub program: String,
    /// The worker id.
    pub id: u64,
}

/// What an exited instance left behind and the orphan sweep killed.
#[derive(Debug)]
pub struct Stragglers {
    /// The instance they came from.
    pub owner: Owner,
    /// The instance's process, long reaped.
    pub pid: Pid,
    /// What was killed.
    pub killed: Vec<Pid>,
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
            retired: VecDeque::new(),
            unsure_searches: 0,
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

    /// Instance process `pid` (its own process group) was spawned with
    /// `token`.
    pub fn spawned(&mut self, pid: Pid, token: &str, prepared: Prepared) {
        if let Some(guardian) = &self.guardian {
            guardian.watch(pid, token);
        }
        let seq = prepared.cgroup.and_then(|c| NonZeroU64::new(c.seq));
        self.live.insert(pid, seq);
    }

    /// Instance process `pid` of `owner`, spawned with `token`, exited (and
    /// was reaped): SIGKILLs everything it left behind and returns those pids.
    /// Without its token (the engine lost track of it), only its process group
    /// tells what it left.
    pub fn instance_exited(&mut self, pid: Pid, token: Option<&str>, owner: Owner) -> Vec<Pid> {
        let Some(seq) = self.live.remove(&pid) else {
            return Vec::new();
        };
        let dir = seq
            .zip(self.cgroups.as_ref())
            .map(|(seq, tree)| tree.instance_dir(seq.get()));
        let killed = match dir {
            Some(dir) => {
                let others: Vec<Pid> = cgroup::members(&dir)
                    .into_iter()
                    .filter(|&p| p != pid)
                    .collect();
                // Told apart before the kill: what is alive now was left
                // behind.
                let alive: Vec<Pid> = others.iter().copied().filter(|&p| is_alive(p)).collect();
                // Killed even if each one listed seems gone by now: one may
                // have forked after the listing and then exited, and its child
                // is in the cgroup too. `cgroup.kill` takes forks in progress.
                if !others.is_empty() {
                    cgroup::kill(&dir);
                }
                self.to_remove.push(dir);
                // What is still in the instance's own process group was killed
                // with it (the engine signals the group): only what left the
                // group was left behind.
                alive
                    .into_iter()
                    .filter(|&p| nix::unistd::getpgid(Some(p)).ok() != Some(pid))
                    .collect()
            }
            None => {
                let killed = self.kill_orphans(pid, token);
                if let Some(token) = token {
                    self.retire(pid, token.to_owned(), owner);
                }
                killed
            }
        };
        if let (Some(guardian), Some(token)) = (&self.guardian, token) {
            guardian.forget(pid, token);
        }
        self.remove_finished();
        killed
    }

    /// How long to wait before [`Self::search_retired`], if the last search ended
    /// unsure of a daemon's child that showed no environment (halfway through
    /// an exec): it carries an exited instance's token or not, and nothing may
    /// be reaped later to look at it again. The wait doubles from one unsure
    /// search to the next.
    pub fn recheck_after(&self) -> Option<Duration> {
        if self.unsure_searches == 0 || self.retired.is_empty() {
            return None;
        }
        let doublings = (self.unsure_searches - 1).min(16);
        Some((RECHECK_FIRST * 2u32.pow(doublings)).min(RECHECK_MAX))
    }

    /// Searches the daemon's children for the tokens of instances that exited
    /// lately, and kills what carries one: when a process that was no instance
    /// was reaped (whatever it left became the daemon's child), and when
    /// [`Self::recheck_after`] asked for another look.
    pub fn search_retired(&mut self) -> Vec<Stragglers> {
        let now = Instant::now();
        while self
            .retired
            .front()
            .is_some_and(|r| now.duration_since(r.at) > RETIRED_FOR)
        {
            self.retired.pop_front();
        }
        if self.retired.is_empty() {
            self.unsure_searches = 0;
            return Vec::new();
        }
        let tokens: Vec<&str> = self.retired.iter().map(|r| r.token.as_str()).collect();
        let (killed, unsure) = self.kill_trees(|p| which_token(p.pid, &tokens));
        self.note_search(unsure);
        let mut found: Vec<Stragglers> = Vec::new();
        for (pid, index, _) in killed {
            let retired = &self.retired[index];
            match found.iter_mut().find(|s| s.pid == retired.pid) {
                Some(s) => s.killed.push(pid),
                None => found.push(Stragglers {
                    owner: retired.owner.clone(),
                    pid: retired.pid,
                    killed: vec![pid],
                }),
            }
        }
        found
    }

    /// Counts a search that ended `unsure`, or starts the count again.
    fn note_search(&mut self, unsure: bool) {
        self.unsure_searches = if unsure {
            self.unsure_searches.saturating_add(1)
        } else {
            0
        };
    }

    /// Remembers an instance that exited, for [`Self::search_retired`].
    fn retire(&mut self, pid: Pid, token: String, owner: Owner) {
        if self.retired.len() == RETIRED_MAX {
            self.retired.pop_front();
        }
        self.retired.push_back(Retired {
            token,
            owner,
            pid,
            at: Instant::now(),
        });
    }

    /// The pid of the guardian, which is the daemon's child but no leftover.
    pub fn guardian_pid(&self) -> Option<Pid> {
        self.guardian.as_ref().map(Guardian::pid)
    }

    /// Without cgroups: the daemon's children that are no instance and are in
    /// group `pgid` or carry `token`, and all their descendants. Returns those
    /// that had left the group.
    fn kill_orphans(&mut self, pgid: Pid, token: Option<&str>) -> Vec<Pid> {
        let (killed, unsure) = self.kill_trees(|p| {
            if p.pgid == pgid {
                return Some(Some(()));
            }
            let Some(token) = token else {
                return Some(None);
            };
            carries_token(p.pid, &[token]).map(|carries| carries.then_some(()))
        });
        self.note_search(unsure);
        // What is still in the instance's own process group was killed with it
        // (the engine signals the group): only what left the group was left
        // behind.
        killed
            .into_iter()
            .filter(|&(_, _, group)| group != Some(pgid))
            .map(|(pid, _, _)| pid)
            .collect()
    }

    /// SIGKILLs the daemon's children that are no instance and for which
    /// `root` gives a key, with all their descendants; returns each one killed,
    /// with its root's key and its process group, and whether the search ended
    /// unsure: with a root `root` could not tell yet (it gives `None` for
    /// those), or with the tree still growing after [`MAX_ROUNDS`].
    ///
    /// One reading of `/proc` is not enough: it takes a while, and a process
    /// found in it may fork before its SIGKILL lands. So the search runs again,
    /// from the roots and from every process already killed, until a round
    /// finds nothing new. A SIGKILLed process can no longer complete a fork, so
    /// each round's new processes were born before the previous round's kills,
    /// and the rounds end.
    fn kill_trees<K: Copy>(
        &self,
        mut root: impl FnMut(&ProcEntry) -> Option<Option<K>>,
    ) -> (Vec<(Pid, K, Option<Pid>)>, bool) {
        let me = nix::unistd::getpid();
        let mut killed: Vec<(Pid, K, Option<Pid>)> = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let table = process_table();
            // A root whose environment cannot be read yet (halfway through an
            // exec) is looked at again by a later search (the caller's timer),
            // not waited for here: the engine would wait with it.
            let mut unsure = false;
            let mut found: Vec<(Pid, K)> = Vec::new();
            for p in &table {
                if p.ppid != me
                    || p.state == 'Z'
                    || self.live.contains_key(&p.pid)
                    || Some(p.pid) == self.guardian_pid()
                {
                    continue;
                }
                match root(p) {
                    Some(Some(key)) => found.push((p.pid, key)),
                    Some(None) => {}
                    None => unsure = true,
                }
            }
            // Descendants, breadth first: `found` grows as it is walked. A
            // child read before its killed parent was gone still names that
            // parent, so the walk starts from the killed too.
            found.extend(killed.iter().map(|&(pid, key, _)| (pid, key)));
            let mut i = 0;
            while i < found.len() {
                let (parent, key) = found[i];
                for p in &table {
                    if p.ppid == parent
                        && p.state != 'Z'
                        && !found.iter().any(|&(pid, _)| pid == p.pid)
                    {
                        found.push((p.pid, key));
                    }
                }
                i += 1;
            }
            let new: Vec<(Pid, K)> = found
                .into_iter()
                .filter(|&(pid, _)| !killed.iter().any(|&(k, _, _)| k == pid))
                .collect();
            if new.is_empty() {
                return (killed, unsure);
            }
            for (pid, key) in new {
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                let group = table.iter().find(|e| e.pid == pid).map(|e| e.pgid);
                killed.push((pid, key, group));
            }
        }
        // Still growing after every round: not sure either.
        (killed, true)
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

/// The environment of `pid`, read in one `read` where it fits in 256 KiB.
///
/// Each `read` of `/proc/PID/environ` looks at the memory the process has at
/// that moment, so reading in pieces (as `fs::read` does, from a small first
/// read) across an exec returns the start of the old environment and then
/// nothing: a token further on would seem to be missing.
fn read_environ(pid: Pid) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(format!("/proc/{pid}/environ")).ok()?;
    let mut environ = vec![0; 256 * 1024];
    let n = file.read(&mut environ).ok()?;
    environ.truncate(n);
    if n == 256 * 1024 {
        file.read_to_end(&mut environ).ok()?;
    }
    Some(environ)
}

/// Whether the environment of `pid` has `INFANT_TOKEN` set to one of `tokens`;
/// `None` while it cannot be told: the process is halfway through an exec,
/// where its new memory has no environment yet and `/proc` shows an empty one
/// (or its environment is empty for good). One that is gone, or whose
/// environment cannot be read, carries none.
pub fn carries_token<S: AsRef<str>>(pid: Pid, tokens: &[S]) -> Option<bool> {
    which_token(pid, tokens).map(|index| index.is_some())
}

/// Which of `tokens` the environment of `pid` has as `INFANT_TOKEN`, if any;
/// `None` while it cannot be told (see [`carries_token`]).
fn which_token<S: AsRef<str>>(pid: Pid, tokens: &[S]) -> Option<Option<usize>> {
    // One whose environment is not ours to read (another user's, a setuid
    // program's) or that is gone carries none of our tokens as far as we can
    // ever tell: no reason to look again.
    let Some(environ) = read_environ(pid) else {
        return Some(None);
    };
    if environ.is_empty() {
        return None;
    }
    let value = environ
        .split(|&b| b == 0)
        .find_map(|entry| entry.strip_prefix(b"INFANT_TOKEN="));
    Some(value.and_then(|value| {
        tokens
            .iter()
            .position(|token| token.as_ref().as_bytes() == value)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only an empty environment (an exec under way) is worth another look: a
    /// process that is gone, or whose environment is not ours to read, carries
    /// no token and is not waited for.
    #[test]
    fn only_an_empty_environment_is_looked_at_again() {
        let gone = Pid::from_raw(i32::MAX);
        assert_eq!(which_token(gone, &["t"]), Some(None));
        assert_eq!(carries_token(gone, &["t"]), Some(false));
        // Our own environment is readable and holds no such token.
        let me = nix::unistd::getpid();
        assert_eq!(which_token(me, &["no-such-token"]), Some(None));
    }

    /// A search that ended unsure asks for another, sooner at first and then
    /// less often; none once sure, or once no exited instance is remembered.
    #[test]
    fn an_unsure_search_is_run_again_later_and_later() {
        let mut contain = Containment::default();
        contain.note_search(true);
        assert_eq!(contain.recheck_after(), None, "no token to look for");
        contain.retire(
            Pid::from_raw(1),
            "t".into(),
            Owner {
                program: "p".into(),
                id: 1,
            },
        );
        let waits: Vec<Option<Duration>> = (0..10)
            .map(|_| {
                let wait = contain.recheck_after();
                contain.note_search(true);
                wait
            })
            .collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(
            waits,
            [
                ms(5),
                ms(10),
                ms(20),
                ms(40),
                ms(80),
                ms(160),
                ms(320),
                ms(640),
                ms(1000),
                ms(1000)
            ]
        );
        contain.note_search(false);
        assert_eq!(contain.recheck_after(), None, "sure again");
    }
}
