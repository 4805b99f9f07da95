//! `infantd`: parses the command line and runs the daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use infant::daemon::spec::{Kind, ProgramDef};

/// The infant supervisor daemon, in the foreground.
///
/// With `--config`, supervises the programs of a TOML file. With a command after
/// `--`, supervises that one program (the inline form), like the seed's `node index`.
#[derive(Parser, Debug)]
#[command(name = "infantd", version, about)]
struct Args {
    /// TOML config file with `[program.NAME]` tables.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Control socket (default: $INFANT_SOCKET, $XDG_RUNTIME_DIR/infant/infantd.sock,
    /// or /tmp/infant-$UID/infantd.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Inline program: its name.
    #[arg(long, default_value = "main", requires = "command")]
    name: String,
    /// Inline program: child, cluster or once.
    #[arg(long, value_parser = parse_kind, requires = "command")]
    kind: Option<Kind>,
    /// Inline program: number of cluster workers.
    #[arg(long, requires = "command")]
    count: Option<u32>,
    /// Inline program: enhanced cluster.
    #[arg(long, requires = "command")]
    enhanced: bool,
    /// Inline program: a socket to bind and hand to workers (repeatable).
    #[arg(long, value_name = "URL", requires = "command")]
    listen: Vec<String>,
    /// Inline program: the command and its arguments.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

fn parse_kind(text: &str) -> Result<Kind, String> {
    match text {
        "child" => Ok(Kind::Child),
        "cluster" => Ok(Kind::Cluster),
        "once" => Ok(Kind::Once),
        other => Err(format!("{other:?} is not a kind (child, cluster, once)")),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    infant::daemon::init_logging();
    let inline = (!args.command.is_empty()).then(|| {
        let def = ProgramDef {
            kind: args.kind,
            command: Some(args.command),
            count: args.count,
            enhanced: args.enhanced.then_some(true),
            listen: (!args.listen.is_empty()).then_some(args.listen),
            ..ProgramDef::default()
        };
        (args.name, def)
    });
    infant::daemon::run(infant::daemon::Options {
        config: args.config,
        socket: args.socket,
        inline,
    })
}
