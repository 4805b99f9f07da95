//! The master side shared by the seed's examples: like Node's cluster module,
//! each example program is both the master and its own workers. Run by you, it
//! embeds an infant [`Supervisor`] and supervises itself; run by infant (with
//! `INFANT_WORKER_ID` set), it is a worker.

// Each example uses only part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

use infant::daemon::ProgramDef;
use infant::daemon::Supervisor;
use tokio::signal::unix::{signal, SignalKind};

/// True when infant started this process as a worker.
pub fn is_worker() -> bool {
    std::env::var_os("INFANT_WORKER_ID").is_some()
}

/// This program's own path, to run as the workers' command.
pub fn this_program() -> std::io::Result<Vec<String>> {
    Ok(vec![std::env::current_exe()?.display().to_string()])
}

/// A private control socket for the example's embedded supervisor.
fn socket_dir() -> PathBuf {
    std::env::temp_dir().join(format!("infant-example-{}", std::process::id()))
}

/// Starts `def` as program `name` under an embedded supervisor and prints
/// `started`; with `until_signal`, serves until SIGINT/SIGTERM; then stops
/// everything and prints `stopped`. (`def.command` defaults to this program.)
pub async fn supervise(
    name: &str,
    mut def: ProgramDef,
    wait_for_job: bool,
    until_signal: bool,
    started: &str,
    stopped: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    if def.command.is_none() {
        def.command = Some(this_program()?);
    }
    let dir = socket_dir();
    let supervisor = Supervisor::start(&dir.join("infantd.sock")).await?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let result = supervisor
        .start_program(name, Some(def), wait_for_job)
        .await;
    let outcome = match result {
        Ok(info) if !info.error.is_empty() => Err(info.error.into()),
        Ok(_) => {
            println!("{started}");
            if until_signal {
                println!(
                    "(Ctrl-C to stop; infantctl --socket {} status)",
                    supervisor.socket().display()
                );
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    };
    supervisor.shutdown().await;
    let _ = std::fs::remove_dir(&dir);
    if outcome.is_ok() && !stopped.is_empty() {
        println!("{stopped}");
    }
    outcome
}
