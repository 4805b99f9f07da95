//! Node infant's Lifecycle example: one step with a start and a stop hook, event
//! handlers that log the sequence, then start and stop.
//!
//! ```text
//! cargo run --example lifecycle
//! Starting step 1
//! Startup complete
//! Stopping step 1
//! Shutdown complete
//! ```
//!
//! Node infant's `lifecycle.on(...)` handlers become a task reading
//! `Lifecycle::subscribe`; its `done(err)` callbacks become `Result`s.

use infant::lifecycle::{BoxError, Event, Lifecycle};
use tokio::sync::broadcast::error::RecvError;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let mut lifecycle = Lifecycle::new();

    // Hook some events for logging.
    let mut events = lifecycle.subscribe();
    let logger = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::Start { title }) => println!("Starting {title}"),
                Ok(Event::Stop { title }) => println!("Stopping {title}"),
                Ok(Event::Online) => println!("Startup complete"),
                Ok(Event::Offline) => println!("Shutdown complete"),
                Ok(Event::Failed { title, error, .. }) => eprintln!("{title} failed: {error}"),
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => eprintln!("({missed} events missed)"),
                // The lifecycle was dropped: every event has been read.
                Err(RecvError::Closed) => break,
            }
        }
    });

    // Add a new startup accompanied by a shutdown.
    lifecycle.add(
        "step 1",
        || async {
            // startup stuff
            Ok::<(), BoxError>(())
        },
        || async {
            // shutdown stuff
            Ok::<(), BoxError>(())
        },
    )?;

    // Start the members of the lifecycle, then stop them.
    lifecycle.start().await?;
    lifecycle.stop().await?;

    // Shutdown complete: let the logger print the last events.
    drop(lifecycle);
    logger.await?;
    Ok(())
}
