//! `infantctl`: the command line for `infantd`'s control API.
//!
//! This file only parses arguments and hands them to [`run::run`]. The rest:
//!
//! - `args`: the command line (clap), and the checks that need no daemon;
//! - `run`: connecting, dispatching to a command, reporting failures, exit statuses;
//! - one file per command (`start`, `stop`, `restart`, `send`, `kill`, `scale`,
//!   `reload`, `remove`, `status`, `workers`, `events`), each a call to [`infant::control::Control`]
//!   and a reply printed through `output`;
//! - `progress`: the steps of a long stop, restart or scale, from the event stream;
//! - `top`: the live view (ratatui);
//! - `help`: completions and the man page; `hint`: suggestions and tips;
//! - `output`: tables and human units, or one JSON object per line with `--json`.

mod args;
mod events;
mod follow;
mod help;
mod hint;
mod kill;
mod logs;
mod output;
mod progress;
mod reload;
mod remove;
mod restart;
mod run;
mod scale;
mod send;
mod start;
mod status;
mod stop;
mod top;
mod workers;

use std::process::ExitCode;

use clap::Parser;

// One thread is plenty for one request at a time, and starts faster.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // A usage error exits here, with clap's message (and a tip where a common
    // mistake is recognised) and status 2.
    let argv: Vec<String> = std::env::args_os()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let cli = match args::Cli::try_parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(error) => hint::usage(error, &argv).exit(),
    };
    run::run(cli).await
}
