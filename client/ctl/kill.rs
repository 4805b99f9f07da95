//! `infantctl kill NAME[/WORKER] [SIGNAL]`: signal the process groups of workers.

use infant::control::Control;
use serde_json::json;

use crate::args::KillArgs;
use crate::output::Output;
use crate::run::Failure;

/// Sends the signal (SIGTERM by default; the daemon parses the name) and prints how
/// many process groups received it.
pub async fn kill(control: &Control, args: KillArgs, out: &mut Output) -> Result<(), Failure> {
    let target = args.target;
    let signalled = control
        .kill(&target.name, target.worker, args.signal.as_deref())
        .await?;
    if out.json {
        out.object(&json!({ "signalled": signalled }))?;
    } else {
        out.line(&format!("signalled {signalled}"))?;
    }
    Ok(())
}
