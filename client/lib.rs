//! infant: a process supervisor driven over gRPC.
//!
//! # Layout
//!
//! - [`proto`]: code generated from `proto/infant.proto` (package `infant.v1`).
//! - [`worker`]: the worker SDK — graceful startup and shutdown, heartbeats and
//!   messages for programs supervised by `infantd`.
//! - [`control`]: a typed client for the daemon's control API.
//! - [`lifecycle`]: ordered startup and shutdown steps, infant's `Lifecycle`.
//! - [`daemon`]: the supervisor itself (sources under `server/`): the engine, its
//!   gRPC facade and the `infantd` entry point, embeddable in a Rust program.
//! - [`paths`], [`transport`]: the socket location and Unix-socket channels that
//!   the pieces above share.

pub mod codec;
pub mod control;
#[path = "../server/mod.rs"]
pub mod daemon;
pub mod lifecycle;
pub mod names;
pub mod paths;
pub mod transport;
pub mod worker;

/// Code generated from `proto/infant.proto`.
pub mod proto {
    #![allow(missing_docs)]
    tonic::include_proto!("infant.v1");

    /// The encoded descriptor set of `infant.proto`, served for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("infant_descriptor");
}
