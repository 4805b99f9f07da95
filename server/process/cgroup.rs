//! cgroup v2 containment: one cgroup per instance, so that whatever an instance
//! starts — in its process group or not, in a new session, double-forked — can
//! be found and killed as one (`cgroup.kill`).
//!
//! The daemon needs a cgroup v2 hierarchy it may write to: a subtree delegated
//! to it (systemd's `Delegate=yes`), a container's own cgroup namespace, or a
//! writable cgroup2 mount as root. It finds its own cgroup from
//! `/proc/self/cgroup` (the `0::` line) and the cgroup2 mount from
//! `/proc/self/mountinfo`, and creates `infantd.PID.N/` below its own cgroup,
//! with one `iSEQ/` per spawned instance below that. Without such a hierarchy
//! (or with `INFANT_CGROUP=off`) there are no cgroups, and containment falls
//! back to process groups and the instances' `INFANT_TOKEN`
//! (see [`super::contain`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// The environment variable that turns cgroup containment off (`off`, `0`,
/// `no` or `false`).
pub const CGROUP_ENV: &str = "INFANT_CGROUP";

/// Tells apart the trees of several supervisors in one process.
static NEXT_TREE: AtomicU32 = AtomicU32::new(0);

/// The daemon's own cgroup, `infantd.PID.N/`, under which every instance gets a
/// cgroup of its own. Removed (once empty) when dropped.
#[derive(Debug)]
pub struct Tree {
    root: PathBuf,
}

impl Tree {
    /// Creates the daemon's cgroup below its own, if cgroup v2 is available and
    /// writable and not turned off; `None` (with the reason logged at debug
    /// level) otherwise.
    pub fn create() -> Option<Tree> {
        if std::env::var(CGROUP_ENV).is_ok_and(|v| matches!(v.trim(), "off" | "0" | "no" | "false"))
        {
            tracing::info!("cgroup containment turned off ({CGROUP_ENV})");
            return None;
        }
        let own = match own_cgroup_dir() {
            Ok(own) => own,
            Err(why) => {
                tracing::info!("no cgroup containment: {why}");
                return None;
            }
        };
        let n = NEXT_TREE.fetch_add(1, Ordering::Relaxed);
        let root = own.join(format!("infantd.{}.{n}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&root) {
            tracing::info!(
                "no cgroup containment: cannot create {}: {e}",
                root.display()
            );
            return None;
        }
        // Moving a process into a child cgroup needs write access to the
        // `cgroup.procs` of the cgroup it leaves (ours): check it now, once,
        // rather than have every spawn fail to move its child.
        if nix::unistd::access(&own.join("cgroup.procs"), nix::unistd::AccessFlags::W_OK).is_err() {
            tracing::info!(
                "no cgroup containment: {} is not writable",
                own.join("cgroup.procs").display()
            );
            let _ = std::fs::remove_dir(&root);
            return None;
        }
        tracing::info!(cgroup = %root.display(), "instances are contained in cgroups");
        Some(Tree { root })
    }

    /// The daemon's cgroup directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of instance cgroup `seq`, `iSEQ/`.
    pub fn instance_dir(&self, seq: u64) -> PathBuf {
        self.root.join(format!("i{seq}"))
    }

    /// Creates the cgroup of the instance about to be spawned, `iSEQ/`, and opens
    /// it twice: the directory, for a child created straight into it
    /// (`clone3` with `CLONE_INTO_CGROUP`), and its `cgroup.procs`, for a child
    /// that has to move itself in after a plain `fork`.
    pub fn instance(&self, seq: u64) -> std::io::Result<InstanceCgroup> {
        let dir = self.instance_dir(seq);
        std::fs::create_dir(&dir)?;
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&dir)
            .and_then(|dir_fd| {
                let procs = OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"))?;
                Ok((dir_fd, procs))
            });
        match opened {
            Ok((dir_fd, procs)) => Ok(InstanceCgroup {
                seq,
                dir,
                dir_fd: dir_fd.into(),
                procs: procs.into(),
            }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }
}

/// The cgroup of one instance, open for its spawn.
#[derive(Debug)]
pub struct InstanceCgroup {
    /// Its number, as [`Tree::instance`] was given it.
    pub seq: u64,
    /// Its directory.
    pub dir: PathBuf,
    /// The directory, open: what `clone3` creates the child in.
    pub dir_fd: OwnedFd,
    /// Its `cgroup.procs`, open for writing: where a forked child moves itself.
    pub procs: OwnedFd,
}

impl Drop for Tree {
    fn drop(&mut self) {
        kill(&self.root);
        remove_when_empty(&self.root, Duration::from_secs(1));
    }
}

/// The pids in cgroup `dir` and below it.
pub fn members(dir: &Path) -> Vec<Pid> {
    let mut pids = Vec::new();
    collect_members(dir, &mut pids);
    pids
}

fn collect_members(dir: &Path, pids: &mut Vec<Pid>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(
            text.lines()
                .filter_map(|l| l.trim().parse().ok())
                .map(Pid::from_raw),
        );
    }
    for child in subdirs(dir) {
        collect_members(&child, pids);
    }
}

/// SIGKILLs every process in cgroup `dir` and below: all at once with
/// `cgroup.kill` (Linux 5.14), else one by one (a process forking meanwhile is
/// caught by the next call).
pub fn kill(dir: &Path) {
    let all_at_once = OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
        .and_then(|mut file| file.write_all(b"1"));
    if all_at_once.is_err() {
        for pid in members(dir) {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
    }
}

/// Removes cgroup `dir` and the cgroups below it, waiting up to `patience` for
/// killed processes to leave them. True once it is gone.
pub fn remove_when_empty(dir: &Path, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        if remove_tree(dir) {
            return true;
        }
        if Instant::now() >= deadline {
            tracing::debug!("cgroup {} is still in use", dir.display());
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes `dir` and its sub-cgroups, deepest first; true once `dir` is gone.
pub fn remove_tree(dir: &Path) -> bool {
    for child in subdirs(dir) {
        remove_tree(&child);
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The directory of this process's cgroup v2, from `/proc/self/cgroup` and the
/// cgroup2 mount in `/proc/self/mountinfo`.
fn own_cgroup_dir() -> Result<PathBuf, String> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
    let path = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process is in no cgroup v2 hierarchy")?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
    let (mount_root, mount_point) =
        cgroup2_mount(&mountinfo).ok_or("no cgroup2 file system is mounted")?;
    let relative = Path::new(path)
        .strip_prefix(&mount_root)
        .map_err(|_| format!("the cgroup {path} is outside the cgroup2 mount's root"))?;
    let dir = mount_point.join(relative);
    if !dir.join("cgroup.procs").exists() {
        return Err(format!("{} is not a cgroup", dir.display()));
    }
    Ok(dir)
}

/// The root and mount point of the first cgroup2 mount in `mountinfo`.
fn cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        // `id parent dev root mountpoint options [optional…] - fstype source superopts`
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mut fields = before.split_whitespace();
        let root = fields.nth(3)?;
        let point = fields.next()?;
        Some((unescape(root).into(), unescape(point).into()))
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let code = digits.iter().fold(0u32, |n, d| n * 8 + u32::from(d - b'0'));
                if let Ok(code) = u8::try_from(code) {
                    out.push(code);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_among_v1_mounts() {
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 /docker/abc /sys/fs/cgroup/unified\\040dir rw,relatime shared:9 - cgroup2 cgroup2 rw
";
        assert_eq!(
            cgroup2_mount(mountinfo),
            Some((
                PathBuf::from("/docker/abc"),
                PathBuf::from("/sys/fs/cgroup/unified dir")
            ))
        );
        assert_eq!(cgroup2_mount("31 23 0:28 / /x rw - tmpfs tmpfs rw\n"), None);
    }
}
