//! The daemon's configured programs as one application: a [`Lifecycle`] with a
//! step per program, started each after what it names in `after` (file order
//! otherwise) and stopped in reverse.
//!
//! Each step's start hook asks the engine to start its program and waits until
//! it is `ok`; its stop hook stops it. A `once` job's step only launches it: a
//! program that names the job in `after` waits for it to complete (the engine's
//! `after` handling), and a long job holds up nothing else.
//!
//! A last step, with only a stop hook, stops the programs started over the API
//! (last started first). Stopped first, it keeps the daemon's shutdown in
//! reverse start order: those programs started after the configured ones.
//!
//! A supervisor must not treat a failed program as a failed start-up: the
//! programs that came up keep running, and respawn and `infantctl start` can
//! still bring up the rest. So a step whose program fails does not fail the
//! lifecycle (that would roll back every program started before it). The failure
//! is logged, and the engine records it in the program's status and events. The
//! programs that need it are not started either, and their status says why. A
//! failed dependency is not run again in the same start-up.
//!
//! The two exceptions fail the step, and so roll back what started:
//! - the inline program (`infantd NAME -- COMMAND…`), which is what the daemon
//!   was run for: if it cannot start, the daemon stops and exits non-zero;
//! - a start cut short because the daemon is shutting down.

use tokio::sync::broadcast::error::RecvError;

use crate::daemon::engine::EngineHandle;
use crate::daemon::error::Error;
use crate::lifecycle::{Event, Lifecycle};

/// The lifecycle of the programs `order` names, in that order; `inline` is the
/// program given on the command line, if any.
pub fn application(engine: &EngineHandle, order: Vec<String>, inline: Option<&str>) -> Lifecycle {
    let mut app = Lifecycle::new();
    let configured = order.clone();
    for name in order {
        let is_inline = inline == Some(name.as_str());
        let starter = engine.clone();
        let stopper = engine.clone();
        let (start_name, stop_name) = (name.clone(), name.clone());
        let added = app.add(
            name,
            move || start_step(starter.clone(), start_name.clone(), is_inline),
            move || {
                let (engine, name) = (stopper.clone(), stop_name.clone());
                async move {
                    match engine.stop(name, None).await {
                        // Removed by a reload (or `Remove`): stopped already.
                        Ok(_) | Err(Error::UnknownProgram(_)) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            },
        );
        // Program names are unique: the config and the inline program were
        // checked for that before anything started.
        if let Err(e) = added {
            tracing::error!("{e}");
        }
    }
    // Added last, so stopped first: what was started over the API, after these
    // programs, stops before them (the daemon stops in reverse start order).
    let engine = engine.clone();
    let added = app.add_stop(API_PROGRAMS, move || {
        let (engine, configured) = (engine.clone(), configured.clone());
        async move { stop_others(&engine, &configured).await }
    });
    if let Err(e) = added {
        tracing::error!("{e}");
    }
    log_events(&app);
    app
}

/// The title of the step that stops the programs started over the API. Program
/// names cannot contain parentheses or spaces, so it cannot clash with one.
const API_PROGRAMS: &str = "(programs started over the API)";

/// Stops the running programs that are not in `configured`, last started first.
async fn stop_others(engine: &EngineHandle, configured: &[String]) -> Result<(), Error> {
    for name in engine.running_last_first().await? {
        if !configured.contains(&name) {
            engine.stop(name, None).await?;
        }
    }
    Ok(())
}

/// Starts program `name` and waits until it is up; see the module docs for
/// which failures fail the step.
async fn start_step(engine: EngineHandle, name: String, inline: bool) -> Result<(), Error> {
    match engine.start_configured(name.clone()).await {
        Ok(info) => {
            tracing::info!(program = %name, workers = info.running, "started");
            if inline {
                // Node infant's `node index` prints this; scripts wait for it.
                let plural = if info.running == 1 { "" } else { "s" };
                println!("{name} started ({} worker{plural})", info.running);
            }
            Ok(())
        }
        Err(e @ Error::ShuttingDown) => Err(e),
        Err(e) if inline => {
            eprintln!("infantd: {e}");
            Err(e)
        }
        Err(e) => {
            tracing::error!("{e}");
            Ok(())
        }
    }
}

/// Logs the lifecycle's steps at debug level (`DEBUG=infant*`).
fn log_events(app: &Lifecycle) {
    let mut events = app.subscribe();
    tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            };
            match event {
                Event::Start { title } => tracing::debug!(program = %title, "starting in order"),
                Event::Stop { title } => tracing::debug!(program = %title, "stopping in order"),
                Event::Online => tracing::debug!("every configured program is started"),
                Event::Offline => tracing::debug!("every configured program is stopped"),
                Event::Failed { title, error, .. } => {
                    tracing::debug!(program = %title, "step failed: {error}")
                }
                _ => {}
            }
        }
    });
}
