//! `infantctl`: the command line for `infantd`'s control API.
//!
//! This file only parses arguments and hands them to [`run::run`]. The rest:
//!
//! - `args`: the command line (clap), and the checks that need no daemon;
//! - `run`: connecting, dispatching to a command, reporting failures, exit statuses;
//! - one file per command (`start`, `stop`, `restart`, `send`, `kill`, `scale`,
//!   `status`, `workers`, `events`), each a call to [`infant::control::Control`]
//!   and a reply printed through `output`;
//! - `output`: tables and human units, or one JSON object per line with `--json`.

mod args;
mod events;
mod kill;
mod output;
mod restart;
mod run;
mod scale;
mod send;
mod start;
mod status;
mod stop;
mod workers;

use std::process::ExitCode;

use clap::Parser;

// One thread is plenty for one request at a time, and starts faster.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // A usage error exits here, with clap's message and status 2.
    let cli = args::Cli::parse();
    run::run(cli).await
}
