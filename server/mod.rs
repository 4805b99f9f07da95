//! `infantd`, the supervisor daemon (sources under `server/`).
//!
//! # Layout
//!
//! - [`spec`]: program definitions, defaults and validation; [`config`]: the TOML file.
//! - [`engine`]: the one task that owns all supervisor state. Typed commands in,
//!   typed events out; it knows nothing of gRPC.
//! - [`process`]: everything that touches processes — spawn, signals, reaping,
//!   sockets handed to workers, RSS.
//! - [`grpc`]: the thin gRPC facade over the engine, plus health and reflection.
//! - [`socket`]: the control socket's location, permissions and single-daemon check.
//! - [`Supervisor`]: the engine and its gRPC server, embeddable in a Rust program.
//! - [`app`]: the configured programs as one `Lifecycle`, started in `after`
//!   order and stopped in reverse.
//! - [`run`]: start-up, signals and ordered shutdown; `server/main.rs` only
//!   parses arguments and calls [`run`].
//! - [`error`]: the one error type.

mod app;
pub mod config;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod process;
mod run;
pub mod socket;
pub mod spec;
mod supervisor;

pub use run::{init_logging, run, Options};
pub use supervisor::Supervisor;
