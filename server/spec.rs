//! Program definitions: the raw form users write, and the validated form the
//! engine runs.
//!
//! A [`ProgramDef`] comes from a `[program.NAME]` table of the config file or from a
//! `Start` request; every field is optional. [`ProgramDef::validate`] applies the
//! documented defaults (docs/configuration.md) and checks every field, so the engine only ever sees a
//! [`ProgramSpec`] it can run. Errors name the program and the field.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::{Error, Result};

/// The most workers one program may have: far past any real machine, low enough
/// that a typo (`count = 100000`) is refused instead of fork-bombing the host.
pub const MAX_COUNT: u32 = 1024;
/// The longest duration any field accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The shortest heartbeat interval: below it heartbeats are a busy loop.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// Most `listen` sockets one program may have.
pub const MAX_LISTEN: usize = 64;
/// Longest program name.
pub const MAX_NAME_LEN: usize = 64;

/// What sort of program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One supervised process.
    #[default]
    Child,
    /// `count` workers running the same command.
    Cluster,
    /// A job that runs to completion.
    Once,
}

impl Kind {
    /// The name used in config files, the CLI and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Child => "child",
            Kind::Cluster => "cluster",
            Kind::Once => "once",
        }
    }
}

/// When an instance counts as `ok` (the `ready` field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    /// An SDK worker that attaches within `start_grace` is `ok` when it reports
    /// `Ready`; any other instance is `ok` once it has lived through
    /// `start_grace`.
    #[default]
    Auto,
    /// `ok` as soon as its exec succeeded.
    Spawn,
    /// `ok` once it has lived through `start_grace`, SDK or not.
    Grace,
    /// `ok` only when the SDK reports `Ready` (its start hook ran), however long
    /// that takes within `start_timeout`; never taken for a plain program.
    Sdk,
    /// `ok` when it sends `READY=1` on the private `NOTIFY_SOCKET` the daemon
    /// gives it (systemd's notify protocol): `STATUS=` text shows in the
    /// worker listing, `WATCHDOG=1` counts as a heartbeat (hung after 8 silent
    /// heartbeat intervals, once it has sent one), `STOPPING=1` is noted, and
    /// `MAINPID=` is refused (the daemon supervises the process it started).
    Notify,
}

impl Ready {
    /// The name used in config files and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Ready::Auto => "auto",
            Ready::Spawn => "spawn",
            Ready::Grace => "grace",
            Ready::Sdk => "sdk",
            Ready::Notify => "notify",
        }
    }

    /// Parses a name as [`Ready::as_str`] spells it.
    pub fn parse(name: &str) -> Option<Ready> {
        [
            Ready::Auto,
            Ready::Spawn,
            Ready::Grace,
            Ready::Sdk,
            Ready::Notify,
        ]
        .into_iter()
        .find(|ready| ready.as_str() == name)
    }
}

/// Where an instance's stdout and stderr go (the `log` field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogMode {
    /// Captured by the daemon: `NAME.out.log` and `NAME.err.log` in its log
    /// folder, rotated by size, and readable with `infantctl logs`.
    #[default]
    File,
    /// Straight to the daemon's own stdout and stderr, uncaptured (containers,
    /// journald).
    Inherit,
    /// Dropped (`/dev/null`).
    Off,
}

impl LogMode {
    /// The name used in config files and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            LogMode::File => "file",
            LogMode::Inherit => "inherit",
            LogMode::Off => "off",
        }
    }

    /// Parses a name as [`LogMode::as_str`] spells it.
    pub fn parse(name: &str) -> Option<LogMode> {
        [LogMode::File, LogMode::Inherit, LogMode::Off]
            .into_iter()
            .find(|mode| mode.as_str() == name)
    }
}

/// The default `log_max_size`: 10 MiB.
pub const DEFAULT_LOG_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// The default `log_keep`.
pub const DEFAULT_LOG_KEEP: u32 = 5;
/// The most rotated files a program may keep.
pub const MAX_LOG_KEEP: u32 = 1000;

/// A program definition as written: every field optional, nothing checked yet.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramDef {
    /// `child`, `cluster` or `once`.
    pub kind: Option<Kind>,
    /// The argv to run.
    pub command: Option<Vec<String>>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Variables added to the inherited environment.
    pub env: Option<BTreeMap<String, String>>,
    /// Process title.
    pub title: Option<String>,
    /// Cluster workers.
    pub count: Option<u32>,
    /// Cluster: counting and recycling.
    pub enhanced: Option<bool>,
    /// Sockets bound by the daemon and handed to every instance.
    pub listen: Option<Vec<String>>,
    /// The older name of `restart`: `true` is `always`, `false` is `never`.
    pub respawn: Option<bool>,
    /// Longest hold-down between respawns (default 15s). A first crash, and the
    /// first after 5 s of `ok`, respawns at once; crashes in a row wait 100 ms,
    /// 200 ms, 400 ms … up to this, and never less than 10 ms, even when this is
    /// `"0s"`: a program that dies at once is respawned at most 100 times a
    /// second.
    #[serde(default, deserialize_with = "humane::option")]
    pub respawn_delay: Option<Duration>,
    /// Graceful stop window.
    #[serde(default, deserialize_with = "humane::option")]
    pub stop_timeout: Option<Duration>,
    /// Graceful window for a recycled worker.
    #[serde(default, deserialize_with = "humane::option")]
    pub recycle_timeout: Option<Duration>,
    /// Enhanced: recycle after this many connections/requests.
    pub max_connections: Option<u64>,
    /// Enhanced: recycle past this RSS growth, in percent.
    pub max_memory_gain: Option<u32>,
    /// Heartbeat interval.
    #[serde(default, deserialize_with = "humane::option")]
    pub heartbeat: Option<Duration>,
    /// `once`: kill the run after this long.
    #[serde(default, deserialize_with = "humane::option")]
    pub timeout: Option<Duration>,
    /// Programs that must be up first.
    pub after: Option<Vec<String>>,
    /// How long a plain program must live before it is `ok`.
    #[serde(default, deserialize_with = "humane::option")]
    pub start_grace: Option<Duration>,
    /// `once` with `respawn`: failed runs retried at most this often.
    pub max_retries: Option<u32>,
    /// Give up (status `fatal`) after this many respawns within `restart_window`.
    pub max_restarts: Option<u32>,
    /// Enhanced: workers recycled at the same time.
    pub max_recycling: Option<u32>,
    /// The window `max_restarts` counts in.
    #[serde(default, deserialize_with = "humane::option")]
    pub restart_window: Option<Duration>,
    /// When an instance counts as `ok`: see [`Ready`].
    pub ready: Option<Ready>,
    /// Run as this user (a name or a uid); with it, its primary group and its
    /// supplementary groups unless `group` says otherwise.
    pub user: Option<String>,
    /// Run with this primary group (a name or a gid).
    pub group: Option<String>,
    /// The file mode creation mask, in octal (`"022"`).
    pub umask: Option<String>,
    /// The signal of a plain program's graceful stop (default `TERM`).
    pub stop_signal: Option<String>,
    /// When an instance that exits on its own is started again: see [`Restart`].
    pub restart: Option<Restart>,
    /// Exit codes that count as success (default `[0]`), for `restart =
    /// "on-failure"` and for `once` jobs.
    pub success_exit_codes: Option<Vec<i32>>,
    /// A file of `KEY=VALUE` lines read at each instance's start; `env` wins.
    pub env_file: Option<PathBuf>,
    /// Resource limits set on each instance: name → number or `"unlimited"`.
    pub rlimits: Option<BTreeMap<String, LimitValue>>,
    /// Scheduling priority of each instance, -20 (first) to 19 (last).
    pub nice: Option<i32>,
    /// An instance whose resident memory passes this is restarted gracefully.
    #[serde(default, deserialize_with = "crate::daemon::size::option")]
    pub max_memory: Option<u64>,
    /// An instance not `ok` within this is killed: a failed start (`"0s"`: no
    /// limit).
    #[serde(default, deserialize_with = "humane::option")]
    pub start_timeout: Option<Duration>,
    /// Where its output goes: see [`LogMode`].
    pub log: Option<LogMode>,
    /// Rotate a log file when it would grow past this size (`"10MiB"`).
    #[serde(default, deserialize_with = "crate::daemon::size::option")]
    pub log_max_size: Option<u64>,
    /// Rotated log files kept (`NAME.out.log.1` …); the oldest is dropped.
    pub log_keep: Option<u32>,
}

/// When an instance that exited on its own is started again (the `restart`
/// field; `respawn = true` is `always`, `false` is `never`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Whatever its exit.
    #[default]
    Always,
    /// Unless it exited with one of `success_exit_codes`.
    OnFailure,
    /// Never.
    Never,
}

impl Restart {
    /// The name used in config files and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Always => "always",
            Restart::OnFailure => "on-failure",
            Restart::Never => "never",
        }
    }

    /// Parses a name as [`Restart::as_str`] spells it.
    pub fn parse(name: &str) -> Option<Restart> {
        [Restart::Always, Restart::OnFailure, Restart::Never]
            .into_iter()
            .find(|restart| restart.as_str() == name)
    }
}

/// A resource limit's value as written: a number, or text (`"unlimited"`, a
/// size such as `"64MiB"`, or digits).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum LimitValue {
    /// A number.
    Number(u64),
    /// Text.
    Text(String),
}

/// One resource limit, checked: soft and hard limits are both set to `value`
/// (`RLIM_INFINITY` for unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    /// The name as written in `rlimits`.
    pub name: &'static str,
    /// The resource.
    pub resource: nix::sys::resource::Resource,
    /// The limit.
    pub value: u64,
}

/// What `rlimits` may name, and the resource each is.
pub const RLIMIT_NAMES: &[(&str, nix::sys::resource::Resource)] = {
    use nix::sys::resource::Resource as R;
    &[
        ("as", R::RLIMIT_AS),
        ("core", R::RLIMIT_CORE),
        ("cpu", R::RLIMIT_CPU),
        ("data", R::RLIMIT_DATA),
        ("fsize", R::RLIMIT_FSIZE),
        ("locks", R::RLIMIT_LOCKS),
        ("memlock", R::RLIMIT_MEMLOCK),
        ("msgqueue", R::RLIMIT_MSGQUEUE),
        ("nice", R::RLIMIT_NICE),
        ("nofile", R::RLIMIT_NOFILE),
        ("nproc", R::RLIMIT_NPROC),
        ("rss", R::RLIMIT_RSS),
        ("rtprio", R::RLIMIT_RTPRIO),
        ("rttime", R::RLIMIT_RTTIME),
        ("sigpending", R::RLIMIT_SIGPENDING),
        ("stack", R::RLIMIT_STACK),
    ]
};

/// A validated program definition with every default applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramSpec {
    /// The program's name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// The argv; never empty.
    pub command: Vec<String>,
    /// Working directory, if not the daemon's.
    pub cwd: Option<PathBuf>,
    /// Variables added to the inherited environment.
    pub env: BTreeMap<String, String>,
    /// Process title.
    pub title: String,
    /// Instances to run.
    pub count: u32,
    /// Counting and recycling (clusters only).
    pub enhanced: bool,
    /// Sockets to bind and hand over.
    pub listen: Vec<ListenAddr>,
    /// Respawn unexpected exits.
    pub respawn: bool,
    /// Longest hold-down between respawns; crashes in a row still wait at
    /// least 10 ms (see [`ProgramDef::respawn_delay`]).
    pub respawn_delay: Duration,
    /// Graceful stop window.
    pub stop_timeout: Duration,
    /// Graceful window for a recycled worker.
    pub recycle_timeout: Duration,
    /// Recycle after this many connections/requests (enhanced).
    pub max_connections: u64,
    /// Recycle past this RSS growth in percent (enhanced).
    pub max_memory_gain: u32,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// `once`: run time limit.
    pub timeout: Option<Duration>,
    /// Programs that must be up first.
    pub after: Vec<String>,
    /// How long a plain program must live before it is `ok`.
    pub start_grace: Duration,
    /// `once`: retries of a failed run (`None`: no limit while `respawn`).
    pub max_retries: Option<u32>,
    /// Respawns allowed within `restart_window` before the program is given up
    /// (`fatal`); `None`: respawn forever.
    pub max_restarts: Option<u32>,
    /// The window `max_restarts` counts in.
    pub restart_window: Duration,
    /// Enhanced: workers recycled at the same time (default 1).
    pub max_recycling: u32,
    /// When an instance counts as `ok`.
    pub ready: Ready,
    /// Where its output goes.
    pub log: LogMode,
    /// Size at which a log file is rotated, in bytes.
    pub log_max_size: u64,
    /// Rotated log files kept.
    pub log_keep: u32,
    /// Run as this user (name or uid), if not the daemon's.
    pub user: Option<String>,
    /// Run with this primary group (name or gid), if not the user's.
    pub group: Option<String>,
    /// File mode creation mask, if not the daemon's.
    pub umask: Option<u32>,
    /// The signal of a plain program's graceful stop.
    pub stop_signal: nix::sys::signal::Signal,
    /// When an instance that exits on its own is started again (`respawn` is
    /// `restart != Never`).
    pub restart: Restart,
    /// Exit codes that count as success.
    pub success_exit_codes: Vec<i32>,
    /// Read at each instance's start; `env` wins over it.
    pub env_file: Option<PathBuf>,
    /// Resource limits of each instance.
    pub rlimits: Vec<Rlimit>,
    /// Scheduling priority of each instance, if not the daemon's.
    pub nice: Option<i32>,
    /// Restart an instance whose RSS passes this many bytes.
    pub max_memory: Option<u64>,
    /// An instance not `ok` within this is killed (a failed start); `None`: no
    /// limit.
    pub start_timeout: Option<Duration>,
}

impl ProgramSpec {
    /// Whether an exit status counts as success (`success_exit_codes`).
    pub fn is_success(&self, code: Option<i32>) -> bool {
        code.is_some_and(|code| self.success_exit_codes.contains(&code))
    }
}

/// A socket address from `listen`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// `tcp://HOST:PORT`.
    Tcp(String),
    /// `unix:///path`.
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "tcp://{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// Checks a program name: what may appear in `NAME/WORKER`, paths and logs.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidArgument {
        field: "name",
        reason: format!("{name:?}: {reason}"),
    };
    if name.is_empty() {
        return Err(bad("must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad("is longer than 64 bytes"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad("may only hold letters, digits, `-`, `_` and `.`"));
    }
    Ok(())
}

/// Variables infantd sets for each instance: `INFANT_*` (the worker channel: the
/// socket, the worker's id and token) and the socket-activation trio. A program
/// that overrode one would lose its channel to the daemon or its sockets.
pub(crate) fn is_reserved_variable(key: &str) -> bool {
    key.starts_with("INFANT_") || matches!(key, "LISTEN_FDS" | "LISTEN_PID" | "LISTEN_FDNAMES")
}

impl ProgramDef {
    /// Applies defaults and checks every field; errors name `name` and the field.
    pub fn validate(self, name: &str) -> Result<ProgramSpec> {
        validate_name(name)?;
        let invalid = |field: &'static str, reason: String| Error::InvalidField {
            program: name.to_string(),
            field,
            reason,
        };

        let kind = self.kind.unwrap_or_default();
        let command = self.command.unwrap_or_default();
        match command.first() {
            None => return Err(invalid("command", "must name a program to run".into())),
            Some(first) if first.is_empty() => {
                return Err(invalid(
                    "command",
                    "the executable must not be empty".into(),
                ))
            }
            _ => {}
        }
        if command.iter().any(|arg| arg.contains('\0')) {
            return Err(invalid("command", "arguments must not contain NUL".into()));
        }

        let env = self.env.unwrap_or_default();
        for key in env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(invalid("env", format!("{key:?} is not a variable name")));
            }
        }
        let reserved: Vec<&str> = env
            .keys()
            .map(String::as_str)
            .filter(|key| is_reserved_variable(key))
            .collect();
        if !reserved.is_empty() {
            return Err(invalid(
                "env",
                format!(
                    "{}: set by infantd for every instance (its channel to the daemon, its \
                     sockets); a program may not override them",
                    reserved.join(", ")
                ),
            ));
        }
        if env.values().any(|value| value.contains('\0')) {
            return Err(invalid("env", "values must not contain NUL".into()));
        }
        if let Some(cwd) = &self.cwd {
            if cwd.as_os_str().is_empty() {
                return Err(invalid("cwd", "must not be empty".into()));
            }
        }

        let count = match (kind, self.count) {
            (Kind::Cluster, None) => default_count(),
            (Kind::Cluster, Some(0)) => return Err(invalid("count", "must be at least 1".into())),
            (Kind::Cluster, Some(n)) if n > MAX_COUNT => {
                return Err(invalid("count", format!("{n} is more than {MAX_COUNT}")))
            }
            (Kind::Cluster, Some(n)) => n,
            (_, None | Some(1)) => 1,
            (other, Some(n)) => {
                return Err(invalid(
                    "count",
                    format!("a {} runs one instance, not {n}", other.as_str()),
                ))
            }
        };

        let enhanced = self.enhanced.unwrap_or(false);
        if enhanced && kind != Kind::Cluster {
            return Err(invalid("enhanced", "only a cluster can be enhanced".into()));
        }
        if self.timeout.is_some() && kind != Kind::Once {
            return Err(invalid(
                "timeout",
                "only a `once` program has a timeout".into(),
            ));
        }

        let listen = self
            .listen
            .unwrap_or_default()
            .iter()
            .map(|text| parse_listen(text).map_err(|reason| invalid("listen", reason)))
            .collect::<Result<Vec<_>>>()?;
        if listen.len() > MAX_LISTEN {
            return Err(invalid("listen", format!("at most {MAX_LISTEN} sockets")));
        }

        let duration = |field: &'static str, value: Option<Duration>, default: Duration| {
            let value = value.unwrap_or(default);
            if value > MAX_DURATION {
                return Err(invalid(field, "is longer than 7 days".into()));
            }
            Ok(value)
        };
        let stop_default = match (kind, enhanced) {
            (Kind::Cluster, true) => Duration::from_secs(30),
            (Kind::Cluster, false) => Duration::from_secs(5),
            _ => Duration::from_secs(10),
        };
        let heartbeat = duration("heartbeat", self.heartbeat, Duration::from_secs(10))?;
        if heartbeat < MIN_HEARTBEAT {
            return Err(invalid("heartbeat", "must be at least 10ms".into()));
        }
        let timeout = match self.timeout {
            Some(t) if t.is_zero() => return Err(invalid("timeout", "must be more than 0".into())),
            Some(t) => Some(duration("timeout", Some(t), t)?),
            None => None,
        };

        let max_connections = self.max_connections.unwrap_or(1_000_000);
        if max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1".into()));
        }
        let max_recycling = self.max_recycling.unwrap_or(1);
        if max_recycling == 0 || max_recycling > MAX_COUNT {
            return Err(invalid(
                "max_recycling",
                format!("must be from 1 to {MAX_COUNT}"),
            ));
        }
        let max_memory_gain = self.max_memory_gain.unwrap_or(1000);
        if max_memory_gain == 0 {
            return Err(invalid(
                "max_memory_gain",
                "must be at least 1 (percent)".into(),
            ));
        }

        let after = self.after.unwrap_or_default();
        for dep in &after {
            validate_name(dep).map_err(|e| invalid("after", e.to_string()))?;
            if dep == name {
                return Err(invalid("after", "a program cannot wait for itself".into()));
            }
        }

        let log_max_size = self.log_max_size.unwrap_or(DEFAULT_LOG_MAX_SIZE);
        if log_max_size < 1024 {
            return Err(invalid("log_max_size", "must be at least 1KiB".into()));
        }
        let log_keep = self.log_keep.unwrap_or(DEFAULT_LOG_KEEP);
        if log_keep > MAX_LOG_KEEP {
            return Err(invalid(
                "log_keep",
                format!("{log_keep} is more than {MAX_LOG_KEEP}"),
            ));
        }

        let title = self.title.unwrap_or_else(|| name.to_string());
        if title.contains('\0') {
            return Err(invalid("title", "must not contain NUL".into()));
        }

        let restart = match (self.restart, self.respawn) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "restart",
                    "`respawn` and `restart` are both given; `respawn` is the old name of \
                     `restart` (true = \"always\", false = \"never\"): keep only `restart`"
                        .into(),
                ))
            }
            (Some(restart), None) => restart,
            (None, Some(true)) => Restart::Always,
            (None, Some(false)) => Restart::Never,
            (None, None) if kind == Kind::Once => Restart::Never,
            (None, None) => Restart::Always,
        };
        let success_exit_codes = self.success_exit_codes.unwrap_or_else(|| vec![0]);
        if success_exit_codes.is_empty() {
            return Err(invalid(
                "success_exit_codes",
                "must list at least one exit code".into(),
            ));
        }
        if let Some(bad) = success_exit_codes.iter().find(|c| !(0..=255).contains(*c)) {
            return Err(invalid(
                "success_exit_codes",
                format!("{bad} is not an exit code (0 to 255)"),
            ));
        }
        for (field, value) in [("user", &self.user), ("group", &self.group)] {
            if let Some(value) = value {
                if value.is_empty() || value.contains('\0') || value.contains(':') {
                    return Err(invalid(
                        field,
                        format!("{value:?} is not a {field} name or id"),
                    ));
                }
            }
        }
        let umask = match &self.umask {
            None => None,
            Some(text) => Some(parse_umask(text).map_err(|reason| invalid("umask", reason))?),
        };
        let stop_signal = match &self.stop_signal {
            None => nix::sys::signal::Signal::SIGTERM,
            Some(text) => parse_signal(text).map_err(|reason| invalid("stop_signal", reason))?,
        };
        if let Some(path) = &self.env_file {
            if path.as_os_str().is_empty() {
                return Err(invalid("env_file", "must not be empty".into()));
            }
        }
        let rlimits = self
            .rlimits
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| parse_rlimit(&key, &value).map_err(|r| invalid("rlimits", r)))
            .collect::<Result<Vec<_>>>()?;
        if let Some(nice) = self.nice {
            if !(-20..=19).contains(&nice) {
                return Err(invalid("nice", format!("{nice} is not from -20 to 19")));
            }
        }
        let max_memory = match self.max_memory {
            Some(0) => return Err(invalid("max_memory", "must be more than 0".into())),
            Some(bytes) => Some(bytes),
            None => None,
        };
        let start_grace = duration("start_grace", self.start_grace, Duration::from_millis(250))?;
        let ready = self.ready.unwrap_or_default();
        let start_timeout = match self.start_timeout {
            Some(t) if t.is_zero() => None,
            // A long start grace brings its own room: the default never makes a
            // grace-gated program unable to become `ok`.
            None if start_grace >= DEFAULT_START_TIMEOUT => {
                Some(start_grace + DEFAULT_START_TIMEOUT)
            }
            other => Some(duration("start_timeout", other, DEFAULT_START_TIMEOUT)?),
        };
        if let Some(limit) = start_timeout {
            if ready == Ready::Grace && limit <= start_grace && kind != Kind::Once {
                return Err(invalid(
                    "start_timeout",
                    format!(
                        "{} is not longer than start_grace ({}): no instance could become ok",
                        humantime::format_duration(limit),
                        humantime::format_duration(start_grace)
                    ),
                ));
            }
        }

        Ok(ProgramSpec {
            name: name.to_string(),
            kind,
            command,
            cwd: self.cwd,
            env,
            title,
            count,
            enhanced,
            listen,
            respawn: restart != Restart::Never,
            respawn_delay: duration("respawn_delay", self.respawn_delay, Duration::from_secs(15))?,
            stop_timeout: duration("stop_timeout", self.stop_timeout, stop_default)?,
            recycle_timeout: duration(
                "recycle_timeout",
                self.recycle_timeout,
                Duration::from_secs(5),
            )?,
            max_connections,
            max_memory_gain,
            heartbeat,
            timeout,
            after,
            start_grace,
            max_retries: self.max_retries,
            max_restarts: self.max_restarts,
            max_recycling,
            restart_window: duration(
                "restart_window",
                self.restart_window,
                Duration::from_secs(60),
            )?,
            ready,
            user: self.user,
            group: self.group,
            umask,
            stop_signal,
            restart,
            success_exit_codes,
            env_file: self.env_file,
            rlimits,
            nice: self.nice,
            max_memory,
            start_timeout,
            log: self.log.unwrap_or_default(),
            log_max_size,
            log_keep,
        })
    }
}

/// How long an instance may take to become `ok` unless `start_timeout` says
/// otherwise: systemd's default for a service's start.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(90);

/// Parses a umask written in octal: `"022"`, `"0o027"`, `"0077"`.
fn parse_umask(text: &str) -> std::result::Result<u32, String> {
    let digits = text.trim().trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mask) if mask <= 0o777 && !digits.is_empty() => Ok(mask),
        _ => Err(format!(
            "{text:?} is not a umask (octal digits, at most 0777, such as \"022\")"
        )),
    }
}

/// Parses a signal name, with or without `SIG`, any case: `TERM`, `SIGINT`,
/// `quit`.
pub fn parse_signal(text: &str) -> std::result::Result<nix::sys::signal::Signal, String> {
    let upper = text.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map_err(|_| format!("{text:?} is not a signal name (such as TERM, INT, QUIT, HUP)"))
}

/// Parses one `rlimits` entry.
fn parse_rlimit(key: &str, value: &LimitValue) -> std::result::Result<Rlimit, String> {
    let Some(&(name, resource)) = RLIMIT_NAMES.iter().find(|(name, _)| *name == key) else {
        let names: Vec<&str> = RLIMIT_NAMES.iter().map(|(name, _)| *name).collect();
        return Err(format!("{key:?} is not a limit ({})", names.join(", ")));
    };
    let value = match value {
        LimitValue::Number(n) => *n,
        LimitValue::Text(text) if text.trim() == "unlimited" || text.trim() == "infinity" => {
            libc::RLIM_INFINITY
        }
        LimitValue::Text(text) => crate::size::parse(text).map_err(|_| {
            format!(
                "{key} = {text:?}: expected a number, \"unlimited\" or a size such as \"64MiB\""
            )
        })?,
    };
    Ok(Rlimit {
        name,
        resource,
        value,
    })
}

/// The default cluster size: one worker per CPU.
fn default_count() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(1))
        .unwrap_or(1)
        .clamp(1, MAX_COUNT)
}

/// Parses `tcp://HOST:PORT` or `unix:///path`.
fn parse_listen(text: &str) -> std::result::Result<ListenAddr, String> {
    if let Some(addr) = text.strip_prefix("tcp://") {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} has no port (tcp://HOST:PORT)"))?;
        if host.is_empty() {
            return Err(format!("{text:?} has no host (tcp://HOST:PORT)"));
        }
        port.parse::<u16>()
            .map_err(|_| format!("{text:?}: port must be a number from 0 to 65535"))?;
        return Ok(ListenAddr::Tcp(addr.to_string()));
    }
    if let Some(path) = text.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return Err(format!(
                "{text:?}: the path must be absolute (unix:///path)"
            ));
        }
        // sockaddr_un holds 108 bytes including the terminating NUL.
        if path.len() > 107 {
            return Err(format!("{text:?}: a Unix socket path is at most 107 bytes"));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    Err(format!(
        "{text:?} is not a socket address (tcp://HOST:PORT or unix:///path)"
    ))
}

/// Humane durations (`500ms`, `15s`, `1m 30s`) in config files.
mod humane {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// An optional duration written as a humane string.
    pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration string such as \"500ms\" or \"15s\"")
        })?;
        humantime::parse_duration(text.trim())
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(command: &[&str]) -> ProgramDef {
        ProgramDef {
            command: Some(command.iter().map(|s| s.to_string()).collect()),
            ..ProgramDef::default()
        }
    }

    #[test]
    fn env_may_not_override_what_the_daemon_sets() {
        let mut overriding = def(&["x"]);
        overriding.env = Some(BTreeMap::from([
            ("INFANT_SOCKET".to_owned(), "/elsewhere".to_owned()),
            ("LISTEN_FDS".to_owned(), "3".to_owned()),
            ("LISTEN_PORT".to_owned(), "80".to_owned()),
            ("PORT".to_owned(), "80".to_owned()),
        ]));
        let err = overriding.validate("web").unwrap_err().to_string();
        assert!(err.contains("web") && err.contains("env"), "{err}");
        assert!(err.contains("INFANT_SOCKET, LISTEN_FDS:"), "{err}");
        assert!(!err.contains("PORT:"), "{err}");
    }

    #[test]
    fn defaults_follow_the_design() {
        let spec = def(&["sleep", "1"]).validate("web").expect("valid");
        assert_eq!(spec.kind, Kind::Child);
        assert_eq!(spec.count, 1);
        assert!(spec.respawn);
        assert_eq!(spec.respawn_delay, Duration::from_secs(15));
        assert_eq!(spec.stop_timeout, Duration::from_secs(10));
        assert_eq!(spec.heartbeat, Duration::from_secs(10));
        assert_eq!(spec.max_connections, 1_000_000);
        assert_eq!(spec.max_memory_gain, 1000);
        assert_eq!(spec.title, "web");

        let mut cluster = def(&["x"]);
        cluster.kind = Some(Kind::Cluster);
        cluster.enhanced = Some(true);
        let spec = cluster.validate("c").expect("valid");
        assert_eq!(spec.stop_timeout, Duration::from_secs(30));
        assert!(spec.count >= 1);

        let mut once = def(&["x"]);
        once.kind = Some(Kind::Once);
        assert!(!once.validate("o").expect("valid").respawn);
    }

    #[test]
    fn bad_fields_are_named() {
        let err = def(&[]).validate("web").unwrap_err().to_string();
        assert!(err.contains("`web`") && err.contains("`command`"), "{err}");

        let mut zero = def(&["x"]);
        zero.kind = Some(Kind::Cluster);
        zero.count = Some(0);
        assert!(zero
            .validate("c")
            .unwrap_err()
            .to_string()
            .contains("`count`"));

        let mut huge = def(&["x"]);
        huge.kind = Some(Kind::Cluster);
        huge.count = Some(1_000_000);
        assert!(huge
            .validate("c")
            .unwrap_err()
            .to_string()
            .contains("`count`"));

        let mut listen = def(&["x"]);
        listen.listen = Some(vec!["http://x".into()]);
        assert!(listen
            .validate("l")
            .unwrap_err()
            .to_string()
            .contains("`listen`"));

        let mut recycling = def(&["x"]);
        recycling.max_recycling = Some(0);
        let err = recycling.validate("r").unwrap_err().to_string();
        assert!(err.contains("`max_recycling`"), "{err}");

        assert!(def(&["x"]).validate("bad name").is_err());
        assert!(def(&["x"]).validate("").is_err());
    }

    #[test]
    fn signals_umasks_and_limits_parse() {
        use nix::sys::signal::Signal;
        assert_eq!(parse_signal("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("sigint"), Ok(Signal::SIGINT));
        assert_eq!(parse_signal("Quit"), Ok(Signal::SIGQUIT));
        assert!(parse_signal("NOPE").is_err());

        assert_eq!(parse_umask("022"), Ok(0o022));
        assert_eq!(parse_umask("0o077"), Ok(0o077));
        assert!(parse_umask("8").is_err());
        assert!(parse_umask("1777").is_err());

        let limit = parse_rlimit("nofile", &LimitValue::Number(1024)).expect("nofile");
        assert_eq!(limit.value, 1024);
        let limit = parse_rlimit("core", &LimitValue::Text("unlimited".into())).expect("core");
        assert_eq!(limit.value, libc::RLIM_INFINITY);
        let limit = parse_rlimit("stack", &LimitValue::Text("8MiB".into())).expect("stack");
        assert_eq!(limit.value, 8 << 20);
        assert!(parse_rlimit("files", &LimitValue::Number(1)).is_err());
    }

    #[test]
    fn restart_defaults_and_its_respawn_alias() {
        let spec = def(&["x"]).validate("web").expect("valid");
        assert_eq!(spec.restart, Restart::Always);
        assert_eq!(spec.success_exit_codes, [0]);
        assert_eq!(spec.stop_signal, nix::sys::signal::Signal::SIGTERM);
        assert_eq!(spec.start_timeout, Some(DEFAULT_START_TIMEOUT));

        let mut old = def(&["x"]);
        old.respawn = Some(false);
        let spec = old.validate("web").expect("valid");
        assert_eq!((spec.restart, spec.respawn), (Restart::Never, false));

        let mut on_failure = def(&["x"]);
        on_failure.restart = Some(Restart::OnFailure);
        assert!(on_failure.validate("web").expect("valid").respawn);

        let mut both = def(&["x"]);
        both.restart = Some(Restart::Always);
        both.respawn = Some(true);
        let err = both.validate("web").unwrap_err().to_string();
        assert!(
            err.contains("`respawn`") && err.contains("`restart`"),
            "{err}"
        );

        let mut slow = def(&["x"]);
        slow.ready = Some(Ready::Grace);
        slow.start_grace = Some(Duration::from_secs(120));
        let spec = slow.clone().validate("web").expect("valid");
        assert_eq!(spec.start_timeout, Some(Duration::from_secs(210)));
        slow.start_timeout = Some(Duration::from_secs(60));
        let err = slow.validate("web").unwrap_err().to_string();
        assert!(err.contains("`start_timeout`"), "{err}");

        let mut unlimited = def(&["x"]);
        unlimited.start_timeout = Some(Duration::ZERO);
        assert_eq!(
            unlimited.validate("web").expect("valid").start_timeout,
            None
        );
    }

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            parse_listen("tcp://127.0.0.1:0"),
            Ok(ListenAddr::Tcp("127.0.0.1:0".into()))
        );
        assert_eq!(
            parse_listen("unix:///tmp/a.sock"),
            Ok(ListenAddr::Unix("/tmp/a.sock".into()))
        );
        assert!(parse_listen("tcp://127.0.0.1").is_err());
        assert!(parse_listen("tcp://:80").is_err());
        assert!(parse_listen("unix://relative").is_err());
    }
}
