//! The TOML config file: `[program.NAME]` tables.
//!
//! Parsing is all-or-nothing: the daemon never starts half-configured. Syntax
//! errors, unknown keys and bad values come with the line they are on; semantic
//! errors (a bad field value, an unknown or cyclic `after`) name the program and
//! the line of its table.

use std::path::Path;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use super::error::{Error, Result};
use super::spec::{ProgramDef, ProgramSpec};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    program: IndexMap<String, Spanned<ProgramDef>>,
    #[serde(default)]
    daemon: DaemonSettings,
}

/// The `[daemon]` table: settings of the daemon itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSettings {
    /// The folder of the programs' log files (`--log-dir` wins over it).
    pub log_dir: Option<std::path::PathBuf>,
}

/// Reads and validates the config file at `path`: programs in file order.
pub fn load(path: &Path) -> Result<Vec<ProgramSpec>> {
    load_all(path).map(|(programs, _)| programs)
}

/// Reads and validates the config file at `path`: programs in file order, and
/// the `[daemon]` table.
pub fn load_all(path: &Path) -> Result<(Vec<ProgramSpec>, DaemonSettings)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_all(&text).map_err(|reason| Error::Config {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses config text; the error is one message with its line.
pub fn parse(text: &str) -> std::result::Result<Vec<ProgramSpec>, String> {
    parse_all(text).map(|(programs, _)| programs)
}

/// Parses config text: programs and the `[daemon]` table.
pub fn parse_all(text: &str) -> std::result::Result<(Vec<ProgramSpec>, DaemonSettings), String> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| describe_toml_error(text, &e))?;
    let daemon = file.daemon;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;

    let mut specs = Vec::with_capacity(file.program.len());
    let mut lines = Vec::with_capacity(file.program.len());
    for (name, def) in file.program {
        let line = line_of(def.span().start);
        let spec = def
            .into_inner()
            .validate(&name)
            .map_err(|e| format!("line {line}: {e}"))?;
        specs.push(spec);
        lines.push(line);
    }
    check_order(&specs).map_err(|(index, reason)| format!("line {}: {reason}", lines[index]))?;
    Ok((specs, daemon))
}

/// toml's message spans several lines with a caret diagram; keep the line number,
/// the key and the reason on one line.
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let reason = error.message().trim();
    // A bad value's message comes from its deserializer, which does not know the
    // field it is reading: name it from the error's key path.
    let key = error_key(error);
    let hint = hint(key.as_deref(), reason);
    let reason = match key {
        Some(key) => format!("`{key}`: {reason}{hint}"),
        None => format!("{reason}{hint}"),
    };
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {reason}")
        }
        None => reason,
    }
}

/// Keys that people bring from other supervisors (supervisord, PM2, systemd),
/// and what to write instead.
const FOREIGN_KEYS: &[(&str, &str)] = &[
    ("environment", "`env`, a table: env = { KEY = \"value\" }"),
    ("numprocs", "`count`, with kind = \"cluster\""),
    ("instances", "`count`, with kind = \"cluster\""),
    ("exec_mode", "kind = \"cluster\""),
    (
        "autorestart",
        "`restart`: \"always\", \"on-failure\" or \"never\"",
    ),
    ("stopsignal", "`stop_signal`, a signal name such as \"INT\""),
    (
        "kill_signal",
        "`stop_signal`, a signal name such as \"INT\"",
    ),
    ("killsignal", "`stop_signal`, a signal name such as \"INT\""),
    ("exitcodes", "`success_exit_codes`, a list such as [0, 2]"),
    (
        "successexitstatus",
        "`success_exit_codes`, a list such as [0, 2]",
    ),
    (
        "max_memory_restart",
        "`max_memory`, a size such as \"512MiB\"",
    ),
    ("environment_file", "`env_file`, a path"),
    ("environmentfile", "`env_file`, a path"),
    ("env_files", "`env_file`, a path"),
    (
        "limits",
        "`rlimits`, a table such as rlimits = { nofile = 4096 }",
    ),
    (
        "ulimits",
        "`rlimits`, a table such as rlimits = { nofile = 4096 }",
    ),
    ("priority", "`nice`, -20 to 19"),
    ("uid", "`user`, a name or a uid"),
    ("gid", "`group`, a name or a gid"),
    (
        "timeoutstartsec",
        "`start_timeout`, a duration such as \"90s\"",
    ),
    (
        "listen_timeout",
        "`start_timeout`, a duration such as \"90s\"",
    ),
    (
        "autostart",
        "nothing: every configured program starts with the daemon",
    ),
    ("startretries", "`max_retries`"),
    ("startsecs", "`start_grace`, a duration such as \"1s\""),
    ("stopwaitsecs", "`stop_timeout`, a duration such as \"10s\""),
    ("kill_timeout", "`stop_timeout`, a duration such as \"10s\""),
    (
        "restart_delay",
        "`respawn_delay`, a duration such as \"1s\"",
    ),
    ("directory", "`cwd`"),
    ("working_directory", "`cwd`"),
    (
        "script",
        "`command`, an array: command = [\"node\", \"app.js\"]",
    ),
    (
        "args",
        "`command`, an array holding the program and its arguments",
    ),
    ("exec", "`command`, an array: command = [\"prog\", \"arg\"]"),
    ("cmd", "`command`, an array: command = [\"prog\", \"arg\"]"),
    ("requires", "`after`, a list of program names"),
    ("depends_on", "`after`, a list of program names"),
    ("name", "the table's name: [program.NAME]"),
];

/// A hint for a mistake people make: a key from another supervisor, or a
/// command written as one string.
fn hint(key: Option<&str>, reason: &str) -> String {
    if let Some(rest) = reason.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        if let Some((_, instead)) = FOREIGN_KEYS.iter().find(|(k, _)| *k == field) {
            return format!(" (infant's key for this is {instead})");
        }
    }
    let is_command = key.is_some_and(|k| k.ends_with(".command"));
    if is_command && reason.contains("invalid type: string") {
        return " (write an array of the program and its arguments: \
                 command = [\"sleep\", \"100\"])"
            .to_string();
    }
    String::new()
}

/// The dotted key an error is about (`program.web.stop_timeout`), if toml knows it.
/// toml exposes it only through `Display`, as a last line "in `KEY`" that it prints
/// when it has no source text to quote.
fn error_key(error: &toml::de::Error) -> Option<String> {
    let mut bare = error.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let key = shown
        .lines()
        .last()?
        .strip_prefix("in `")?
        .strip_suffix('`')?;
    (!key.is_empty()).then(|| key.to_string())
}

/// Checks that every `after` names a defined program and that there is no cycle,
/// and returns an order to start the programs in: each after what it names,
/// file order otherwise. On error returns the index of the program at fault and
/// the reason.
pub fn check_order(specs: &[ProgramSpec]) -> std::result::Result<Vec<usize>, (usize, String)> {
    let index_of = |name: &str| specs.iter().position(|s| s.name == name);
    for (i, spec) in specs.iter().enumerate() {
        for dep in &spec.after {
            if index_of(dep).is_none() {
                return Err((
                    i,
                    format!(
                        "program `{}`: `after` names unknown program `{dep}`",
                        spec.name
                    ),
                ));
            }
        }
    }
    // Depth-first search with colours; the path gives a readable cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        i: usize,
        specs: &[ProgramSpec],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> std::result::Result<(), (usize, String)> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut names: Vec<&str> = path[start..]
                    .iter()
                    .map(|&p| specs[p].name.as_str())
                    .collect();
                names.push(&specs[i].name);
                return Err((
                    i,
                    format!(
                        "programs wait for each other in a cycle: {}",
                        names.join(" → ")
                    ),
                ));
            }
            Mark::New => {}
        }
        marks[i] = Mark::Active;
        path.push(i);
        for dep in &specs[i].after {
            if let Some(j) = specs.iter().position(|s| &s.name == dep) {
                visit(j, specs, marks, path, order)?;
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        // Every program it names is in the order already.
        order.push(i);
        Ok(())
    }
    let mut marks = vec![Mark::New; specs.len()];
    let mut order = Vec::with_capacity(specs.len());
    for i in 0..specs.len() {
        visit(i, specs, &mut marks, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_other_supervisors_get_a_hint() {
        let err = parse("[program.web]\ncommand = [\"a\"]\nenvironment = \"A=1\"\n").unwrap_err();
        assert!(err.contains("line 3") && err.contains("`env`"), "{err}");
        let err = parse("[program.web]\ncommand = [\"a\"]\nnumprocs = 4\n").unwrap_err();
        assert!(err.contains("`count`") && err.contains("cluster"), "{err}");
        let err = parse("[program.web]\ncommand = [\"a\"]\nautorestart = true\n").unwrap_err();
        assert!(err.contains("`restart`"), "{err}");
        // An unknown key nobody else uses gets no hint.
        let err = parse("[program.web]\ncommand = [\"a\"]\nbogus = 1\n").unwrap_err();
        assert!(!err.contains("infant's key"), "{err}");
    }

    #[test]
    fn a_command_written_as_one_string_gets_a_hint() {
        let err = parse("[program.web]\ncommand = \"sleep 100\"\n").unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("write an array"),
            "{err}"
        );
    }

    #[test]
    fn programs_keep_file_order() {
        let specs = parse(
            "[program.web]\ncommand = [\"a\"]\n[program.db]\ncommand = [\"b\"]\nafter = []\n",
        )
        .expect("valid");
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web", "db"]);
    }

    #[test]
    fn errors_carry_the_line() {
        let err = parse("[program.web]\ncommand = [\"a\"]\nbogus = 1\n").unwrap_err();
        assert!(err.contains("line 3") && err.contains("bogus"), "{err}");

        let err = parse("[program.web]\ncommand = [\"a\"]\nstop_timeout = \"-5s\"\n").unwrap_err();
        assert!(err.contains("line 3") && err.contains("-5s"), "{err}");
        assert!(err.contains("program.web.stop_timeout"), "{err}");

        let err = parse("[program.web]\ncommand = [\"a\"]\nheartbeat = 5\n").unwrap_err();
        assert!(err.contains("line 3") && err.contains("heartbeat"), "{err}");

        let err = parse("\n[program.web]\ncommand = []\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("`command`"), "{err}");

        let err =
            parse("[program.a]\ncommand=[\"x\"]\n[program.a]\ncommand=[\"y\"]\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn the_start_order_puts_each_program_after_what_it_names() {
        let specs = parse(
            "[program.web]\ncommand=[\"x\"]\nafter=[\"migrate\"]\n\
             [program.cron]\ncommand=[\"x\"]\n\
             [program.migrate]\ncommand=[\"x\"]\nafter=[\"db\"]\n\
             [program.db]\ncommand=[\"x\"]\n",
        )
        .expect("valid");
        let order: Vec<&str> = check_order(&specs)
            .expect("no cycle")
            .into_iter()
            .map(|i| specs[i].name.as_str())
            .collect();
        assert_eq!(order, ["db", "migrate", "web", "cron"]);
    }

    #[test]
    fn after_must_name_programs_without_cycles() {
        let err = parse("[program.a]\ncommand=[\"x\"]\nafter=[\"nope\"]\n").unwrap_err();
        assert!(err.contains("nope") && err.contains("line 1"), "{err}");

        let err = parse(
            "[program.a]\ncommand=[\"x\"]\nafter=[\"b\"]\n[program.b]\ncommand=[\"x\"]\nafter=[\"a\"]\n",
        )
        .unwrap_err();
        assert!(err.contains("cycle") && err.contains("a → b → a"), "{err}");
    }
}
