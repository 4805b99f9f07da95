//! `infantctl completions SHELL` and `infantctl man`: generated from the same
//! clap definition that parses the command line, so they cannot drift from it.

use clap::CommandFactory;

use crate::args::Cli;
use crate::output::Output;
use crate::run::Failure;

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut Output) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "infantctl", &mut script);
    out.raw(&script)?;
    Ok(())
}

/// Prints the man page, in roff.
pub fn man(out: &mut Output) -> Result<(), Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    out.raw(&page)?;
    Ok(())
}
