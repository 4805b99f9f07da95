//! The end-to-end tests' own small framework: a real `infantd`, the project's
//! own `Control` client, an event recorder, deadline-bound waits and process
//! checks. A test reads as its intent:
//!
//! ```ignore
//! let daemon = Daemon::start(&[]).await;            // daemon.rs
//! let events = Recorder::new(&daemon).await;        // events.rs
//! let control = daemon.control().await;             // infant::control::Control
//! control.start("web", Some(http_cluster(2)), false).await.expect("start web");
//! let pids = control.ok_pids("web").await;          // control.rs (Queries)
//! events.wait_for("web ok", |e| is(e, EventKind::Status)).await;
//! assert!(daemon.stop().await.success());
//! wait_gone(&pids, DEADLINE).await;                 // procs.rs: no survivors
//! ```
//!
//! - `daemon.rs`: the [`Daemon`] fixture (private folder and socket, clients,
//!   `infantctl`, a clean end however the test ends).
//! - `control.rs`: [`Queries`], test questions on [`infant::control::Control`].
//! - `raw.rs`: the same questions on the generated client, for tests that send
//!   what `Control` would not.
//! - `events.rs`: the event [`Recorder`] and its waits.
//! - `wait.rs`: [`DEADLINE`], [`wait_until`], [`wait_child`]: every wait ends as
//!   soon as its condition holds and fails the test past a generous deadline.
//! - `procs.rs`: process checks read from `/proc` (zombies, children, groups,
//!   no survivors).
//! - `programs.rs`: program specs and the shared application config [`APP`].
//! - `http.rs`: HTTP clients and a bounded [`Load`] for serving tests.
//! - `paths.rs`: binaries, short temp folders, free ports.
//! - `notify.rs`: a fake service manager's [`NotifySocket`].
//!
//! A test file declares `pub mod common;`. Every test binary compiles the whole
//! harness and uses a part of it; as a public module of the binary, the part it
//! does not use is not dead code there, so no `allow(dead_code)` hides a helper
//! that nothing uses at all.

mod control;
mod daemon;
mod events;
mod http;
mod notify;
mod paths;
mod procs;
mod programs;
mod raw;
mod wait;

pub use control::Queries;
pub use daemon::{daemon_with_config, Daemon};
pub use events::{describe, is, Recorder};
pub use http::{http_get, KeepAlive, Load, LoadTotals};
pub use notify::NotifySocket;
pub use paths::{example_bin, free_port, infantctl_bin, infantd_bin, short_tempdir};
pub use procs::{children_of, descendants, exists, group_members, running, state, wait_gone};
pub use programs::{echo_spec, http_cluster, spec, APP, TREE};
pub use raw::{listen_addr, ok_pids, start_program, start_program_result, wait_program, workers};
pub use wait::{
    poll, poll_blocking, stop_child, wait_child, wait_child_blocking, wait_until, DEADLINE,
};
