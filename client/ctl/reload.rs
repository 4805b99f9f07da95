//! `infantctl reload [--dry-run]`: reread the daemon's config file and apply
//! the difference.

use infant::control::Control;

use crate::args::ReloadArgs;
use crate::output::Output;
use crate::run::Failure;

/// Asks for the reload, waits until the plan has been applied (or, with
/// `--dry-run`, only computed), and prints the plan. A failed entry fails the
/// command, with every failure on stderr.
pub async fn reload(control: &Control, args: ReloadArgs, out: &mut Output) -> Result<(), Failure> {
    let reply = control.reload(args.dry_run).await?;
    out.plan(&reply.plan)?;
    let failures: Vec<String> = reply
        .plan
        .iter()
        .filter(|entry| !entry.error.is_empty())
        .map(|entry| format!("{}: {}", entry.program, entry.error))
        .collect();
    if !failures.is_empty() {
        return Err(Failure::Reload { failures });
    }
    if args.dry_run && !out.json {
        out.line("dry run: nothing was changed")?;
    }
    Ok(())
}
