//! `infantctl events [NAME] [--follow]`: the daemon's event history, then, with
//! `--follow`, new events as they happen.

use infant::control::{Control, ControlError};
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
    let mut interrupt = args
        .follow
        .then(|| signal(SignalKind::interrupt()).ok())
        .flatten();
    let mut stream = control.events(name, true, args.follow).await?;
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
