//! `infantctl send NAME[/WORKER] TEXT`: a message to a program's workers.

use infant::control::Control;
use serde_json::json;

use crate::args::SendArgs;
use crate::output::Output;
use crate::run::Failure;

/// Sends the text as the payload and prints how many workers it reached.
pub async fn send(control: &Control, args: SendArgs, out: &mut Output) -> Result<(), Failure> {
    let target = args.target;
    let delivered = control
        .send(&target.name, target.worker, args.text.into_bytes())
        .await?;
    if out.json {
        out.object(&json!({ "delivered": delivered }))?;
    } else {
        let plural = if delivered == 1 { "" } else { "s" };
        out.line(&format!("delivered to {delivered} worker{plural}"))?;
    }
    Ok(())
}
