//! `infantctl scale NAME COUNT`: change the number of workers of a cluster.

use infant::control::Control;

use crate::args::ScaleArgs;
use crate::output::Output;
use crate::progress::{self, Expect};
use crate::run::Failure;

/// Scales the cluster, waits until the change is done, and prints it.
pub async fn scale(control: &Control, args: ScaleArgs, out: &mut Output) -> Result<(), Failure> {
    let call = control.scale(&args.name, args.count);
    let expect = Expect::ScaleTo(args.count);
    let program = progress::run(control, &args.name, expect, out, call).await?;
    out.program(&program)?;
    Ok(())
}
