//! `infantctl workers [NAME]`: running instances, as a table.

use infant::control::Control;

use crate::args::WorkersArgs;
use crate::output::Output;
use crate::run::Failure;

/// Lists the running instances of every program, or of one.
pub async fn workers(
    control: &Control,
    args: WorkersArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    let workers = control.workers(args.name.as_deref()).await?;
    out.workers(&workers)?;
    Ok(())
}
