//! `infantctl status`: every program the daemon knows, as a table.

use infant::control::Control;

use crate::output::Output;
use crate::run::Failure;

/// Lists the programs in the order they were defined.
pub async fn status(control: &Control, out: &mut Output) -> Result<(), Failure> {
    let programs = control.list(None).await?;
    out.programs(&programs)?;
    Ok(())
}
