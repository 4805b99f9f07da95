//! `infantctl remove NAME [--timeout DUR]`: stop a program and forget it.

use infant::control::Control;
use serde_json::json;

use crate::args::RemoveArgs;
use crate::output::Output;
use crate::run::Failure;

/// Stops the program gracefully, forgets it, and says so.
pub async fn remove(control: &Control, args: RemoveArgs, out: &mut Output) -> Result<(), Failure> {
    let info = control.remove(&args.name, args.timeout).await?;
    if out.json {
        out.object(&json!({ "name": info.name, "removed": true }))?;
    } else {
        out.line(&format!("{} removed", info.name))?;
    }
    Ok(())
}
