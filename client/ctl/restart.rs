//! `infantctl restart NAME [--full]`: rolling restart, or stop-all-then-start-all.

use infant::control::Control;

use crate::args::RestartArgs;
use crate::output::Output;
use crate::progress::{self, Expect};
use crate::run::Failure;

/// Restarts the program and prints it.
pub async fn restart(
    control: &Control,
    args: RestartArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    let call = control.restart(&args.name, args.full);
    let program = progress::run(control, &args.name, Expect::ReplaceAll, out, call).await?;
    out.program(&program)?;
    Ok(())
}
