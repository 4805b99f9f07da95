//! `infantctl stop NAME [--timeout DUR]`: stop a program gracefully.

use infant::control::Control;

use crate::args::StopArgs;
use crate::output::Output;
use crate::run::Failure;

/// Stops the program, waits until every instance has exited, and prints it.
pub async fn stop(control: &Control, args: StopArgs, out: &mut Output) -> Result<(), Failure> {
    let program = control.stop(&args.name, args.timeout).await?;
    out.program(&program)?;
    Ok(())
}
