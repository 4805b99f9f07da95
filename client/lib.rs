//! infant: a process supervisor driven over gRPC.
//!
//! # Features
//!
//! With default features off (`infant = { version = "0.1", default-features =
//! false }`) this crate is what a worker links: [`worker`], [`control`],
//! [`lifecycle`] and the [`proto`] types, over plain gRPC on Unix sockets.
//!
//! - `tls`: the control client can reach a remote daemon over `https://`.
//! - `daemon` (default): `infant::daemon`, the embeddable supervisor, and `infantd`.
//! - `ctl` (default): the `infantctl` command line.
//!
//! # Layout
//!
//! - [`proto`]: code generated from `proto/infant.proto` (package `infant.v1`).
//! - [`worker`]: the worker SDK — graceful startup and shutdown, heartbeats and
//!   messages for programs supervised by `infantd`.
//! - [`control`]: a typed client for the daemon's control API.
//! - [`lifecycle`]: ordered startup and shutdown steps, infant's `Lifecycle`.
//! - `daemon` (feature `daemon`): the supervisor itself (sources under
//!   `server/`), embeddable in a Rust program, and the `infantd` entry point.
//! - [`paths`], [`transport`]: the socket location and Unix-socket channels that
//!   the pieces above share.

#![warn(missing_docs)]

pub mod codec;
pub mod control;
#[cfg(feature = "daemon")]
#[path = "../server/mod.rs"]
pub mod daemon;
pub mod lifecycle;
pub mod names;
pub mod paths;
pub mod size;
mod text;
pub mod transport;
pub mod worker;

/// Code generated from `proto/infant.proto`.
pub mod proto {
    #![allow(missing_docs)]
    tonic::include_proto!("infant.v1");

    /// The encoded descriptor set of `infant.proto`, served for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("infant_descriptor");
}
