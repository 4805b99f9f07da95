//! `infantctl start`: start a configured program, or one defined inline after `--`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use infant::control::Control;
use infant::proto::{ProgramKind, ProgramSpec, ProgramStatus};

use crate::args::StartArgs;
use crate::output::Output;
use crate::run::Failure;

/// Starts the program and prints it. With `--wait`, a job that ended in `error` or
/// `fatal` is a failure.
pub async fn start(control: &Control, args: StartArgs, out: &mut Output) -> Result<(), Failure> {
    let spec = (!args.command.is_empty()).then(|| spec(&args));
    let program = control.start(&args.name, spec, args.wait).await?;
    out.program(&program)?;
    if args.wait
        && matches!(
            program.status(),
            ProgramStatus::Error | ProgramStatus::Fatal
        )
    {
        let reason = if program.error.is_empty() {
            format!("it ended {}", infant::names::status_name(program.status()))
        } else {
            program
                .error
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Err(Failure::JobFailed {
            name: args.name,
            reason,
        });
    }
    Ok(())
}

/// The inline definition. Fields left unset take the daemon's defaults.
fn spec(args: &StartArgs) -> ProgramSpec {
    ProgramSpec {
        kind: args
            .kind
            .map_or(ProgramKind::Unspecified, ProgramKind::from) as i32,
        command: args.command.clone(),
        cwd: working_directory(args.cwd.as_deref()),
        env: args.env.iter().cloned().collect::<HashMap<_, _>>(),
        count: args.count,
        enhanced: args.enhanced,
        listen: args.listen.clone(),
        respawn: args.no_respawn.then_some(false),
        respawn_delay_ms: args.respawn_delay.map(millis),
        stop_timeout_ms: args.stop_timeout.map(millis),
        heartbeat_ms: args.heartbeat.map(millis),
        start_grace_ms: args.start_grace.map(millis),
        timeout_ms: args.timeout.map(millis),
        ready: args.ready.clone().unwrap_or_default(),
        user: args.user.clone().unwrap_or_default(),
        group: args.group.clone().unwrap_or_default(),
        umask: args.umask.clone().unwrap_or_default(),
        stop_signal: args.stop_signal.clone().unwrap_or_default(),
        restart: args.restart.clone().unwrap_or_default(),
        success_exit_codes: args.success_exit_codes.clone(),
        env_file: args
            .env_file
            .as_deref()
            .map(|file| working_directory(Some(file)))
            .unwrap_or_default(),
        rlimits: args.rlimit.iter().cloned().collect::<HashMap<_, _>>(),
        nice: args.nice,
        max_memory: args.max_memory.clone().unwrap_or_default(),
        start_timeout_ms: args.start_timeout.map(millis),
        log: args.log.clone().unwrap_or_default(),
        log_max_size_bytes: args.log_max_size,
        log_keep: args.log_keep,
        ..ProgramSpec::default()
    }
}

/// The user typed the command where they stand, so `./server` and `--cwd sub` mean
/// the same as in their shell: both resolve against this process's directory, not
/// the daemon's. When that directory cannot be named in UTF-8 (or is gone), `cwd`
/// goes as typed and the daemon resolves it.
fn working_directory(cwd: Option<&str>) -> String {
    let wanted = PathBuf::from(cwd.unwrap_or("."));
    std::path::absolute(&wanted)
        .ok()
        .as_deref()
        .and_then(Path::to_str)
        .map(tidy)
        .unwrap_or_else(|| cwd.unwrap_or_default().to_owned())
}

/// `/home/me/.` → `/home/me`: `absolute` keeps a trailing `.`, which reads oddly in
/// listings.
fn tidy(path: &str) -> String {
    match path.strip_suffix("/.") {
        Some("") => "/".to_owned(),
        Some(stripped) => stripped.to_owned(),
        None => path.to_owned(),
    }
}

/// Saturates: nobody means a window longer than 292 million years.
fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    fn start_args(args: &[&str]) -> StartArgs {
        let argv = ["infantctl", "start"]
            .into_iter()
            .chain(args.iter().copied());
        match Cli::try_parse_from(argv).map(|cli| cli.command) {
            Ok(Command::Start(start)) => *start,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn inline_spec_carries_every_option() {
        let spec = spec(&start_args(&[
            "job",
            "--kind",
            "once",
            "--timeout",
            "1m",
            "--start-grace",
            "0ms",
            "--no-respawn",
            "--cwd",
            "/srv",
            "--env",
            "A=1",
            "--user",
            "nobody",
            "--group",
            "nogroup",
            "--umask",
            "027",
            "--stop-signal",
            "INT",
            "--success-exit-codes",
            "0,3",
            "--env-file",
            "/etc/job.env",
            "--rlimit",
            "nofile=1024",
            "--nice",
            "-5",
            "--max-memory",
            "512MiB",
            "--start-timeout",
            "20s",
            "--",
            "sh",
            "-c",
            "exit 3",
        ]));
        assert_eq!(spec.kind(), ProgramKind::Once);
        assert_eq!(spec.timeout_ms, Some(60_000));
        assert_eq!(spec.start_grace_ms, Some(0));
        assert_eq!(spec.respawn, Some(false));
        assert_eq!(spec.cwd, "/srv");
        assert_eq!(spec.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(spec.command, ["sh", "-c", "exit 3"]);
        assert_eq!(spec.count, None);
        assert_eq!(spec.stop_timeout_ms, None);
        assert_eq!(
            (spec.user.as_str(), spec.group.as_str()),
            ("nobody", "nogroup")
        );
        assert_eq!(spec.umask, "027");
        assert_eq!(spec.stop_signal, "INT");
        assert_eq!(spec.success_exit_codes, [0, 3]);
        assert_eq!(spec.env_file, "/etc/job.env");
        assert_eq!(spec.rlimits.get("nofile").map(String::as_str), Some("1024"));
        assert_eq!(spec.nice, Some(-5));
        assert_eq!(spec.max_memory, "512MiB");
        assert_eq!(spec.start_timeout_ms, Some(20_000));
    }

    #[test]
    fn unset_options_stay_unset() {
        let spec = spec(&start_args(&["web", "--", "true"]));
        assert_eq!(spec.kind, 0);
        assert_eq!(spec.respawn, None);
        assert_eq!(spec.heartbeat_ms, None);
        assert!(Path::new(&spec.cwd).is_absolute(), "{}", spec.cwd);
    }

    #[test]
    fn relative_cwd_is_the_users() {
        let here = std::env::current_dir().unwrap();
        let cwd = working_directory(Some("sub"));
        assert_eq!(Path::new(&cwd), here.join("sub"));
        assert_eq!(tidy("/."), "/");
        assert_eq!(tidy("/a/b/."), "/a/b");
    }
}
