//! The command line of `infantctl` (docs/cli.md describes it).
//!
//! Everything a user can get wrong without asking the daemon (a duration, a
//! `NAME/WORKER` whose worker is not a number, `K=V`) is rejected here, as a usage
//! error that names the argument; the rest (does the program exist, is the signal
//! known) is the daemon's to judge.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use infant::proto::ProgramKind;

/// Control infantd, the infant process supervisor.
#[derive(Debug, Parser)]
#[command(name = "infantctl", version, propagate_version = true)]
pub struct Cli {
    /// The daemon's control socket [default: $INFANT_SOCKET, else
    /// $XDG_RUNTIME_DIR/infant/infantd.sock, else /run/infant/infantd.sock for root,
    /// else /tmp/infant-$UID/infantd.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Talk to a remote daemon (`infantd --control-listen`) instead of a socket:
    /// https://HOST:PORT, or http://HOST:PORT to a loopback address
    #[arg(
        long,
        global = true,
        value_name = "URL",
        conflicts_with = "socket",
        requires = "token_file"
    )]
    pub connect: Option<String>,
    /// With --connect: the file holding the daemon's bearer token
    #[arg(long, global = true, value_name = "FILE", requires = "connect")]
    pub token_file: Option<PathBuf>,
    /// With --connect https://: trust this PEM CA certificate [default: the
    /// system's trusted roots]
    #[arg(long, global = true, value_name = "FILE", requires = "connect")]
    pub ca_cert: Option<PathBuf>,
    /// Print one JSON object per line instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once per run: the size of `start`'s many options costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a configured program, or define one inline after `--`.
    // Boxed: its many inline options would make every command as large.
    Start(Box<StartArgs>),
    /// Stop a program gracefully; returns once every instance has exited.
    Stop(StopArgs),
    /// Restart a program (clusters: rolling, one worker at a time).
    Restart(RestartArgs),
    /// Send a text message to a program's workers (or to one worker).
    Send(SendArgs),
    /// Send a signal to a program's workers (or to one worker).
    Kill(KillArgs),
    /// Change the number of workers of a cluster.
    Scale(ScaleArgs),
    /// Reread the daemon's config file and apply the difference (the plan).
    Reload(ReloadArgs),
    /// Stop a program and forget it (gone from status).
    Remove(RemoveArgs),
    /// List every program and its state, or only the programs named.
    Status(StatusArgs),
    /// List running instances.
    Workers(WorkersArgs),
    /// Print the daemon's retained events; with --follow, keep printing new ones.
    Events(EventsArgs),
    /// Print a program's last output lines; with -f, keep printing new ones.
    Logs(LogsArgs),
    /// A live, full-screen view of programs, workers and events (q quits).
    Top(TopArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print infantctl's man page (roff), for `man -l -` or a man directory.
    Man,
}

/// `status [NAME...]`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only these programs [default: every program].
    pub names: Vec<String>,
}

/// `top [--once] [NAME]`
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Print one frame and exit (what `top` does anyway without a terminal).
    #[arg(long)]
    pub once: bool,
    /// Only this program's workers and events.
    pub name: Option<String>,
}

/// `completions SHELL`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `start NAME [--wait] [SPEC OPTIONS] [-- CMD ARGS...]`
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The program's name.
    pub name: String,
    /// Return only when the job has ended (`once` programs).
    #[arg(long)]
    pub wait: bool,
    /// Inline program: its kind.
    #[arg(long, value_enum, requires = "command")]
    pub kind: Option<KindArg>,
    /// Inline cluster: number of workers [default: number of CPUs].
    #[arg(long, value_name = "N", requires = "command")]
    pub count: Option<u32>,
    /// Inline cluster: count connections and recycle workers.
    #[arg(long, requires = "command")]
    pub enhanced: bool,
    /// Inline program: a socket to bind and hand to every worker
    /// (tcp://HOST:PORT or unix:///path); repeatable.
    #[arg(long, value_name = "URL", requires = "command")]
    pub listen: Vec<String>,
    /// Inline program: working directory; relative to the current directory
    /// [default: the current directory].
    // A String, not a PathBuf: the proto carries UTF-8, so clap rejects anything else.
    #[arg(long, value_name = "DIR", requires = "command")]
    pub cwd: Option<String>,
    /// Inline program: add a variable to its environment; repeatable.
    #[arg(long, value_name = "K=V", value_parser = parse_env, requires = "command")]
    pub env: Vec<(String, String)>,
    /// Inline program: the longest hold-down between respawns in a crash loop.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "command")]
    pub respawn_delay: Option<Duration>,
    /// Inline program: graceful stop window before SIGKILL.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "command")]
    pub stop_timeout: Option<Duration>,
    /// Inline program: how long a plain (non-SDK) instance must live to be `ok`
    /// (supervisord's `startsecs`); `0ms` makes it `ok` once spawned.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "command")]
    pub start_grace: Option<Duration>,
    /// Inline program: when an instance counts as ok: auto, spawn, grace, sdk
    /// or notify (READY=1 on the NOTIFY_SOCKET the daemon gives it).
    #[arg(long, value_name = "MODE", requires = "command")]
    pub ready: Option<String>,
    /// Inline program: worker heartbeat interval.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "command")]
    pub heartbeat: Option<Duration>,
    /// Inline `once` program: kill the run after this long.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "command")]
    pub timeout: Option<Duration>,
    /// Inline program: where its output goes: file (NAME.out.log and
    /// NAME.err.log in the daemon's log folder), inherit (the daemon's stdout and
    /// stderr) or off.
    #[arg(long, value_name = "MODE", requires = "command")]
    pub log: Option<String>,
    /// Inline program: rotate a log file before it grows past this size
    /// (10MiB, 512KiB) [default: 10MiB].
    #[arg(long, value_name = "SIZE", value_parser = infant::size::parse, requires = "command")]
    pub log_max_size: Option<u64>,
    /// Inline program: rotated log files kept [default: 5].
    #[arg(long, value_name = "N", requires = "command")]
    pub log_keep: Option<u32>,
    /// Inline program: do not respawn instances that exit unexpectedly.
    #[arg(long, requires = "command")]
    pub no_respawn: bool,
    /// Inline program: run as this user (name or uid); needs a root daemon.
    #[arg(long, value_name = "USER", requires = "command")]
    pub user: Option<String>,
    /// Inline program: run with this primary group (name or gid).
    #[arg(long, value_name = "GROUP", requires = "command")]
    pub group: Option<String>,
    /// Inline program: file mode creation mask, in octal (022).
    #[arg(long, value_name = "OCTAL", requires = "command")]
    pub umask: Option<String>,
    /// Inline program: the signal of a plain program's graceful stop (TERM, INT,
    /// QUIT, …) [default: TERM].
    #[arg(long, value_name = "SIGNAL", requires = "command")]
    pub stop_signal: Option<String>,
    /// Inline program: when an exited instance is started again: always,
    /// on-failure or never.
    #[arg(
        long,
        value_name = "POLICY",
        conflicts_with = "no_respawn",
        requires = "command"
    )]
    pub restart: Option<String>,
    /// Inline program: exit codes that count as success, comma-separated
    /// [default: 0].
    #[arg(
        long,
        value_name = "CODES",
        value_delimiter = ',',
        requires = "command"
    )]
    pub success_exit_codes: Vec<i32>,
    /// Inline program: a file of KEY=VALUE lines read at each instance's start;
    /// --env wins over it.
    #[arg(long, value_name = "FILE", requires = "command")]
    pub env_file: Option<String>,
    /// Inline program: a resource limit, NAME=VALUE (nofile=1024,
    /// core=unlimited); repeatable.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_env, requires = "command")]
    pub rlimit: Vec<(String, String)>,
    /// Inline program: scheduling priority, -20 to 19.
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        requires = "command"
    )]
    pub nice: Option<i32>,
    /// Inline program: restart an instance gracefully once its RSS passes this
    /// (512MiB, 2G).
    #[arg(long, value_name = "SIZE", requires = "command")]
    pub max_memory: Option<String>,
    /// Inline program: an instance not ok within this is killed, a failed start
    /// [default: 90s; 0s: no limit].
    #[arg(long, value_name = "DUR", value_parser = parse_duration, requires = "command")]
    pub start_timeout: Option<Duration>,
    /// Inline program: the command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `stop NAME [--timeout DUR]`
#[derive(Debug, Args)]
pub struct StopArgs {
    /// The program's name.
    pub name: String,
    /// Override the program's stop timeout for this stop.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// `restart NAME [--full]`
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The program's name.
    pub name: String,
    /// Stop every instance, then start them all, instead of a rolling restart.
    #[arg(long)]
    pub full: bool,
}

/// `send NAME[/WORKER] TEXT`
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The program, or one worker of it as NAME/ID.
    #[arg(value_name = "NAME[/WORKER]", value_parser = parse_target)]
    pub target: Target,
    /// The message (UTF-8 text; JSON by convention).
    #[arg(allow_hyphen_values = true)]
    pub text: String,
}

/// `kill NAME[/WORKER] [SIGNAL]`
#[derive(Debug, Args)]
pub struct KillArgs {
    /// The program, or one worker of it as NAME/ID.
    #[arg(value_name = "NAME[/WORKER]", value_parser = parse_target)]
    pub target: Target,
    /// A signal name (TERM, SIGTERM, hup) or number [default: TERM].
    pub signal: Option<String>,
}

/// `scale NAME COUNT`
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The cluster's name.
    pub name: String,
    /// The new number of workers.
    pub count: u32,
}

/// `reload [--dry-run]`
#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `remove NAME [--timeout DUR]`
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The program's name.
    pub name: String,
    /// Override the program's stop timeout for this stop.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

/// `workers [NAME]`
#[derive(Debug, Args)]
pub struct WorkersArgs {
    /// Only this program's workers.
    pub name: Option<String>,
}

/// `events [NAME] [--follow] [--no-replay] [-n N]`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this program's events.
    pub name: Option<String>,
    /// After the retained events, print new ones until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// Skip the retained events: only new ones (implies --follow).
    #[arg(long)]
    pub no_replay: bool,
    /// Print only the last N retained events.
    #[arg(
        short = 'n',
        long = "lines",
        value_name = "N",
        conflicts_with = "no_replay"
    )]
    pub last: Option<u32>,
}

/// `logs NAME[/WORKER] [-n N] [-f] [--out|--err]`
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The program, or one worker of it as NAME/ID.
    #[arg(value_name = "NAME[/WORKER]", value_parser = parse_target)]
    pub target: Target,
    /// Print the last N lines the daemon keeps in memory first.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
    pub last: u32,
    /// Keep printing new lines until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// Only stdout.
    #[arg(long, conflicts_with = "err")]
    pub out: bool,
    /// Only stderr.
    #[arg(long)]
    pub err: bool,
}

/// A program kind as spelled on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// One supervised process.
    Child,
    /// `--count` workers running the same command.
    Cluster,
    /// A job that runs to completion.
    Once,
}

impl From<KindArg> for ProgramKind {
    fn from(kind: KindArg) -> ProgramKind {
        match kind {
            KindArg::Child => ProgramKind::Child,
            KindArg::Cluster => ProgramKind::Cluster,
            KindArg::Once => ProgramKind::Once,
        }
    }
}

/// `NAME` or `NAME/WORKER`: a program, or one of its workers by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The program.
    pub name: String,
    /// One worker's id; `None` means every worker.
    pub worker: Option<u64>,
}

/// Parses `NAME` or `NAME/WORKER`. Program names cannot contain `/`, so the first
/// one separates them.
fn parse_target(text: &str) -> Result<Target, String> {
    let Some((name, worker)) = text.split_once('/') else {
        return Ok(Target {
            name: text.to_owned(),
            worker: None,
        });
    };
    if name.is_empty() {
        return Err("expected NAME/WORKER, the program name is missing".to_owned());
    }
    let worker = worker
        .parse::<u64>()
        .map_err(|_| format!("the worker in NAME/WORKER must be a number, not `{worker}`"))?;
    Ok(Target {
        name: name.to_owned(),
        worker: Some(worker),
    })
}

/// Parses a humane duration such as `500ms`, `15s` or `1m30s`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("{error} (expected a duration like 500ms, 15s or 1m30s)"))
}

/// Parses `K=V`; the value may be empty or contain `=`.
fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some(("", _)) => Err("the variable name before `=` is empty".into()),
        Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
        None => Err(format!("expected K=V, found no `=` in `{text}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("infantctl").chain(args.iter().copied()))
    }

    fn command(args: &[&str]) -> Command {
        match parse(args) {
            Ok(cli) => cli.command,
            Err(error) => panic!("{args:?} should parse: {error}"),
        }
    }

    fn usage_error(args: &[&str]) -> String {
        match parse(args) {
            Ok(cli) => panic!("{args:?} should not parse, got {cli:?}"),
            Err(error) => {
                assert_ne!(error.kind(), ErrorKind::DisplayHelp);
                assert_eq!(error.exit_code(), 2, "usage errors exit 2");
                error.to_string()
            }
        }
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let cli = parse(&["--socket", "/tmp/x.sock", "--json", "status"]).unwrap();
        assert_eq!(cli.socket, Some(PathBuf::from("/tmp/x.sock")));
        assert!(cli.json);
        let cli = parse(&["status", "--json"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.socket, None);
    }

    #[test]
    fn remote_options() {
        let cli = parse(&[
            "status",
            "--connect",
            "https://h:7000",
            "--token-file",
            "t",
            "--ca-cert",
            "ca.pem",
        ])
        .unwrap();
        assert_eq!(cli.connect.as_deref(), Some("https://h:7000"));
        assert_eq!(cli.token_file, Some(PathBuf::from("t")));
        assert_eq!(cli.ca_cert, Some(PathBuf::from("ca.pem")));
        let message = usage_error(&["--connect", "https://h:7000", "status"]);
        assert!(message.contains("--token-file"), "{message}");
        let message = usage_error(&["--token-file", "t", "status"]);
        assert!(message.contains("--connect"), "{message}");
        let message = usage_error(&["--ca-cert", "ca.pem", "status"]);
        assert!(message.contains("--connect"), "{message}");
        let message = usage_error(&[
            "--socket",
            "/tmp/x.sock",
            "--connect",
            "https://h:7000",
            "--token-file",
            "t",
            "status",
        ]);
        assert!(message.contains("--socket"), "{message}");
    }

    #[test]
    fn start_configured() {
        let Command::Start(start) = command(&["start", "web", "--wait"]) else {
            panic!("not start");
        };
        assert_eq!(start.name, "web");
        assert!(start.wait);
        assert!(start.command.is_empty());
    }

    #[test]
    fn start_inline() {
        let Command::Start(start) = command(&[
            "start",
            "web",
            "--kind",
            "cluster",
            "--count",
            "4",
            "--enhanced",
            "--listen",
            "tcp://127.0.0.1:0",
            "--listen",
            "unix:///tmp/web.sock",
            "--env",
            "A=1=2",
            "--env",
            "B=",
            "--respawn-delay",
            "500ms",
            "--stop-timeout",
            "15s",
            "--heartbeat",
            "1s",
            "--no-respawn",
            "--",
            "node",
            "server.js",
            "--port",
            "8080",
        ]) else {
            panic!("not start");
        };
        assert_eq!(start.kind, Some(KindArg::Cluster));
        assert_eq!(start.count, Some(4));
        assert!(start.enhanced && start.no_respawn);
        assert_eq!(start.listen.len(), 2);
        assert_eq!(
            start.env,
            vec![("A".into(), "1=2".into()), ("B".into(), String::new())]
        );
        assert_eq!(start.respawn_delay, Some(Duration::from_millis(500)));
        assert_eq!(start.stop_timeout, Some(Duration::from_secs(15)));
        assert_eq!(start.heartbeat, Some(Duration::from_secs(1)));
        assert_eq!(start.command, ["node", "server.js", "--port", "8080"]);
    }

    #[test]
    fn spec_options_need_a_command() {
        let message = usage_error(&["start", "web", "--kind", "cluster"]);
        assert!(message.contains("CMD"), "{message}");
    }

    #[test]
    fn bad_durations_name_the_argument() {
        let message = usage_error(&["stop", "web", "--timeout", "soon"]);
        assert!(message.contains("--timeout"), "{message}");
        let message = usage_error(&["start", "j", "--timeout", "5", "--", "true"]);
        assert!(message.contains("--timeout"), "{message}");
    }

    #[test]
    fn bad_kind_and_env_are_usage_errors() {
        usage_error(&["start", "w", "--kind", "worker", "--", "true"]);
        let message = usage_error(&["start", "w", "--env", "NOEQUALS", "--", "true"]);
        assert!(message.contains("--env"), "{message}");
        usage_error(&["start", "w", "--env", "=v", "--", "true"]);
    }

    #[test]
    fn targets() {
        let Command::Send(send) = command(&["send", "web/3", "{\"a\":1}"]) else {
            panic!("not send");
        };
        assert_eq!(
            send.target,
            Target {
                name: "web".into(),
                worker: Some(3)
            }
        );
        assert_eq!(send.text, "{\"a\":1}");
        let Command::Kill(kill) = command(&["kill", "web"]) else {
            panic!("not kill");
        };
        assert_eq!(kill.target.worker, None);
        assert_eq!(kill.signal, None);
        let Command::Kill(kill) = command(&["kill", "web/12", "HUP"]) else {
            panic!("not kill");
        };
        assert_eq!(kill.target.worker, Some(12));
        assert_eq!(kill.signal.as_deref(), Some("HUP"));
    }

    #[test]
    fn bad_targets_name_the_argument() {
        for bad in ["web/x", "web/", "/3", "web/-1", "web/1/2"] {
            let message = usage_error(&["kill", bad]);
            assert!(message.contains("NAME[/WORKER]"), "{bad}: {message}");
        }
    }

    #[test]
    fn send_text_may_look_like_an_option() {
        let Command::Send(send) = command(&["send", "web", "-1"]) else {
            panic!("not send");
        };
        assert_eq!(send.text, "-1");
    }

    #[test]
    fn scale_stop_restart_workers_events() {
        let Command::Scale(scale) = command(&["scale", "web", "8"]) else {
            panic!("not scale");
        };
        assert_eq!((scale.name.as_str(), scale.count), ("web", 8));
        usage_error(&["scale", "web", "many"]);
        usage_error(&["scale", "web", "-1"]);
        let Command::Stop(stop) = command(&["stop", "web", "--timeout", "2s"]) else {
            panic!("not stop");
        };
        assert_eq!(stop.timeout, Some(Duration::from_secs(2)));
        let Command::Restart(restart) = command(&["restart", "web", "--full"]) else {
            panic!("not restart");
        };
        assert!(restart.full);
        let Command::Workers(workers) = command(&["workers"]) else {
            panic!("not workers");
        };
        assert_eq!(workers.name, None);
        let Command::Events(events) = command(&["events", "web", "--follow"]) else {
            panic!("not events");
        };
        assert_eq!(events.name.as_deref(), Some("web"));
        assert!(events.follow);
        let Command::Events(events) = command(&["events", "--no-replay"]) else {
            panic!("not events");
        };
        assert!(events.no_replay);
        let Command::Events(events) = command(&["events", "-n", "5"]) else {
            panic!("not events");
        };
        assert_eq!(events.last, Some(5));
    }

    #[test]
    fn status_takes_names() {
        let Command::Status(status) = command(&["status", "web", "db"]) else {
            panic!("not status");
        };
        assert_eq!(status.names, ["web", "db"]);
        let Command::Status(status) = command(&["status"]) else {
            panic!("not status");
        };
        assert!(status.names.is_empty());
    }

    #[test]
    fn missing_and_unknown_things_are_usage_errors() {
        usage_error(&[]);
        usage_error(&["start"]);
        usage_error(&["launch", "web"]);
        usage_error(&["completions", "tcsh"]);
        usage_error(&["send", "web"]);
    }
}
