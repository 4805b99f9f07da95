//! `infantctl status [NAME...]`: the programs the daemon knows, as a table.

use infant::control::Control;

use crate::args::StatusArgs;
use crate::output::Output;
use crate::run::Failure;

/// Lists every program in the order they were defined, or the ones named, in the
/// order named. An unknown name fails the command (and may get a suggestion).
pub async fn status(control: &Control, args: StatusArgs, out: &mut Output) -> Result<(), Failure> {
    let programs = if args.names.is_empty() {
        control.list(None).await?
    } else {
        let mut programs = Vec::with_capacity(args.names.len());
        for name in &args.names {
            match control.list(Some(name)).await {
                Ok(found) => programs.extend(found),
                Err(error) => {
                    let failure = Failure::Control(error);
                    return Err(crate::hint::suggest(control, failure, Some(name)).await);
                }
            }
        }
        programs
    };
    out.programs(&programs)?;
    Ok(())
}
