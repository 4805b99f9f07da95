//! Connects to the daemon, runs one command, and turns its outcome into an exit
//! status and, on failure, one line on stderr.

use std::io;
use std::process::ExitCode;

use infant::control::{Control, ControlError};
use tonic::Code;

use crate::args::{Cli, Command};
use crate::output::Output;
use crate::{events, kill, restart, scale, send, start, status, stop, workers};

/// The daemon accepted the request and it did what was asked.
const SUCCESS: u8 = 0;
/// The daemon refused or failed the request (FAILED_PRECONDITION, INTERNAL and any
/// other gRPC status not listed below), a job run with `start --wait` failed, or
/// the output could not be written.
const FAILED: u8 = 1;
/// Usage: the command line was wrong (clap reports it before anything is sent), or
/// the daemon rejected an argument (INVALID_ARGUMENT: a bad signal, listen URL, …).
const USAGE: u8 = 2;
/// The daemon could not be reached: no socket, connection refused, or it went away
/// during the call (UNAVAILABLE, or the connection broke mid-stream).
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
    /// Printing the reply failed.
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
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
            Failure::JobFailed { .. } | Failure::Output(_) => FAILED,
        }
    }
}

/// Runs the command `cli` names, printing to stdout; failures go to stderr as
/// `infantctl: REASON`. Returns the exit status.
pub async fn run(cli: Cli) -> ExitCode {
    let mut out = Output::new(cli.json, Box::new(io::stdout()));
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

async fn execute(cli: Cli, out: &mut Output) -> Result<(), Failure> {
    let control = Control::connect(cli.socket).await?;
    match cli.command {
        Command::Start(args) => start::start(&control, args, out).await,
        Command::Stop(args) => stop::stop(&control, args, out).await,
        Command::Restart(args) => restart::restart(&control, args, out).await,
        Command::Send(args) => send::send(&control, args, out).await,
        Command::Kill(args) => kill::kill(&control, args, out).await,
        Command::Scale(args) => scale::scale(&control, args, out).await,
        Command::Status => status::status(&control, out).await,
        Command::Workers(args) => workers::workers(&control, args, out).await,
        Command::Events(args) => events::events(&control, args, out).await,
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
