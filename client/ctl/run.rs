//! Connects to the daemon, runs one command, and turns its outcome into an exit
//! status and, on failure, one line on stderr.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use infant::control::{Control, ControlError};
use infant::transport::RemoteConnectError;
use tonic::Code;

use crate::args::{Cli, Command};
use crate::output::Output;
use crate::{
    events, help, hint, kill, logs, reload, remove, restart, scale, send, start, status, stop, top,
    workers,
};

/// The daemon accepted the request and it did what was asked.
const SUCCESS: u8 = 0;
/// The daemon refused or failed the request (FAILED_PRECONDITION, INTERNAL and any
/// other gRPC status not listed below), a job run with `start --wait` failed, a
/// step of a reload's plan failed, or the output could not be written.
const FAILED: u8 = 1;
/// Usage: the command line was wrong (clap reports it before anything is sent; or
/// an unusable --connect URL, --token-file or --ca-cert), or the daemon rejected an
/// argument (INVALID_ARGUMENT: a bad signal, listen URL, …).
const USAGE: u8 = 2;
/// The daemon could not be reached: no socket, connection refused, a failed TLS
/// handshake, or it went away during the call (UNAVAILABLE, or the connection
/// broke mid-stream).
const UNREACHABLE: u8 = 3;
/// No such program or worker (NOT_FOUND).
const NOT_FOUND: u8 = 4;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A control call failed; its Display names the action and the daemon's message.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// `start --wait`: the job ran and failed.
    #[error("start {name}: the job failed: {reason}")]
    JobFailed {
        /// The program.
        name: String,
        /// The program's error, or its final status when it has none.
        reason: String,
    },
    /// `reload`: the plan was applied, but some of its entries failed.
    #[error("reload: {}", failures.join("; "))]
    Reload {
        /// `program: error`, one per failed entry.
        failures: Vec<String>,
    },
    /// Printing the reply failed.
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
    /// A flag's value (the --connect URL, the --token-file) cannot be used.
    #[error("{flag} {reason}")]
    Flag {
        /// The flag, such as `--token-file`.
        flag: &'static str,
        /// What is wrong, starting with the value or file concerned.
        reason: String,
    },
    /// Nothing serves the control socket: say where we looked and what to do.
    #[error(
        "infantd is not running at {} ({reason}): start it with `infantd --config FILE` \
         (or `infantd -- CMD ARGS...`), or point --socket PATH or INFANT_SOCKET at its socket",
        path.display()
    )]
    NoDaemon {
        /// The socket that was dialled.
        path: PathBuf,
        /// What connecting reported, such as "No such file or directory".
        reason: String,
    },
    /// A failure about a program name that looks like a typo of another.
    #[error("{failure}; did you mean `{suggestion}`?")]
    Suggested {
        /// The failure itself (a NOT_FOUND).
        failure: Box<Failure>,
        /// The closest program name the daemon knows.
        suggestion: String,
    },
}

impl Failure {
    /// The documented exit status for this failure.
    fn exit_status(&self) -> u8 {
        match self {
            Failure::Control(error) if error.is_unreachable() => UNREACHABLE,
            Failure::Control(error) => match error.code() {
                Some(Code::InvalidArgument) => USAGE,
                Some(Code::NotFound) => NOT_FOUND,
                Some(_) | None => FAILED,
            },
            Failure::JobFailed { .. } | Failure::Reload { .. } | Failure::Output(_) => FAILED,
            Failure::Flag { .. } => USAGE,
            Failure::NoDaemon { .. } => UNREACHABLE,
            Failure::Suggested { failure, .. } => failure.exit_status(),
        }
    }
}

/// Runs the command `cli` names, printing to stdout; failures go to stderr as
/// `infantctl: REASON`. Returns the exit status.
pub async fn run(cli: Cli) -> ExitCode {
    let colour = colour_wanted(cli.json);
    let mut out = Output::new(cli.json, Box::new(io::stdout()))
        .colour(colour)
        .progress(io::stdout().is_terminal());
    match execute(cli, &mut out).await {
        Ok(()) => ExitCode::from(SUCCESS),
        // The reader went away (`infantctl events | head`): nobody is left to tell.
        Err(Failure::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::from(SUCCESS)
        }
        Err(failure) => {
            eprintln!("infantctl: {failure}");
            ExitCode::from(failure.exit_status())
        }
    }
}

/// Colour on a terminal only, never with `--json`, and never when `NO_COLOR` is
/// set to anything (<https://no-color.org>).
fn colour_wanted(json: bool) -> bool {
    !json
        && io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

async fn execute(cli: Cli, out: &mut Output) -> Result<(), Failure> {
    // What needs no daemon comes first.
    match &cli.command {
        Command::Completions(args) => return help::completions(args.shell, out),
        Command::Man => return help::man(out),
        _ => {}
    }
    let control = match &cli.connect {
        Some(url) => connect_remote(url, &cli).await?,
        None => Control::connect(cli.socket.clone())
            .await
            .map_err(no_daemon)?,
    };
    let named = hint::program_named(&cli.command);
    let result = match cli.command {
        Command::Start(args) => start::start(&control, *args, out).await,
        Command::Stop(args) => stop::stop(&control, args, out).await,
        Command::Restart(args) => restart::restart(&control, args, out).await,
        Command::Send(args) => send::send(&control, args, out).await,
        Command::Kill(args) => kill::kill(&control, args, out).await,
        Command::Scale(args) => scale::scale(&control, args, out).await,
        Command::Reload(args) => reload::reload(&control, args, out).await,
        Command::Remove(args) => remove::remove(&control, args, out).await,
        Command::Status(args) => status::status(&control, args, out).await,
        Command::Workers(args) => workers::workers(&control, args, out).await,
        Command::Events(args) => events::events(&control, args, out).await,
        Command::Logs(args) => logs::logs(&control, args, out).await,
        Command::Top(args) => top::top(&control, args, out).await,
        Command::Completions(_) | Command::Man => Ok(()),
    };
    match result {
        Err(failure) => Err(hint::suggest(&control, failure, named.as_deref()).await),
        Ok(()) => Ok(()),
    }
}

/// A local socket nobody serves (no file, or nobody listening) means the daemon is
/// not running; other connection failures (permissions, say) keep their own words.
fn no_daemon(error: ControlError) -> Failure {
    let ControlError::Connect(connect) = &error else {
        return Failure::Control(error);
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&connect.source);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            if matches!(
                io.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) {
                return Failure::NoDaemon {
                    path: connect.path.clone(),
                    reason: match io.kind() {
                        io::ErrorKind::NotFound => "no socket there".to_owned(),
                        _ => "nothing listens on the socket".to_owned(),
                    },
                };
            }
        }
        source = cause.source();
    }
    Failure::Control(error)
}

/// Connects to `url` with the token of --token-file and the CA of --ca-cert.
async fn connect_remote(url: &str, cli: &Cli) -> Result<Control, Failure> {
    // clap makes --connect require --token-file; this is only a backstop.
    let Some(token_file) = &cli.token_file else {
        return Err(flag("--connect", "needs --token-file FILE"));
    };
    let token = read("--token-file", token_file)?;
    let token = String::from_utf8_lossy(&token);
    let token = token.trim();
    if token.is_empty() {
        return Err(flag(
            "--token-file",
            format!("{}: the file is empty", token_file.display()),
        ));
    }
    let ca = match &cli.ca_cert {
        Some(path) => Some(read("--ca-cert", path)?),
        None => None,
    };
    Control::connect_remote(url, token, ca.as_deref())
        .await
        .map_err(|error| match error {
            ControlError::Remote(RemoteConnectError::Url { .. }) => {
                flag("--connect", error.to_string())
            }
            ControlError::Remote(RemoteConnectError::CaCert { reason }) => match &cli.ca_cert {
                Some(path) => flag("--ca-cert", format!("{}: {reason}", path.display())),
                None => flag("--ca-cert", reason),
            },
            ControlError::Remote(RemoteConnectError::Roots { reason }) => {
                flag("--connect", format!("{url}: {reason} with --ca-cert FILE"))
            }
            ControlError::Token(reason) => flag(
                "--token-file",
                format!("{}: {reason}", token_file.display()),
            ),
            other => Failure::Control(other),
        })
}

/// The content of the file a flag names.
fn read(name: &'static str, path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|error| flag(name, format!("{}: {error}", path.display())))
}

fn flag(flag: &'static str, reason: impl Into<String>) -> Failure {
    Failure::Flag {
        flag,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;

    fn status_of(code: Code) -> u8 {
        Failure::Control(ControlError::status("x", Status::new(code, "m"))).exit_status()
    }

    #[test]
    fn exit_statuses_follow_the_grpc_code() {
        assert_eq!(status_of(Code::FailedPrecondition), FAILED);
        assert_eq!(status_of(Code::Internal), FAILED);
        assert_eq!(status_of(Code::InvalidArgument), USAGE);
        assert_eq!(status_of(Code::Unavailable), UNREACHABLE);
        assert_eq!(status_of(Code::NotFound), NOT_FOUND);
    }
}
