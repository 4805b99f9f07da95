//! `infantd`, the supervisor daemon (sources under `server/`), embeddable in a
//! Rust program (cargo feature `daemon`, on by default).
//!
//! The public surface is what an embedder needs: [`Supervisor`] (the engine and
//! its gRPC server), program definitions ([`ProgramDef`], [`ProgramSpec`]), the
//! config file parser ([`config`]), the snapshots the supervisor hands out
//! ([`ProgramInfo`], [`WorkerInfo`]) and the [`Error`] type. [`run`] is
//! `infantd` itself.
//!
//! # Layout (private modules)
//!
//! - `spec`: program definitions, defaults and validation; `config`: the TOML file;
//!   `env_file`: the `KEY=VALUE` files of `env_file`.
//! - `engine`: the one task that owns all supervisor state. Typed commands in,
//!   typed events out; it knows nothing of gRPC.
//! - `process`: everything that touches processes — spawn, signals, reaping,
//!   sockets handed to workers, RSS.
//! - `grpc`: the thin gRPC facade over the engine, plus health and reflection.
//! - `metrics`: `GET /metrics` for Prometheus (`--metrics-listen`).
//! - `socket`: the control socket's location, permissions and single-daemon check.
//! - `supervisor`: the engine and its gRPC server, embeddable in a Rust program.
//! - `app`: the configured programs as one `Lifecycle`, started in `after`
//!   order and stopped in reverse.
//! - `reload`: rereading the config file (`Reload`, SIGHUP) and applying the
//!   plan the engine's `plan` module computes.
//! - `run`: start-up, signals and ordered shutdown; `server/main.rs` only
//!   parses arguments and calls [`run`].
//! - `fds`: the daemon's own descriptors: the limit, raised at start, and
//!   how many are free.
//! - `logging`: log lines to stderr without ever blocking the daemon.
//! - `logs`: program output: captured through pipes, written to rotated
//!   files, kept in a tail for `infantctl logs`.
//! - `systemd`: the notify protocol towards a service manager and socket
//!   activation of the control socket.
//! - `error`: the one error type.

mod app;
pub mod config;
mod engine;
mod env_file;
mod error;
mod fds;
mod grpc;
mod logging;
mod logs;
mod metrics;
mod process;
mod reload;
mod run;
mod size;
mod socket;
mod spec;
mod supervisor;
mod systemd;

pub use engine::state::{InstanceStatus, ProgramInfo, ProgramStatus, WorkerInfo};
pub use error::{Error, Result};
pub use grpc::{BearerToken, RemoteListener};
pub use logging::LogGuard;
pub use process::reaper::ExitStatus;
pub use run::{init_logging, run, Options};
pub use spec::{
    Kind, LimitValue, ListenAddr, LogMode, ProgramDef, ProgramSpec, Ready, Restart, Rlimit,
};
pub use supervisor::{Supervisor, SupervisorOptions};
