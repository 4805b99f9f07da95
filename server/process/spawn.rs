//! Starting an instance: fork, set up the child, exec.
//!
//! Written by hand rather than with `std::process::Command` because the child needs
//! three things `Command` cannot give it:
//! - `LISTEN_PID` equal to the child's own pid (systemd socket activation), which is
//!   unknown before the fork while `Command` builds the environment before it. We
//!   pre-allocate that variable's bytes and fill in the digits in the child;
//! - the `listen` sockets moved to fds 3, 4, … and every other fd closed;
//! - its own process group and a parent-death signal, checked against the race
//!   where the daemon dies between fork and `prctl`.
//!
//! Between `fork` and `execve` the child only makes async-signal-safe system calls
//! and writes into memory allocated before the fork: the daemon is multi-threaded
//! (tokio's blocking pool) and another thread may hold the allocator's lock.
//!
//! Exec failures come back through a close-on-exec pipe, as `std` does it: the pipe
//! closes empty when `execve` succeeds, or carries the child's `errno`. Unlike
//! `std`, [`spawn`] does not wait for that: it returns the pipe's read end with the
//! pid, and the caller learns the outcome asynchronously ([`exec_outcome`]). The
//! daemon spawns hundreds of workers in a burst, and waiting for each exec in turn
//! would serialise them all behind the scheduler.
//!
//! A child with a cgroup of its own is created in it (`clone3` with
//! `CLONE_INTO_CGROUP`, see [`fork_into`]) rather than forked and moved: the
//! move costs every spawn of a burst milliseconds.
//!
//! Signals are blocked around the fork. The child puts every caught signal back to
//! its default action before unblocking, so a signal sent to it before its exec
//! (a stop right after a start) acts on it as on the program, instead of running a
//! copy of the daemon's handler and being lost.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::unistd::Pid;

/// What to start.
pub struct SpawnRequest<'a> {
    /// argv; `argv[0]` is resolved against `cwd` if relative, or looked up in PATH.
    pub argv: &'a [String],
    /// Working directory (the daemon's if `None`).
    pub cwd: Option<&'a Path>,
    /// The complete environment of the child.
    pub env: Vec<(OsString, OsString)>,
    /// Sockets to hand over as fds 3, 4, …; sets `LISTEN_FDS`/`LISTEN_PID`.
    pub listen_fds: &'a [RawFd],
    /// `LISTEN_FDNAMES` entries, one per socket.
    pub listen_names: &'a [String],
    /// The `cgroup.procs` of the cgroup the child joins before its exec, if any:
    /// everything it starts is then in that cgroup (see [`super::cgroup`]).
    pub cgroup_procs: Option<RawFd>,
    /// User, groups, umask, limits and priority, applied in the child (see
    /// [`super::setup`]).
    pub setup: &'a super::setup::ExecSetup,
    /// Becomes the child's stdout (fd 1); `None` leaves the daemon's.
    pub stdout: Option<RawFd>,
    /// Becomes the child's stderr (fd 2); `None` leaves the daemon's.
    pub stderr: Option<RawFd>,
    /// That cgroup's directory: where the kernel can, the child is created in
    /// it and does not need to move (see [`fork_into`]).
    pub cgroup_dir: Option<RawFd>,
}

/// Why an instance could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The executable does not exist or is not executable.
    #[error("{command}: {reason}")]
    Executable {
        /// What was looked for.
        command: String,
        /// Why it cannot run.
        reason: String,
    },
    /// A system call failed (fork, pipe, or the child's setup or exec).
    #[error("{0}")]
    Os(String),
}

/// A forked child on its way to `execve`.
pub struct Spawned {
    /// The child's pid, which is also its process group.
    pub pid: Pid,
    /// The read end of the exec-status pipe: see [`exec_outcome`].
    pub exec_status: OwnedFd,
}

/// Forks and starts the exec of `req`; returns without waiting for the exec.
///
/// The parent-death signal is SIGKILL: an instance must not outlive the daemon.
/// (The worker SDK replaces it with SIGHUP once attached so a lost daemon triggers
/// the graceful stop path; see `infant::worker`.)
pub fn spawn(req: &SpawnRequest<'_>) -> Result<Spawned, SpawnError> {
    let path = resolve_executable(req)?;
    let exe = cstring(path.as_os_str())?;
    let argv: Vec<CString> = req
        .argv
        .iter()
        .map(|a| cstring(OsStr::new(a)))
        .collect::<Result<_, _>>()?;

    let mut env: Vec<CString> = Vec::with_capacity(req.env.len() + 3);
    for (key, value) in &req.env {
        if matches!(
            key.as_bytes(),
            b"LISTEN_FDS" | b"LISTEN_PID" | b"LISTEN_FDNAMES"
        ) {
            continue; // never inherit the daemon's own activation variables
        }
        let mut entry = key.as_bytes().to_vec();
        entry.push(b'=');
        entry.extend_from_slice(value.as_bytes());
        env.push(cstring(OsStr::from_bytes(&entry))?);
    }
    // The LISTEN_PID slot: "LISTEN_PID=" followed by room for any pid; the child
    // writes its digits and a NUL over the zeros.
    let mut pid_slot: Option<Vec<u8>> = None;
    if !req.listen_fds.is_empty() {
        env.push(cstring(OsStr::new(&format!(
            "LISTEN_FDS={}",
            req.listen_fds.len()
        )))?);
        env.push(cstring(OsStr::new(&format!(
            "LISTEN_FDNAMES={}",
            req.listen_names.join(":")
        )))?);
        let mut slot = b"LISTEN_PID=".to_vec();
        slot.extend_from_slice(&[b'0'; 21]);
        slot.push(0);
        pid_slot = Some(slot);
    }

    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    let slot_ptr: *mut u8 = match pid_slot.as_mut() {
        Some(slot) => {
            env_ptrs.push(slot.as_ptr() as *const libc::c_char);
            slot.as_mut_ptr()
        }
        None => std::ptr::null_mut(),
    };
    env_ptrs.push(std::ptr::null());
    let cwd = req.cwd.map(|c| cstring(c.as_os_str())).transpose()?;
    let fds: Vec<RawFd> = req.listen_fds.to_vec();
    let cgroup_procs = req.cgroup_procs.unwrap_or(-1);
    let output = [req.stdout.unwrap_or(-1), req.stderr.unwrap_or(-1)];

    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SpawnError::Os(format!("pipe: {e}")))?;
    let parent = nix::unistd::getpid();

    // Every signal blocked across the fork (see the module docs); the parent's
    // mask comes back right after, the child sets its own before the exec.
    // SAFETY: an all-zero sigset_t is a valid (empty) set; these are plain
    // signal-mask calls on local sets.
    let mut saved: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut saved);
    }
    // SAFETY: the child branch below only performs async-signal-safe system calls
    // on memory prepared before the fork, then execs or `_exit`s.
    let forked = unsafe { fork_into(req.cgroup_dir) };
    if !matches!(forked, Ok(Forked::Child { .. })) {
        if let Ok(Forked::Parent { child }) = forked {
            // The child does this too; doing it here as well means the group
            // exists when `spawn` returns, so a stop sent at once reaches it. (It
            // fails harmlessly if the child got there first or already exec'd.)
            let _ = nix::unistd::setpgid(child, child);
        }
        // SAFETY: restores the mask saved above.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut());
        }
    }
    match forked {
        Err(e) => Err(SpawnError::Os(format!("fork: {e}"))),
        Ok(Forked::Child { in_cgroup }) => {
            // Created in its cgroup: nothing to move.
            let cgroup_procs = if in_cgroup { -1 } else { cgroup_procs };
            // SAFETY: see above; never returns.
            unsafe {
                let errno = child_setup_and_exec(
                    parent.as_raw(),
                    &exe,
                    &argv_ptrs,
                    &env_ptrs,
                    slot_ptr,
                    cwd.as_ref(),
                    &fds,
                    cgroup_procs,
                    req.setup,
                    output,
                    write_end.as_raw_fd(),
                );
                let bytes = errno.to_ne_bytes();
                libc::write(write_end.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
                libc::_exit(127);
            }
        }
        Ok(Forked::Parent { child }) => {
            // Only the child may hold the write end: the pipe then reaches end of
            // file exactly when the child execs or exits.
            drop(write_end);
            Ok(Spawned {
                pid: child,
                exec_status: read_end,
            })
        }
    }
}

/// Which side of [`fork_into`] this is.
enum Forked {
    /// The daemon, with the child's pid.
    Parent { child: Pid },
    /// The child; `in_cgroup` if it was created in the cgroup it was asked for.
    Child { in_cgroup: bool },
}

/// Whether `clone3` with `CLONE_INTO_CGROUP` is worth trying: cleared for good
/// once the kernel says it does not know it.
static CLONE_INTO_CGROUP_WORKS: AtomicBool = AtomicBool::new(true);

/// `CLONE_INTO_CGROUP` (Linux 5.7): create the child in the cgroup whose
/// directory fd is `clone_args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` as of Linux 5.7 (`CLONE_ARGS_SIZE_VER2`, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Forks; with `cgroup_dir`, straight into that cgroup where the kernel can.
///
/// Why: a process moving itself into a cgroup (writing `cgroup.procs`) makes the
/// kernel take its global cgroup threadgroup lock for writing, which can wait out
/// an RCU grace period (milliseconds, where the whole `clone3` takes about 0.1 ms)
/// while forks, the daemon's next spawn included, wait for the lock: a burst of
/// spawns queues behind those moves one by one. `clone3` with `CLONE_INTO_CGROUP`
/// creates the child in its cgroup at no such cost. On kernels without it (before
/// 5.7, or where a seccomp filter refuses `clone3`) this is a plain `fork`, and the
/// child moves itself as before.
///
/// Unlike glibc's `fork`, the raw `clone3` system call runs no `atfork`
/// handlers and leaves glibc's thread bookkeeping as the parent's: the child
/// must stick to plain system calls (as it does) and not call glibc functions
/// that take its internal locks or signal its other threads (for instance
/// glibc's `setuid`/`setgid`/`setgroups`, which synchronise every thread:
/// use `libc::syscall` for those).
///
/// # Safety
/// As for `fork`: in the child, only async-signal-safe system calls until the
/// exec or `_exit`.
unsafe fn fork_into(cgroup_dir: Option<RawFd>) -> nix::Result<Forked> {
    if let Some(dir) = cgroup_dir {
        if CLONE_INTO_CGROUP_WORKS.load(Ordering::Relaxed) {
            let mut args = CloneArgs {
                flags: CLONE_INTO_CGROUP,
                exit_signal: libc::SIGCHLD as u64,
                cgroup: dir as u64,
                ..CloneArgs::default()
            };
            let ret = libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            );
            match ret {
                0 => return Ok(Forked::Child { in_cgroup: true }),
                pid if pid > 0 => {
                    return Ok(Forked::Parent {
                        child: Pid::from_raw(pid as libc::pid_t),
                    })
                }
                _ => {
                    let error = nix::errno::Errno::last();
                    // No clone3, or no CLONE_INTO_CGROUP, or not allowed: the
                    // same answer every time. Anything else (this cgroup is
                    // gone, resources short) is for this spawn only; the fork
                    // below reports resource shortage itself.
                    if matches!(
                        error,
                        nix::errno::Errno::ENOSYS
                            | nix::errno::Errno::E2BIG
                            | nix::errno::Errno::EINVAL
                            | nix::errno::Errno::EPERM
                    ) {
                        CLONE_INTO_CGROUP_WORKS.store(false, Ordering::Relaxed);
                    }
                    tracing::debug!("clone3 into a cgroup: {error}; forking instead");
                }
            }
        }
    }
    match nix::unistd::fork()? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent { child }),
        nix::unistd::ForkResult::Child => Ok(Forked::Child { in_cgroup: false }),
    }
}

/// Waits for the exec of a [`Spawned`] child: `None` once it exec'd, or the reason
/// it could not (its `errno`, described), in which case it has exited with 127.
///
/// If the pipe itself cannot be watched or read (the system is out of resources),
/// the outcome is unknown; that is logged and reported as `None`: the process is
/// then treated like any other, and a failed exec shows as its exit code 127.
pub async fn exec_outcome(exec_status: OwnedFd) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut pipe = match tokio::net::unix::pipe::Receiver::from_owned_fd(exec_status) {
        Ok(pipe) => pipe,
        Err(e) => {
            tracing::warn!("cannot watch a child's exec: {e}");
            return None;
        }
    };
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        match pipe.read(&mut buf[got..]).await {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("cannot read a child's exec status: {e}");
                return None;
            }
        }
    }
    (got == buf.len()).then(|| {
        nix::errno::Errno::from_raw(i32::from_ne_bytes(buf))
            .desc()
            .to_string()
    })
}

/// Runs in the forked child. Returns the errno that stopped it; never returns on
/// success.
///
/// # Safety
/// Must only be called in the child right after `fork`.
#[allow(clippy::too_many_arguments)]
unsafe fn child_setup_and_exec(
    parent: libc::pid_t,
    exe: &CString,
    argv: &[*const libc::c_char],
    env: &[*const libc::c_char],
    pid_slot: *mut u8,
    cwd: Option<&CString>,
    fds: &[RawFd],
    cgroup_procs: RawFd,
    setup: &super::setup::ExecSetup,
    output: [RawFd; 2],
    status_fd: RawFd,
) -> i32 {
    let errno = || *libc::__errno_location();

    // Own process group: stopping the instance signals everything it started.
    if libc::setpgid(0, 0) != 0 {
        return errno();
    }
    // Into the instance's cgroup before anything can fork. Best effort: the
    // daemon checked it may move processes there; if this fails anyway, the
    // instance runs uncontained, as it would on a machine without cgroups.
    if cgroup_procs >= 0 {
        libc::write(cgroup_procs, b"0".as_ptr().cast(), 1);
    }
    // After the cgroup (joining it may need the daemon's rights), before the
    // parent-death signal (changing user clears it).
    if let Err(errno) = setup.apply() {
        return errno;
    }
    // The instance dies with the daemon; if the daemon already died (we were
    // reparented before prctl took effect), stop here.
    if libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    ) != 0
    {
        return errno();
    }
    if libc::getppid() != parent {
        libc::_exit(1);
    }
    // Signal state is inherited across exec: undo what the Rust runtime and tokio
    // set (SIGPIPE ignored, handlers installed), then unblock everything (`spawn`
    // blocked all signals around the fork). A caught signal must be back to its
    // default before the unblock: a signal pending since the fork then acts as it
    // would on the program.
    for signal in 1..=libc::SIGRTMAX() {
        let mut action: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, std::ptr::null(), &mut action) == 0
            && action.sa_sigaction != libc::SIG_DFL
            && (action.sa_sigaction != libc::SIG_IGN || signal == libc::SIGPIPE)
        {
            libc::signal(signal, libc::SIG_DFL);
        }
    }
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());

    if let Some(dir) = cwd {
        if libc::chdir(dir.as_ptr()) != 0 {
            return errno();
        }
    }

    // Hand the listen sockets over as 3, 4, …: first lift each above the target
    // range so no dup2 overwrites a source still to be moved, then move them down.
    // dup2 clears close-on-exec on the target, so only these survive the exec.
    let first_free = 3 + fds.len() as RawFd;
    let min_temp = first_free.max(status_fd + 1);
    // stdout and stderr are lifted the same way: their pipes may sit at 3, 4, …
    let mut output_temps = [-1 as RawFd; 2];
    for (temp, &fd) in output_temps.iter_mut().zip(&output) {
        if fd >= 0 {
            *temp = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min_temp);
            if *temp < 0 {
                return errno();
            }
        }
    }
    let mut temps = [0 as RawFd; 64];
    for (i, &fd) in fds.iter().enumerate().take(temps.len()) {
        let t = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min_temp);
        if t < 0 {
            return errno();
        }
        temps[i] = t;
    }
    for (i, &temp) in temps.iter().enumerate().take(fds.len()) {
        if libc::dup2(temp, 3 + i as RawFd) < 0 {
            return errno();
        }
    }
    // Only once every source is lifted: a daemon started with its stdout
    // closed may hold a socket at 1 or 2.
    for (target, &temp) in (1..).zip(&output_temps) {
        if temp >= 0 && libc::dup2(temp, target) < 0 {
            return errno();
        }
    }
    // Belt and braces: close everything above the handed-over sockets except the
    // exec-status pipe (close-on-exec), in case a library opened an fd without
    // O_CLOEXEC. close_range needs Linux 5.9; older kernels fall back to CLOEXEC.
    if status_fd >= first_free {
        if status_fd > first_free {
            libc::syscall(libc::SYS_close_range, first_free, status_fd - 1, 0);
        }
        libc::syscall(libc::SYS_close_range, status_fd + 1, u32::MAX, 0);
    } else {
        libc::syscall(libc::SYS_close_range, first_free, u32::MAX, 0);
    }

    if !pid_slot.is_null() {
        write_pid(pid_slot.add(b"LISTEN_PID=".len()), libc::getpid());
    }

    libc::execve(exe.as_ptr(), argv.as_ptr(), env.as_ptr());
    errno()
}

/// Writes `pid` in decimal followed by a NUL at `out` (room for 21 bytes + NUL).
///
/// # Safety
/// `out` must point at 22 writable bytes.
unsafe fn write_pid(out: *mut u8, pid: libc::pid_t) {
    let mut digits = [0u8; 20];
    let mut n = pid.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        *out.add(i) = digits[len - 1 - i];
    }
    *out.add(len) = 0;
}

/// Finds the executable the way a shell would, but in the daemon, so a missing
/// program is a clear error before anything is forked.
fn resolve_executable(req: &SpawnRequest<'_>) -> Result<PathBuf, SpawnError> {
    let command = &req.argv[0];
    let not_runnable = |reason: &str| SpawnError::Executable {
        command: command.clone(),
        reason: reason.to_string(),
    };
    let candidate = Path::new(command);
    if command.contains('/') {
        let path = match (candidate.is_relative(), req.cwd) {
            (true, Some(cwd)) => cwd.join(candidate),
            _ => candidate.to_path_buf(),
        };
        return check_executable(&path)
            .map(|()| path)
            .map_err(|r| not_runnable(&r));
    }
    let search = req
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    for dir in std::env::split_paths(&search) {
        let dir = match (dir.is_relative(), req.cwd) {
            (true, Some(cwd)) => cwd.join(dir),
            _ => dir,
        };
        let path = dir.join(candidate);
        if check_executable(&path).is_ok() {
            return Ok(path);
        }
    }
    Err(not_runnable("not found in PATH"))
}

fn check_executable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => e.to_string(),
    })?;
    if meta.is_dir() {
        return Err("is a directory".into());
    }
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK)
        .map_err(|_| "is not executable".to_string())
}

fn cstring(text: &OsStr) -> Result<CString, SpawnError> {
    CString::new(text.as_bytes())
        .map_err(|_| SpawnError::Os(format!("{:?} contains a NUL byte", text)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::process::cgroup::Tree;

    /// A daemon cgroup (kept alive with the instance's) and an instance cgroup
    /// in it; `None` (saying so) where the machine has no writable cgroup v2.
    fn instance_cgroup() -> Option<(Tree, super::super::cgroup::InstanceCgroup)> {
        let Some(tree) = Tree::create() else {
            eprintln!("skipped: no writable cgroup v2 hierarchy here");
            return None;
        };
        let cgroup = tree.instance(1).expect("instance cgroup");
        Some((tree, cgroup))
    }

    /// Spawns `sleep 30` into `cgroup`, created in it when `dir` is given.
    fn sleep_in(cgroup: &super::super::cgroup::InstanceCgroup, dir: Option<RawFd>) -> Spawned {
        let argv = ["sleep".to_string(), "30".to_string()];
        let request = SpawnRequest {
            argv: &argv,
            cwd: None,
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            listen_fds: &[],
            listen_names: &[],
            cgroup_procs: Some(cgroup.procs.as_raw_fd()),
            cgroup_dir: dir,
            setup: &Default::default(),
            stdout: None,
            stderr: None,
        };
        spawn(&request).expect("spawn sleep")
    }

    /// Without the cgroup's directory (as where the kernel refuses `clone3`),
    /// the forked child moves itself in before its exec.
    #[test]
    fn a_forked_child_moves_itself_into_its_cgroup() {
        let Some((_tree, cgroup)) = instance_cgroup() else {
            return;
        };
        let spawned = sleep_in(&cgroup, None);
        let pid = spawned.pid.as_raw().to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let moved = loop {
            let members =
                std::fs::read_to_string(cgroup.dir.join("cgroup.procs")).unwrap_or_default();
            if members.lines().any(|l| l.trim() == pid) {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let _ = nix::sys::signal::kill(spawned.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(spawned.pid, None);
        assert!(moved, "pid {pid} never reached {}", cgroup.dir.display());
    }

    /// Created in its cgroup, the child is there the moment `spawn` returns;
    /// a forked child that moves itself gets there some time later.
    #[test]
    fn a_child_is_in_its_cgroup_when_spawn_returns() {
        let Some((_tree, cgroup)) = instance_cgroup() else {
            return;
        };
        let spawned = sleep_in(&cgroup, Some(cgroup.dir_fd.as_raw_fd()));
        let members = std::fs::read_to_string(cgroup.dir.join("cgroup.procs"));
        let _ = nix::sys::signal::kill(spawned.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(spawned.pid, None);
        if !CLONE_INTO_CGROUP_WORKS.load(Ordering::Relaxed) {
            eprintln!("skipped: this kernel cannot clone3 into a cgroup");
            return;
        }
        let members = members.expect("read cgroup.procs");
        assert!(
            members
                .lines()
                .any(|l| l.trim() == spawned.pid.as_raw().to_string()),
            "pid {} not in {}: {members:?}",
            spawned.pid,
            cgroup.dir.display()
        );
    }
}
