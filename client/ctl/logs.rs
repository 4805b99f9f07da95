//! `infantctl logs NAME[/WORKER] [-n N] [-f] [--out|--err]`: a program's last
//! output lines, kept in the daemon's memory, then, with `-f`, new ones as they
//! come.

use infant::control::{Control, ControlError};
use infant::proto::{LogStream, LogsRequest};
use tokio::signal::unix::{signal, SignalKind};

use crate::args::LogsArgs;
use crate::output::Output;
use crate::run::Failure;

/// Prints the lines; with `--follow`, keeps printing until Ctrl-C (a success)
/// or the daemon ends the stream (also a success: it is shutting down).
pub async fn logs(control: &Control, args: LogsArgs, out: &mut Output) -> Result<(), Failure> {
    let action = format!("read the logs of {}", args.target.name);
    // Installed before the stream opens so that no Ctrl-C falls between the two.
    let mut interrupt = args
        .follow
        .then(|| signal(SignalKind::interrupt()).ok())
        .flatten();
    let stream = match (args.out, args.err) {
        (true, _) => LogStream::Out,
        (_, true) => LogStream::Err,
        _ => LogStream::Unspecified,
    };
    let request = LogsRequest {
        name: args.target.name.clone(),
        worker: args.target.worker,
        stream: stream as i32,
        last: Some(args.last),
        follow: args.follow,
    };
    let mut lines = control.logs(request).await?;
    loop {
        let next = tokio::select! {
            next = lines.message() => next,
            _ = async {
                match interrupt.as_mut() {
                    Some(interrupt) => interrupt.recv().await,
                    None => std::future::pending().await,
                }
            } => return Ok(()),
        };
        match next.map_err(|status| ControlError::status(&action, status))? {
            Some(line) => out.log_line(&line)?,
            None => return Ok(()),
        }
    }
}
