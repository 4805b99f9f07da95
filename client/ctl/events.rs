//! `infantctl events [NAME] [--follow] [--no-replay] [-n N]`: the daemon's event
//! history (the last N events of it with `-n`), then, with `--follow`, new events
//! as they happen; `--no-replay` skips the history and follows.

use infant::control::{Control, ControlError};
use infant::proto::EventsRequest;
use tokio::signal::unix::{signal, SignalKind};

use crate::args::EventsArgs;
use crate::output::Output;
use crate::run::Failure;

/// Prints the retained events; with `--follow`, keeps printing until Ctrl-C (a
/// success) or the daemon ends the stream (also a success: it is shutting down).
pub async fn events(control: &Control, args: EventsArgs, out: &mut Output) -> Result<(), Failure> {
    let name = args.name.as_deref();
    let action = match name {
        Some(name) => format!("watch events of {name}"),
        None => "watch events".to_owned(),
    };
    // Installed before the stream opens so that no Ctrl-C falls between the two.
    // Without --follow the default (die at once) is right, and if installing fails
    // the default stays too: Ctrl-C still ends us, only less politely.
    // Without the history there is nothing to print but what comes next.
    let follow = args.follow || args.no_replay;
    let mut interrupt = follow
        .then(|| signal(SignalKind::interrupt()).ok())
        .flatten();
    let request = EventsRequest {
        name: name.unwrap_or_default().to_owned(),
        replay: !args.no_replay,
        follow: Some(follow),
        last: args.last,
    };
    let mut stream = control.watch(request).await?;
    loop {
        let next = tokio::select! {
            next = stream.message() => next,
            _ = async {
                match interrupt.as_mut() {
                    Some(interrupt) => interrupt.recv().await,
                    None => std::future::pending().await,
                }
            } => return Ok(()),
        };
        match next.map_err(|status| ControlError::status(&action, status))? {
            Some(event) => out.event(&event)?,
            None => return Ok(()),
        }
    }
}
