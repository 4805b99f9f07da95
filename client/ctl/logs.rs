//! `infantctl logs NAME[/WORKER] [-n N] [-f] [--out|--err]`: a program's last
//! output lines, kept in the daemon's memory, then, with `-f`, new ones as they
//! come.

use infant::control::Control;
use infant::proto::{LogStream, LogsRequest};

use crate::args::LogsArgs;
use crate::follow;
use crate::output::Output;
use crate::run::Failure;

/// Prints the lines; with `--follow`, keeps printing until Ctrl-C (a success)
/// or the daemon ends the stream (also a success: it is shutting down).
pub async fn logs(control: &Control, args: LogsArgs, out: &mut Output) -> Result<(), Failure> {
    let action = format!("read the logs of {}", args.target.name);
    let interrupt = follow::interrupt(args.follow);
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
    let lines = control.logs(request).await?;
    follow::print_until_done(lines, interrupt, &action, |line| out.log_line(line)).await
}
