//! A reload's plan: what changes when the config file's programs replace the
//! ones the daemon runs from it.
//!
//! Pure: [`plan`] compares definitions and knows nothing of files or
//! processes. Each program is `added`, `removed`, `changed` (with the fields
//! that changed) or `unchanged`, and gets an [`Action`]: what applying the
//! plan does to it. Which action a changed field needs is decided in one place,
//! [`changed_fields`].

use crate::daemon::spec::{Kind, ProgramSpec};

/// How a program differs between what runs and the new file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Only in the new file.
    Added,
    /// No longer in the file.
    Removed,
    /// In both, with different values.
    Changed,
    /// In both, the same.
    Unchanged,
}

impl Change {
    /// The word the CLI, the proto and the docs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
        }
    }
}

/// What applying the plan does to one program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// Start it (an added program).
    Start,
    /// Stop it and forget it (a removed program).
    Remove,
    /// Take the new values; nothing restarts (live fields only, or a program
    /// that is not running: it runs on the new definition when next started).
    Update,
    /// Stop it, then start it on the new definition.
    Restart,
    /// A cluster: replace each worker in turn, the replacement `ok` before the
    /// old one stops.
    RollingRestart,
    /// A change of what the program is (`kind`, `enhanced`, `listen`): stop
    /// every instance, rebind its sockets, start again.
    FullRestart,
    /// Only `count` changed: grow or shrink the cluster.
    Scale,
}

impl Action {
    /// The words the CLI, the proto and the docs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Start => "start",
            Action::Remove => "remove",
            Action::Update => "update",
            Action::Restart => "restart",
            Action::RollingRestart => "rolling restart",
            Action::FullRestart => "full restart",
            Action::Scale => "scale",
        }
    }
}

/// What a change of one field needs, least to most disruptive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// Read each time it is used: the new value applies from now on.
    Live,
    /// `count`: a scale.
    Scale,
    /// Fixed when a process is spawned (or told to a worker when it attaches):
    /// only new processes get it. Rolling for a running cluster.
    Restart,
    /// What the program is: all of it stops before it starts again.
    Replace,
}

/// One program's line of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanEntry {
    /// The program.
    pub program: String,
    /// How it differs.
    pub change: Change,
    /// `Changed`: the fields that differ, in definition order.
    pub fields: Vec<&'static str>,
    /// What applying the plan does to it.
    pub action: Action,
    /// Set when applying this entry failed.
    pub error: Option<String>,
}

/// A reload's plan: the new file's programs in file order, then the removed
/// ones in definition order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// One entry per program.
    pub entries: Vec<PlanEntry>,
}

impl Plan {
    /// A one-line summary for logs and `STATUS=`: `1 added, 2 changed, …`.
    pub fn summary(&self) -> String {
        let count = |change: Change| self.entries.iter().filter(|e| e.change == change).count();
        let parts: Vec<String> = [
            Change::Added,
            Change::Removed,
            Change::Changed,
            Change::Unchanged,
        ]
        .into_iter()
        .map(|change| format!("{} {}", count(change), change.as_str()))
        .collect();
        parts.join(", ")
    }

    /// The entries that failed, as `program: error` lines.
    pub fn failures(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter_map(|e| {
                e.error
                    .as_ref()
                    .map(|error| format!("{}: {error}", e.program))
            })
            .collect()
    }
}

/// A defined program as a reload sees it.
#[derive(Clone, Debug)]
pub struct Defined {
    /// Its definition.
    pub spec: ProgramSpec,
    /// Defined by the config file (not over the API, nor the inline program).
    pub configured: bool,
    /// Running (not idle, not waiting for its `after`, not stopping).
    pub running: bool,
}

/// The fields of `new` whose value differs from `old`, each with the effect
/// its change needs.
///
/// Every field of [`ProgramSpec`] is named below, without `..`: a field added
/// to `ProgramSpec` does not compile until it is given its effect here. Give it
/// the least disruptive effect that is true: `Live` if the engine reads the
/// field each time it uses it (a timeout, a threshold, a policy), `Restart` if
/// it is fixed into a process when it is spawned (what `exec` gets: argv,
/// environment, credentials, limits) or told to a worker when it attaches,
/// `Replace` if it changes what the program is (its kind, its sockets).
pub fn changed_fields(old: &ProgramSpec, new: &ProgramSpec) -> Vec<(&'static str, Effect)> {
    use Effect::{Live, Replace, Restart, Scale};
    let ProgramSpec {
        // The identity: a new name is a removed program and an added one.
        name: _,
        kind,
        command,
        cwd,
        env,
        title,
        count,
        enhanced,
        listen,
        respawn,
        respawn_delay,
        stop_timeout,
        recycle_timeout,
        max_connections,
        max_memory_gain,
        heartbeat,
        timeout,
        after,
        start_grace,
        max_retries,
        max_restarts,
        restart_window,
        max_recycling,
        ready,
        user,
        group,
        umask,
        stop_signal,
        restart,
        success_exit_codes,
        env_file,
        rlimits,
        nice,
        max_memory,
        start_timeout,
        log,
        log_max_size,
        log_keep,
    } = new;
    let fields = [
        ("kind", *kind != old.kind, Replace),
        ("command", *command != old.command, Restart),
        ("cwd", *cwd != old.cwd, Restart),
        ("env", *env != old.env, Restart),
        // The process title is set at exec.
        ("title", *title != old.title, Restart),
        ("count", *count != old.count, Scale),
        ("enhanced", *enhanced != old.enhanced, Replace),
        // Sockets are bound once per start and shared by every worker.
        ("listen", *listen != old.listen, Replace),
        ("respawn", *respawn != old.respawn, Live),
        ("respawn_delay", *respawn_delay != old.respawn_delay, Live),
        // Read when a stop begins; a stop already under way keeps its window.
        ("stop_timeout", *stop_timeout != old.stop_timeout, Live),
        (
            "recycle_timeout",
            *recycle_timeout != old.recycle_timeout,
            Live,
        ),
        // The daemon compares the counts its workers report with it. A worker
        // told the old value at attach only reports early on reaching that
        // one: a lower limit acts at the next heartbeat.
        (
            "max_connections",
            *max_connections != old.max_connections,
            Live,
        ),
        (
            "max_memory_gain",
            *max_memory_gain != old.max_memory_gain,
            Live,
        ),
        // Told to each SDK worker when it attaches: a worker on the old
        // interval would look hung to a shorter one.
        ("heartbeat", *heartbeat != old.heartbeat, Restart),
        // A `once` run's limit is set when the run starts.
        ("timeout", *timeout != old.timeout, Live),
        // Only consulted when the program starts.
        ("after", *after != old.after, Live),
        // Counted from each spawn.
        ("start_grace", *start_grace != old.start_grace, Live),
        ("max_retries", *max_retries != old.max_retries, Live),
        ("max_restarts", *max_restarts != old.max_restarts, Live),
        (
            "restart_window",
            *restart_window != old.restart_window,
            Live,
        ),
        ("max_recycling", *max_recycling != old.max_recycling, Live),
        // `notify` gives each process its NOTIFY_SOCKET at spawn.
        ("ready", *ready != old.ready, Restart),
        // Credentials, mask, limits and priority are set between fork and exec.
        ("user", *user != old.user, Restart),
        ("group", *group != old.group, Restart),
        ("umask", *umask != old.umask, Restart),
        ("stop_signal", *stop_signal != old.stop_signal, Live),
        ("restart", *restart != old.restart, Live),
        (
            "success_exit_codes",
            *success_exit_codes != old.success_exit_codes,
            Live,
        ),
        // The path: the file itself is read at each instance's start, so a
        // new content reaches the next instance without a reload.
        ("env_file", *env_file != old.env_file, Restart),
        ("rlimits", *rlimits != old.rlimits, Restart),
        ("nice", *nice != old.nice, Restart),
        // Compared with each instance's RSS on every tick.
        ("max_memory", *max_memory != old.max_memory, Live),
        // Counted from each spawn.
        ("start_timeout", *start_timeout != old.start_timeout, Live),
        // Where output goes is fixed by the pipes a process gets at spawn.
        ("log", *log != old.log, Restart),
        // Rotation rules are read at each write (the log takes them at once).
        ("log_max_size", *log_max_size != old.log_max_size, Live),
        ("log_keep", *log_keep != old.log_keep, Live),
        // Fields added later go here, one line each, with their effect.
    ];
    fields
        .into_iter()
        .filter(|(_, differs, _)| *differs)
        .map(|(field, _, effect)| (field, effect))
        .collect()
}

/// The action for a changed program: the most disruptive effect among its
/// changed fields, given its kind and whether it runs.
fn action_for(old: &Defined, new: &ProgramSpec, effects: &[(&'static str, Effect)]) -> Action {
    let Some(strongest) = effects.iter().map(|(_, effect)| *effect).max() else {
        return Action::None;
    };
    if !old.running {
        // It runs on the new definition when it is next started.
        return Action::Update;
    }
    match strongest {
        Effect::Live => Action::Update,
        Effect::Scale => Action::Scale,
        Effect::Replace => Action::FullRestart,
        // A running job is not run again for a new definition: its next run
        // uses it. Running it twice could repeat work that must happen once.
        Effect::Restart if new.kind == Kind::Once => Action::Update,
        Effect::Restart if new.kind == Kind::Cluster => Action::RollingRestart,
        Effect::Restart => Action::Restart,
    }
}

/// The plan that turns `current` (every defined program) into what `file`
/// (the new config file's programs, validated) defines. Programs defined other
/// than by the file are not part of it; it is an error for the file to define
/// one of their names, or to drop a program one of them names in `after`.
pub fn plan(current: &[Defined], file: &[ProgramSpec]) -> Result<Plan, String> {
    for spec in file {
        if current
            .iter()
            .any(|d| !d.configured && d.spec.name == spec.name)
        {
            return Err(format!(
                "program `{}` is defined in the file and was also started over the API \
                 (or on infantd's command line); remove that one first \
                 (`infantctl remove {}`)",
                spec.name, spec.name
            ));
        }
    }
    let in_file = |name: &str| file.iter().any(|s| s.name == name);
    let removed: Vec<&Defined> = current
        .iter()
        .filter(|d| d.configured && !in_file(&d.spec.name))
        .collect();
    for other in current.iter().filter(|d| !d.configured) {
        if let Some(gone) = removed
            .iter()
            .find(|r| other.spec.after.contains(&r.spec.name))
        {
            return Err(format!(
                "program `{}` (not from the file) names `{}` in `after`, and the file no \
                 longer defines it",
                other.spec.name, gone.spec.name
            ));
        }
    }

    let mut entries = Vec::with_capacity(file.len() + removed.len());
    for spec in file {
        let entry = match current.iter().find(|d| d.spec.name == spec.name) {
            None => PlanEntry {
                program: spec.name.clone(),
                change: Change::Added,
                fields: Vec::new(),
                action: Action::Start,
                error: None,
            },
            Some(old) => {
                let effects = changed_fields(&old.spec, spec);
                PlanEntry {
                    program: spec.name.clone(),
                    change: if effects.is_empty() {
                        Change::Unchanged
                    } else {
                        Change::Changed
                    },
                    fields: effects.iter().map(|(field, _)| *field).collect(),
                    action: action_for(old, spec, &effects),
                    error: None,
                }
            }
        };
        entries.push(entry);
    }
    for gone in removed {
        entries.push(PlanEntry {
            program: gone.spec.name.clone(),
            change: Change::Removed,
            fields: Vec::new(),
            action: Action::Remove,
            error: None,
        });
    }
    Ok(Plan { entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::config;

    fn specs(text: &str) -> Vec<ProgramSpec> {
        config::parse(text).expect("valid config")
    }

    fn running(specs: Vec<ProgramSpec>) -> Vec<Defined> {
        specs
            .into_iter()
            .map(|spec| Defined {
                spec,
                configured: true,
                running: true,
            })
            .collect()
    }

    fn entry<'a>(plan: &'a Plan, name: &str) -> &'a PlanEntry {
        plan.entries
            .iter()
            .find(|e| e.program == name)
            .unwrap_or_else(|| panic!("no entry for {name}: {plan:?}"))
    }

    const BEFORE: &str = r#"
[program.db]
command = ["sleep", "100"]
[program.web]
kind = "cluster"
count = 2
command = ["sleep", "100"]
after = ["db"]
[program.old]
command = ["sleep", "100"]
"#;

    #[test]
    fn each_program_is_added_removed_changed_or_unchanged() {
        let current = running(specs(BEFORE));
        let new = specs(
            r#"
[program.db]
command = ["sleep", "100"]
[program.web]
kind = "cluster"
count = 2
command = ["sleep", "200"]
env = { A = "1" }
after = ["db"]
[program.fresh]
command = ["sleep", "100"]
"#,
        );
        let plan = plan(&current, &new).expect("plan");
        let names: Vec<_> = plan.entries.iter().map(|e| e.program.as_str()).collect();
        assert_eq!(names, ["db", "web", "fresh", "old"]);
        assert_eq!(entry(&plan, "db").change, Change::Unchanged);
        assert_eq!(entry(&plan, "db").action, Action::None);
        let web = entry(&plan, "web");
        assert_eq!(
            (web.change, web.fields.as_slice(), web.action),
            (
                Change::Changed,
                &["command", "env"][..],
                Action::RollingRestart
            )
        );
        assert_eq!(entry(&plan, "fresh").action, Action::Start);
        assert_eq!(
            (entry(&plan, "old").change, entry(&plan, "old").action),
            (Change::Removed, Action::Remove)
        );
        assert_eq!(plan.summary(), "1 added, 1 removed, 1 changed, 1 unchanged");
    }

    #[test]
    fn the_action_follows_the_most_disruptive_field() {
        let current = running(specs(BEFORE));
        let with = |web: &str| {
            let text = BEFORE.replace("count = 2\n", &format!("count = 2\n{web}\n"));
            let plan = plan(&current, &specs(&text)).expect("plan");
            entry(&plan, "web").action
        };
        assert_eq!(with("stop_timeout = \"1s\""), Action::Update);
        assert_eq!(with("max_restarts = 3\nrespawn = false"), Action::Update);
        assert_eq!(with("heartbeat = \"1s\""), Action::RollingRestart);
        // Set between fork and exec: only new processes get them.
        assert_eq!(with("nice = 5"), Action::RollingRestart);
        assert_eq!(with("umask = \"027\""), Action::RollingRestart);
        assert_eq!(with("rlimits = { nofile = 1024 }"), Action::RollingRestart);
        // Read when used.
        assert_eq!(
            with("max_memory = \"512MiB\"\nstart_timeout = \"5s\"\nstop_signal = \"INT\""),
            Action::Update
        );
        assert_eq!(
            with("restart = \"on-failure\"\nsuccess_exit_codes = [0, 3]"),
            Action::Update
        );
        assert_eq!(
            with("listen = [\"tcp://127.0.0.1:0\"]"),
            Action::FullRestart
        );
        assert_eq!(with("enhanced = true"), Action::FullRestart);
        let scaled = BEFORE.replace("count = 2", "count = 3");
        let plan = super::plan(&current, &specs(&scaled)).expect("plan");
        assert_eq!(entry(&plan, "web").action, Action::Scale);
        assert_eq!(entry(&plan, "web").fields, ["count"]);

        // A child restarts; a stopped program only takes the new values.
        let db = BEFORE.replacen("[\"sleep\", \"100\"]", "[\"sleep\", \"300\"]", 1);
        let plan = super::plan(&current, &specs(&db)).expect("plan");
        assert_eq!(entry(&plan, "db").action, Action::Restart);
        let mut stopped = current.clone();
        stopped[0].running = false;
        let plan = super::plan(&stopped, &specs(&db)).expect("plan");
        assert_eq!(entry(&plan, "db").action, Action::Update);
    }

    #[test]
    fn programs_not_from_the_file_are_left_alone() {
        let mut current = running(specs(BEFORE));
        let api = specs("[program.api]\ncommand = [\"x\"]\n");
        current.push(Defined {
            spec: api[0].clone(),
            configured: false,
            running: true,
        });
        let plan = plan(&current, &specs(BEFORE)).expect("plan");
        assert!(plan.entries.iter().all(|e| e.program != "api"), "{plan:?}");

        // The file may not take its name.
        let err = super::plan(&current, &specs("[program.api]\ncommand = [\"y\"]\n")).unwrap_err();
        assert!(err.contains("`api`") && err.contains("remove"), "{err}");

        // Nor drop a program it needs.
        let mut needs_old = specs("[program.api]\ncommand = [\"x\"]\nafter = [\"old\"]\n[program.old]\ncommand = [\"x\"]\n");
        needs_old.truncate(1);
        current.last_mut().expect("api").spec = needs_old.remove(0);
        let without_old = BEFORE.replace("[program.old]\ncommand = [\"sleep\", \"100\"]\n", "");
        let err = super::plan(&current, &specs(&without_old)).unwrap_err();
        assert!(err.contains("`api`") && err.contains("`old`"), "{err}");
    }
}
