//! What an instance is given between fork and exec beyond its fds, process
//! group and cgroup: its user, groups and umask (`user`, `group`, `umask`), its
//! resource limits (`rlimits`) and its priority (`nice`).
//!
//! [`ExecSetup::prepare`] runs in the daemon before the fork: looking up users
//! and groups reads files and allocates (`getpwnam`, `getgrouplist`), which
//! the forked child of a multi-threaded process must not do. The child then only
//! makes the system calls, on memory prepared here ([`ExecSetup::apply`]).

use nix::sys::resource::Resource;
use nix::unistd::{Gid, Group, Uid, User};

use crate::daemon::spec::ProgramSpec;

/// Who an instance runs as, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// Its user id.
    pub uid: libc::uid_t,
    /// Its primary group id.
    pub gid: libc::gid_t,
    /// Its supplementary groups (the primary group among them).
    pub groups: Vec<libc::gid_t>,
    /// The user's name and home folder, when the user has a passwd entry: the
    /// instance gets them as `USER`, `LOGNAME` and `HOME`.
    pub account: Option<(String, std::path::PathBuf)>,
}

/// Everything [`ExecSetup::apply`] does in the child, prepared in the daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSetup {
    /// Switch to this user and these groups (`None`: stay the daemon's).
    pub ids: Option<Ids>,
    /// Set this umask.
    pub umask: Option<libc::mode_t>,
    /// Set these limits, soft and hard.
    pub rlimits: Vec<(Resource, u64)>,
    /// Set this priority.
    pub nice: Option<i32>,
}

/// Why an instance's setup cannot be prepared: names the field.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct SetupError {
    /// `user` or `group`.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl ExecSetup {
    /// Resolves `spec`'s `user` and `group` and collects the rest. A daemon that
    /// is not root may only name its own user and group: it could not switch.
    pub fn prepare(spec: &ProgramSpec) -> Result<ExecSetup, SetupError> {
        let ids = resolve_ids(spec.user.as_deref(), spec.group.as_deref())?;
        Ok(ExecSetup {
            ids,
            umask: spec.umask.map(|mask| mask as libc::mode_t),
            rlimits: spec
                .rlimits
                .iter()
                .map(|limit| (limit.resource, limit.value))
                .collect(),
            nice: spec.nice,
        })
    }

    /// Applies the setup to the calling process; the errno of the first call
    /// that failed.
    ///
    /// Limits and priority come first, while the process may still raise them
    /// (as root); the user last, since it gives up that right.
    ///
    /// # Safety
    /// Called in a forked child before its exec: it only makes async-signal-safe
    /// system calls on memory prepared before the fork. Changing user clears the
    /// parent-death signal: the caller sets that afterwards.
    pub unsafe fn apply(&self) -> Result<(), i32> {
        let errno = || *libc::__errno_location();
        for &(resource, value) in &self.rlimits {
            if nix::sys::resource::setrlimit(resource, value, value).is_err() {
                return Err(errno());
            }
        }
        if let Some(nice) = self.nice {
            // setpriority returns -1 on error only; a valid nice value is never
            // -1 as a return value of this call.
            if libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0 {
                return Err(errno());
            }
        }
        if let Some(mask) = self.umask {
            libc::umask(mask);
        }
        if let Some(ids) = &self.ids {
            // The system calls themselves, not glibc's wrappers: the child may
            // come from a raw clone3 (see `spawn::fork_into`), and the wrappers
            // would then take a lock and signal the daemon's threads to change
            // their credentials too, as POSIX asks of a multi-threaded process.
            // This process has one thread, which is all the kernel changes.
            // Groups before the user: once the uid is dropped, they cannot change.
            if libc::geteuid() == 0
                && libc::syscall(libc::SYS_setgroups, ids.groups.len(), ids.groups.as_ptr()) != 0
            {
                return Err(errno());
            }
            if libc::syscall(libc::SYS_setgid, ids.gid) != 0
                || libc::syscall(libc::SYS_setuid, ids.uid) != 0
            {
                return Err(errno());
            }
        }
        Ok(())
    }
}

/// Resolves `user` and `group` (names or numeric ids) for the daemon's user.
fn resolve_ids(user: Option<&str>, group: Option<&str>) -> Result<Option<Ids>, SetupError> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let lookup_failed = |field: &'static str, value: &str, e: nix::Error| SetupError {
        field,
        reason: format!("cannot look up {value:?}: {e}"),
    };
    let account = match user {
        None => None,
        Some(text) => {
            let found = match text.parse::<u32>() {
                Ok(uid) => User::from_uid(Uid::from_raw(uid)),
                Err(_) => User::from_name(text),
            }
            .map_err(|e| lookup_failed("user", text, e))?;
            match (found, text.parse::<u32>()) {
                (Some(found), _) => Some(Account::Known(found)),
                (None, Ok(uid)) => Some(Account::Bare(uid)),
                (None, Err(_)) => {
                    return Err(SetupError {
                        field: "user",
                        reason: format!("no user named {text:?}"),
                    })
                }
            }
        }
    };
    let group_id = match group {
        None => None,
        Some(text) => Some(match text.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => Group::from_name(text)
                .map_err(|e| lookup_failed("group", text, e))?
                .ok_or_else(|| SetupError {
                    field: "group",
                    reason: format!("no group named {text:?}"),
                })?
                .gid
                .as_raw(),
        }),
    };
    let me = Uid::effective();
    let (uid, primary, name_home) = match &account {
        Some(Account::Known(user)) => (
            user.uid.as_raw(),
            user.gid.as_raw(),
            Some((user.name.clone(), user.dir.clone())),
        ),
        // A uid without a passwd entry: its group is the one given, else the
        // number itself (as useradd would have made it).
        Some(Account::Bare(uid)) => (*uid, *uid, None),
        None => (me.as_raw(), Gid::effective().as_raw(), None),
    };
    let gid = group_id.unwrap_or(primary);
    if !me.is_root() {
        if uid != me.as_raw() {
            return Err(SetupError {
                field: "user",
                reason: format!(
                    "infantd runs as uid {me}, not as root: it cannot start a program as \
                     {} (uid {uid}); run infantd as root, or drop `user`",
                    user.unwrap_or_default()
                ),
            });
        }
        if gid != Gid::effective().as_raw() {
            return Err(SetupError {
                field: "group",
                reason: format!(
                    "infantd runs as uid {me}, not as root: it cannot switch to gid {gid}; \
                     run infantd as root, or drop `group`"
                ),
            });
        }
        // Nothing to switch: the instance runs as the daemon does.
        return Ok(None);
    }
    let groups = match (&account, group_id) {
        // A named user brings its supplementary groups (the primary group
        // among them, whichever it is).
        (Some(Account::Known(user)), _) => {
            let name = std::ffi::CString::new(user.name.as_bytes()).map_err(|_| SetupError {
                field: "user",
                reason: "the user name holds a NUL byte".into(),
            })?;
            let mut groups: Vec<libc::gid_t> = nix::unistd::getgrouplist(&name, Gid::from_raw(gid))
                .map_err(|e| lookup_failed("user", &user.name, e))?
                .into_iter()
                .map(Gid::as_raw)
                .collect();
            if !groups.contains(&gid) {
                groups.push(gid);
            }
            groups
        }
        _ => vec![gid],
    };
    Ok(Some(Ids {
        uid,
        gid,
        groups,
        account: name_home,
    }))
}

/// A `user` as found.
enum Account {
    /// With a passwd entry.
    Known(User),
    /// A bare uid.
    Bare(u32),
}
