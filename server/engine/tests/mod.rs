//! Unit tests of the engine's state machine, on a fake operating system
//! ([`fake::Fake`]) and tokio's paused clock: every timer (start grace, stop
//! window, backoff, job timeout, heartbeat) fires exactly when due, and a test
//! runs in milliseconds. The end-to-end tests in `tests/` prove the same
//! behaviour with real processes.

mod fake;
mod fields;
mod jobs;
mod order;
mod redefine;
mod respawn;
mod scaling;
mod stop;
mod waiters;

use std::time::Duration;

use nix::unistd::Pid;
use tokio::sync::mpsc;

use self::fake::{Fake, Proc};
use super::state::ProgramInfo;
use super::{EngineConfig, EngineHandle};
use crate::daemon::error::Result;
use crate::daemon::process::contain::Containment;
use crate::daemon::process::reaper::ExitStatus;
use crate::daemon::spec::{Kind, ProgramDef};

/// Longer than anything a test waits for on the paused clock.
const PATIENCE: Duration = Duration::from_secs(3600);

/// An engine on a fake OS.
struct Harness {
    engine: EngineHandle,
    fake: Fake,
    spawns: tokio::sync::Mutex<mpsc::UnboundedReceiver<Proc>>,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    fn new() -> Harness {
        let (fake, os, exits, spawns) = Fake::new();
        let config = EngineConfig {
            socket: "/nonexistent/infant.sock".into(),
            trim_memory: false,
            notify_socket: None,
            worker_socket: None,
            logs: crate::daemon::logs::Logs::new(None),
        };
        let (engine, task) = super::spawn_with(config, os, Containment::new(None, None), exits);
        Harness {
            engine,
            fake,
            spawns: tokio::sync::Mutex::new(spawns),
            task,
        }
    }

    async fn start(&self, name: &str, def: ProgramDef) -> Result<ProgramInfo> {
        self.engine.start(name.into(), Some(def), false).await
    }

    /// Starts `name` and panics unless it comes up.
    async fn started(&self, name: &str, def: ProgramDef) -> ProgramInfo {
        self.start(name, def)
            .await
            .unwrap_or_else(|e| panic!("start {name}: {e}"))
    }

    async fn stop(&self, name: &str) -> Result<ProgramInfo> {
        self.engine.stop(name.into(), None).await
    }

    async fn info(&self, name: &str) -> ProgramInfo {
        let mut list = self.engine.list(Some(name.into())).await.expect("list");
        list.remove(0)
    }

    /// The next process spawned (of any program).
    async fn next_spawn(&self) -> Proc {
        let mut spawns = self.spawns.lock().await;
        tokio::time::timeout(PATIENCE, spawns.recv())
            .await
            .expect("a spawn within the patience")
            .expect("the spawn feed")
    }

    /// Whether a spawn is already waiting to be taken.
    fn spawned_meanwhile(&self) -> Option<Proc> {
        self.spawns.try_lock().ok()?.try_recv().ok()
    }

    /// Ends `pid` with exit code `code`, as a crash.
    fn crash(&self, pid: Pid, code: i32) {
        assert!(
            self.fake.end(pid, ExitStatus::Code(code)),
            "{pid} was running"
        );
    }

    /// The running pids of `program`.
    fn pids(&self, program: &str) -> Vec<Pid> {
        self.fake.running(program).iter().map(|p| p.pid).collect()
    }

    async fn shut_down(self) {
        self.engine.shutdown().await.expect("shutdown");
        let _ = self.task.await;
        assert!(
            self.fake.all_running().is_empty(),
            "nothing outlives the engine"
        );
    }
}

/// A definition of `kind` with a quick start grace; the rest default.
fn def(kind: Kind) -> ProgramDef {
    ProgramDef {
        kind: Some(kind),
        command: Some(vec!["app".into()]),
        start_grace: Some(Duration::from_millis(100)),
        ..ProgramDef::default()
    }
}

/// A cluster of `count` workers.
fn cluster(count: u32) -> ProgramDef {
    ProgramDef {
        count: Some(count),
        ..def(Kind::Cluster)
    }
}

/// Milliseconds from `a` to `b`.
fn ms(a: tokio::time::Instant, b: tokio::time::Instant) -> u128 {
    b.duration_since(a).as_millis()
}
