//! `infantctl stop NAME [--timeout DUR]`: stop a program gracefully.

use infant::control::Control;

use crate::args::StopArgs;
use crate::output::Output;
use crate::progress::{self, Expect};
use crate::run::Failure;

/// Stops the program, waits until every instance has exited, and prints it.
pub async fn stop(control: &Control, args: StopArgs, out: &mut Output) -> Result<(), Failure> {
    let call = control.stop(&args.name, args.timeout);
    let program = progress::run(control, &args.name, Expect::StopAll, out, call).await?;
    out.program(&program)?;
    Ok(())
}
