//! [`EngineHandle`]: the typed, cloneable front door of the engine task.
//!
//! Each method sends a [`Command`] and awaits the engine's answer on a oneshot.
//! Nothing here knows gRPC; the facade and embedding programs call these.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot};

use super::events::Subscription;
use super::plan::{Defined, Plan};
use super::state::{ProgramInfo, WorkerInfo};
use super::worker_msg::{FromWorker, Hello, Welcome, WorkerKey, WorkerLink};
use crate::daemon::error::{Error, Result};
use crate::daemon::spec::{ProgramDef, ProgramSpec};

/// What starting a program does about an `after` program that has failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailedDependency {
    /// Start it again: a `Start` request wants the program up, and the failure
    /// may have been fixed since.
    Retry,
    /// Do not start this program either, and record why. The daemon's own
    /// start-up does this: the dependency failed moments ago in the same
    /// sequence, and running it again would only repeat the failure.
    Refuse,
}

/// Requests to the engine task.
pub enum Command {
    /// Define programs (from the config file); refused if a name is taken.
    Define(Vec<ProgramSpec>, oneshot::Sender<Result<()>>),
    /// Define programs that are not the config file's (the inline program of
    /// infantd's command line): a reload leaves them alone.
    DefineOther(Vec<ProgramSpec>, oneshot::Sender<Result<()>>),
    /// Every defined program, as a reload sees it.
    Defined(oneshot::Sender<Vec<Defined>>),
    /// A new definition for a program of the config file.
    Redefine(Box<ProgramSpec>, oneshot::Sender<Result<()>>),
    /// Forget an idle program (or, with `check_only`, say whether it could be).
    Forget {
        /// Program name.
        name: String,
        /// Only check that nothing names it in `after`.
        check_only: bool,
        /// Reply.
        reply: oneshot::Sender<Result<()>>,
    },
    /// Publish the `reload` event.
    Announce(Plan),
    /// Start a program, defining it first if `def` is given.
    Start {
        /// Program name.
        name: String,
        /// Inline definition (boxed: it dwarfs every other command).
        def: Option<Box<ProgramDef>>,
        /// `once` jobs: reply when the job has completed.
        wait: bool,
        /// What to do about an `after` program that has failed.
        failed_dependency: FailedDependency,
        /// Reply.
        reply: oneshot::Sender<Result<ProgramInfo>>,
    },
    /// Stop a program.
    Stop {
        /// Program name.
        name: String,
        /// Overrides the stop window.
        timeout: Option<Duration>,
        /// Reply.
        reply: oneshot::Sender<Result<ProgramInfo>>,
    },
    /// Restart a program.
    Restart {
        /// Program name.
        name: String,
        /// Stop all, then start all.
        full: bool,
        /// Reply.
        reply: oneshot::Sender<Result<ProgramInfo>>,
    },
    /// Message one or every worker.
    Send {
        /// Program name.
        name: String,
        /// One worker.
        worker: Option<u64>,
        /// Bytes.
        payload: Vec<u8>,
        /// Reply: workers reached.
        reply: oneshot::Sender<Result<u32>>,
    },
    /// Signal one or every worker's process group.
    Kill {
        /// Program name.
        name: String,
        /// One worker.
        worker: Option<u64>,
        /// The signal.
        signal: Signal,
        /// Reply: groups signalled.
        reply: oneshot::Sender<Result<u32>>,
    },
    /// Resize a cluster.
    Scale {
        /// Program name.
        name: String,
        /// New size.
        count: u32,
        /// Reply.
        reply: oneshot::Sender<Result<ProgramInfo>>,
    },
    /// Program snapshots.
    List {
        /// One program, or all.
        name: Option<String>,
        /// Reply.
        reply: oneshot::Sender<Result<Vec<ProgramInfo>>>,
    },
    /// The programs that are running or starting, last started first.
    Running(oneshot::Sender<Vec<String>>),
    /// Worker snapshots.
    Workers {
        /// One program's, or all.
        name: Option<String>,
        /// Reply.
        reply: oneshot::Sender<Result<Vec<WorkerInfo>>>,
    },
    /// Event history plus live feed.
    Subscribe(oneshot::Sender<Subscription>),
    /// An SDK worker introduced itself.
    Attach {
        /// What it said.
        hello: Hello,
        /// The socket peer's pid (kernel-verified).
        peer_pid: Option<i32>,
        /// Where to send it messages.
        channel: WorkerLink,
        /// Reply.
        reply: oneshot::Sender<Result<(WorkerKey, Welcome)>>,
    },
    /// A message from an attached worker.
    FromWorker(WorkerKey, FromWorker),
    /// An attached worker's stream ended.
    Detach(WorkerKey),
    /// Stop every program in reverse start order; replies once all stopped.
    Shutdown(oneshot::Sender<()>),
    /// Take no more starts (the daemon is about to stop): programs waiting for
    /// their dependencies are given up, and stops from now on are shutdowns.
    Close(oneshot::Sender<()>),
    /// SIGKILL everything now (second signal).
    ForceShutdown,
    /// A notify-protocol datagram (`READY=1`, `STATUS=…`) from process `pid`,
    /// for a `ready = "notify"` instance.
    Notify {
        /// The sender, by the kernel's word (its credentials).
        pid: i32,
        /// The datagram's text.
        text: String,
    },
}

/// A cloneable handle on the engine task.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
    /// Program output, read without going through the engine task.
    logs: crate::daemon::logs::Logs,
}

impl EngineHandle {
    pub(super) fn new(tx: mpsc::Sender<Command>, logs: crate::daemon::logs::Logs) -> Self {
        EngineHandle { tx, logs }
    }

    /// The programs' captured output (`Logs`, metrics).
    pub fn logs(&self) -> &crate::daemon::logs::Logs {
        &self.logs
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        answer.await.map_err(|_| Error::ShuttingDown)
    }

    /// Sends a command that needs no answer.
    pub async fn tell(&self, command: Command) -> Result<()> {
        self.tx.send(command).await.map_err(|_| Error::ShuttingDown)
    }

    /// Defines configured programs.
    pub async fn define(&self, specs: Vec<ProgramSpec>) -> Result<()> {
        self.ask(|reply| Command::Define(specs, reply)).await?
    }

    /// Defines programs that are not the config file's: a reload leaves them
    /// alone.
    pub async fn define_other(&self, specs: Vec<ProgramSpec>) -> Result<()> {
        self.ask(|reply| Command::DefineOther(specs, reply)).await?
    }

    /// Every defined program, as a reload sees it.
    pub async fn defined(&self) -> Result<Vec<Defined>> {
        self.ask(Command::Defined).await
    }

    /// Gives a running or idle program its new definition from the config file;
    /// see [`super::Engine::redefine`].
    pub async fn redefine(&self, spec: ProgramSpec) -> Result<()> {
        self.ask(|reply| Command::Redefine(Box::new(spec), reply))
            .await?
    }

    /// Stops program `name` (within `timeout` if given) and forgets it. Refused
    /// before anything stops while another program names it in `after`.
    pub async fn remove(&self, name: String, timeout: Option<Duration>) -> Result<ProgramInfo> {
        self.forget(name.clone(), true).await?;
        let info = self.stop(name.clone(), timeout).await?;
        self.forget(name, false).await?;
        Ok(info)
    }

    async fn forget(&self, name: String, check_only: bool) -> Result<()> {
        self.ask(|reply| Command::Forget {
            name,
            check_only,
            reply,
        })
        .await?
    }

    /// Publishes the `reload` event with `plan`.
    pub async fn announce(&self, plan: Plan) -> Result<()> {
        self.tell(Command::Announce(plan)).await
    }

    /// Starts `name` (defined inline by `def` if given); answers once it is `ok`
    /// (a `once` job: at once, or with `wait` once it completed).
    pub async fn start(
        &self,
        name: String,
        def: Option<ProgramDef>,
        wait: bool,
    ) -> Result<ProgramInfo> {
        self.ask(|reply| Command::Start {
            name,
            def: def.map(Box::new),
            wait,
            failed_dependency: FailedDependency::Retry,
            reply,
        })
        .await?
    }

    /// Starts a configured program as one step of the daemon's start-up: answers
    /// once it is `ok`, or for a `once` job once it is launched (what needs the
    /// job waits for it through `after`; the rest need not). A program whose
    /// `after` program has failed is not started, and its status says why.
    pub async fn start_configured(&self, name: String) -> Result<ProgramInfo> {
        self.ask(|reply| Command::Start {
            name,
            def: None,
            wait: false,
            failed_dependency: FailedDependency::Refuse,
            reply,
        })
        .await?
    }

    /// Stops `name`; answers once every instance exited.
    pub async fn stop(&self, name: String, timeout: Option<Duration>) -> Result<ProgramInfo> {
        self.ask(|reply| Command::Stop {
            name,
            timeout,
            reply,
        })
        .await?
    }

    /// Restarts `name`, rolling for clusters unless `full`.
    pub async fn restart(&self, name: String, full: bool) -> Result<ProgramInfo> {
        self.ask(|reply| Command::Restart { name, full, reply })
            .await?
    }

    /// Sends `payload` to one or every attached worker of `name`.
    pub async fn send(&self, name: String, worker: Option<u64>, payload: Vec<u8>) -> Result<u32> {
        self.ask(|reply| Command::Send {
            name,
            worker,
            payload,
            reply,
        })
        .await?
    }

    /// Signals one or every worker of `name`.
    pub async fn kill(&self, name: String, worker: Option<u64>, signal: Signal) -> Result<u32> {
        self.ask(|reply| Command::Kill {
            name,
            worker,
            signal,
            reply,
        })
        .await?
    }

    /// Resizes the cluster `name`.
    pub async fn scale(&self, name: String, count: u32) -> Result<ProgramInfo> {
        self.ask(|reply| Command::Scale { name, count, reply })
            .await?
    }

    /// The programs that are running or starting (or stopping), last started
    /// first: the order to stop them in.
    pub async fn running_last_first(&self) -> Result<Vec<String>> {
        self.ask(Command::Running).await
    }

    /// Snapshots of one or every program.
    pub async fn list(&self, name: Option<String>) -> Result<Vec<ProgramInfo>> {
        self.ask(|reply| Command::List { name, reply }).await?
    }

    /// Snapshots of one program's or every worker.
    pub async fn workers(&self, name: Option<String>) -> Result<Vec<WorkerInfo>> {
        self.ask(|reply| Command::Workers { name, reply }).await?
    }

    /// The event history and live feed.
    pub async fn subscribe(&self) -> Result<Subscription> {
        self.ask(Command::Subscribe).await
    }

    /// Attaches an SDK worker.
    pub async fn attach(
        &self,
        hello: Hello,
        peer_pid: Option<i32>,
        channel: WorkerLink,
    ) -> Result<(WorkerKey, Welcome)> {
        self.ask(|reply| Command::Attach {
            hello,
            peer_pid,
            channel,
            reply,
        })
        .await?
    }

    /// Takes no more starts, restarts or scaling, ahead of a shutdown: programs
    /// keep running, waiting ones are given up, and stops from now on tell the
    /// workers it is a shutdown.
    pub async fn close(&self) -> Result<()> {
        self.ask(Command::Close).await
    }

    /// Stops everything gracefully; returns once every program stopped.
    pub async fn shutdown(&self) -> Result<()> {
        self.ask(Command::Shutdown).await
    }
}
