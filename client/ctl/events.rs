//! `infantctl events [NAME] [--follow] [--no-replay] [-n N]`: the daemon's event
//! history (the last N events of it with `-n`), then, with `--follow`, new events
//! as they happen; `--no-replay` skips the history and follows.

use infant::control::Control;
use infant::proto::EventsRequest;

use crate::args::EventsArgs;
use crate::follow;
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
    // Without the history there is nothing to print but what comes next.
    let follow = args.follow || args.no_replay;
    let interrupt = follow::interrupt(follow);
    let request = EventsRequest {
        name: name.unwrap_or_default().to_owned(),
        replay: !args.no_replay,
        follow: Some(follow),
        last: args.last,
    };
    let stream = control.watch(request).await?;
    follow::print_until_done(stream, interrupt, &action, |event| out.event(event)).await
}
