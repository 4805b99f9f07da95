//! Printing a server stream (`events`, `logs`) until it ends or, when following,
//! until Ctrl-C: both are a success.

use infant::control::ControlError;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tonic::Streaming;

use crate::run::Failure;

/// Catches Ctrl-C while following. Made before the stream opens, so that no
/// Ctrl-C falls between the two. Without `follow` the default (die at once) is
/// right, and if installing fails the default stays too: Ctrl-C still ends us,
/// only less politely.
pub fn interrupt(follow: bool) -> Option<Signal> {
    follow
        .then(|| signal(SignalKind::interrupt()).ok())
        .flatten()
}

/// Hands each message of `stream` to `print` until the daemon ends the stream
/// or `interrupt` fires; a failed read is reported as `action`'s error.
pub async fn print_until_done<T>(
    mut stream: Streaming<T>,
    mut interrupt: Option<Signal>,
    action: &str,
    mut print: impl FnMut(&T) -> std::io::Result<()>,
) -> Result<(), Failure> {
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
        match next.map_err(|status| ControlError::status(action, status))? {
            Some(message) => print(&message)?,
            None => return Ok(()),
        }
    }
}
