//! `infantd`: parses the command line and runs the daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use infant::daemon::{Kind, LogMode, ProgramDef};

/// The infant supervisor daemon, in the foreground.
///
/// With `--config`, supervises the programs of a TOML file. With a command after
/// `--`, supervises that one program (the inline form), like Node infant's `node index`.
/// The control API is served on a Unix socket, and with `--control-listen`, over
/// TCP too (TLS and a bearer token).
#[derive(Parser, Debug)]
#[command(name = "infantd", version, about)]
struct Args {
    /// TOML config file with `[program.NAME]` tables.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Control socket (default: $INFANT_SOCKET, $XDG_RUNTIME_DIR/infant/infantd.sock,
    /// /run/infant/infantd.sock for root, or /tmp/infant-$UID/infantd.sock). A
    /// socket passed by socket activation (LISTEN_FDS) is served instead.
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
    /// Inline program: where its output goes: inherit (this terminal, the
    /// default for the inline form), file (NAME.out.log and NAME.err.log in the
    /// log folder) or off.
    #[arg(long, value_name = "MODE", value_parser = parse_log, requires = "command")]
    log: Option<LogMode>,
    /// Inline program: the command and its arguments.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
    /// Also serve the control API over TCP on this address, over TLS, to callers
    /// that present the token of --token-file.
    #[arg(long, value_name = "HOST:PORT", requires = "token_file")]
    control_listen: Option<String>,
    /// Remote control: file holding the bearer token (mode 0600 or stricter).
    #[arg(long, value_name = "FILE", requires = "control_listen")]
    token_file: Option<PathBuf>,
    /// Remote control: the server's PEM certificate chain.
    #[arg(long, value_name = "FILE", requires_all = ["control_listen", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// Remote control: the PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires_all = ["control_listen", "tls_cert"])]
    tls_key: Option<PathBuf>,
    /// Remote control without TLS: plain TCP, allowed only on a loopback address.
    #[arg(long, requires = "control_listen", conflicts_with_all = ["tls_cert", "tls_key"])]
    insecure_plaintext: bool,
    /// Serve the standard gRPC health service (grpc.health.v1) alone, over plain
    /// TCP, on this address: per-program statuses for probes; no control API.
    #[arg(long, value_name = "HOST:PORT")]
    health_listen: Option<String>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics (a loopback address
    /// unless --metrics-behind-proxy).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<String>,
    /// Allow a non-loopback --metrics-listen address: the page has no
    /// authentication, so a proxy in front of it must control access.
    #[arg(long, requires = "metrics_listen")]
    metrics_behind_proxy: bool,
    /// Remote control: connections served at once (default 256). More wait in the
    /// kernel's queue until one closes; so do all new ones while the daemon has
    /// few file descriptors left, whatever this says. A connection that sends
    /// nothing for 60 s is closed (live clients answer the server's pings), and
    /// one that has not finished its TLS handshake within 10 s too.
    #[arg(long, value_name = "N", requires = "control_listen")]
    max_remote_connections: Option<usize>,
    /// Folder of the programs' log files, NAME.out.log and NAME.err.log (default:
    /// `log_dir` in the config's `[daemon]` table, $XDG_STATE_HOME/infant/logs,
    /// /var/log/infant for root, or ~/.local/state/infant/logs).
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
}

fn parse_kind(text: &str) -> Result<Kind, String> {
    match text {
        "child" => Ok(Kind::Child),
        "cluster" => Ok(Kind::Cluster),
        "once" => Ok(Kind::Once),
        other => Err(format!("{other:?} is not a kind (child, cluster, once)")),
    }
}

fn parse_log(text: &str) -> Result<LogMode, String> {
    LogMode::parse(text).ok_or_else(|| format!("{text:?} is not a log mode (file, inherit, off)"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let inline = (!args.command.is_empty()).then(|| {
        let def = ProgramDef {
            kind: args.kind,
            command: Some(args.command),
            count: args.count,
            enhanced: args.enhanced.then_some(true),
            listen: (!args.listen.is_empty()).then_some(args.listen),
            // In the foreground, like `node index`, output shows where it runs.
            log: Some(args.log.unwrap_or(LogMode::Inherit)),
            ..ProgramDef::default()
        };
        (args.name, def)
    });
    infant::daemon::run(infant::daemon::Options {
        config: args.config,
        socket: args.socket,
        inline,
        control_listen: args.control_listen,
        token_file: args.token_file,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        insecure_plaintext: args.insecure_plaintext,
        health_listen: args.health_listen,
        metrics_listen: args.metrics_listen,
        metrics_behind_proxy: args.metrics_behind_proxy,
        max_remote_connections: args.max_remote_connections,
        log_dir: args.log_dir,
    })
}
