//! [`Supervisor`]: the daemon embedded in a Rust program — the engine plus its
//! gRPC front end on a Unix socket (and, if asked, the control API over TCP too),
//! without `infantd`'s config file and signal handling. `infantd` itself is built
//! on it (`run.rs`), and so is the `hello` example, which like Node infant's
//! `index.js` is both the master and its workers.
//!
//! Embedding makes the program a child subreaper and gives the engine all child
//! reaping (see [`crate::daemon::process::reaper`]): do not run other child
//! processes with `std::process`/`tokio::process` and wait for them in the same
//! program. Instances die with the thread that forked them (their parent-death
//! signal), so run the supervisor on a runtime whose threads live as long as it:
//! a current-thread runtime, or the main multi-thread runtime.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::engine::state::{ProgramInfo, WorkerInfo};
use super::engine::{self, Command, EngineConfig, EngineHandle};
use super::error::{Error, Result};
use super::grpc::{RemoteListener, RpcStats};
use super::process::contain::Containment;
use super::spec::ProgramDef;
use super::{grpc, process, socket, systemd};

/// How long open streams get to close at shutdown before the server is dropped.
const SERVE_DEADLINE: Duration = Duration::from_secs(2);

/// How long the programs' last output gets to reach their log files at shutdown.
const LOG_DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// A gRPC server task.
type ServerTask = JoinHandle<std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>>;

/// How a [`Supervisor`] runs, beyond its control socket.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct SupervisorOptions {
    /// Also serve the control API (not the worker channel) over TCP, to callers
    /// that present its token.
    pub remote: Option<RemoteListener>,
    /// After each burst of activity (a start, a stop) settles, drop this
    /// process's cold code, clean read-only file mappings and free heap pages
    /// from its resident set. Off by default: it acts on the whole process, so
    /// only a program that is nothing but the supervisor (as `infantd` is) should
    /// turn it on.
    pub trim_memory: bool,
    /// `infantd`'s cgroups and guardian, set up before its runtime started;
    /// others get cgroups (when available) and no guardian.
    pub(crate) containment: Option<Containment>,
    /// A control socket already bound and listening (socket activation): served
    /// instead of binding one at the path given to [`Supervisor::start_with`],
    /// which must be its path. Its file is left in place at shutdown: it belongs
    /// to whoever bound it.
    pub control_listener: Option<std::os::unix::net::UnixListener>,
    /// Also serve the standard health service alone (no control API, no token)
    /// over plain TCP on this address, for probes such as kubelet's.
    pub health_listen: Option<SocketAddr>,
    /// Where `Reload` requests go: `infantd`'s config file reloads.
    pub(crate) reload: Option<crate::daemon::reload::ReloadHandle>,
    /// The folder of the programs' log files (`NAME.out.log`, `NAME.err.log`).
    /// Without one, programs with `log = "file"` (the default) write to this
    /// process's stdout and stderr, as `log = "inherit"` does.
    pub log_dir: Option<PathBuf>,
}

impl SupervisorOptions {
    /// The defaults: no remote control, no memory trimming.
    pub fn new() -> Self {
        SupervisorOptions::default()
    }

    /// Serves the control API over TCP too (see [`SupervisorOptions::remote`]).
    pub fn remote(mut self, remote: RemoteListener) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Turns memory trimming on or off (see [`SupervisorOptions::trim_memory`]).
    pub fn trim_memory(mut self, on: bool) -> Self {
        self.trim_memory = on;
        self
    }

    /// Writes the programs' output to log files in `dir` (see
    /// [`SupervisorOptions::log_dir`]).
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }
}

/// A running supervisor: engine, control socket and worker channel.
pub struct Supervisor {
    engine: EngineHandle,
    socket: PathBuf,
    /// The socket file as bound, removed at shutdown only if it is still ours;
    /// `None` for a socket passed by the service manager, which is not ours.
    bound: Option<socket::BoundPath>,
    engine_task: JoinHandle<()>,
    server: ServerTask,
    /// The control API over TCP, if asked for: its bound address and server.
    remote: Option<(SocketAddr, ServerTask)>,
    stop_serving: CancellationToken,
    /// The health service over TCP, if asked for: its bound address and server.
    health: Option<(SocketAddr, ServerTask)>,
    /// The worker channel alone, on an abstract socket (see
    /// [`grpc::serve_workers`]); a root daemon's only.
    workers: Option<ServerTask>,
    rpc_stats: Arc<RpcStats>,
}

impl Supervisor {
    /// Binds the control socket at `socket` (folder 0700, socket 0600; an error if
    /// another daemon serves it) and starts the engine and the gRPC server on the
    /// current tokio runtime.
    pub async fn start(socket: &Path) -> Result<Supervisor> {
        Supervisor::start_with(socket, SupervisorOptions::default()).await
    }

    /// Like [`Supervisor::start`], with `options`. With a remote listener, both
    /// servers stop together, at shutdown.
    pub async fn start_with(socket: &Path, options: SupervisorOptions) -> Result<Supervisor> {
        // Workers get this path as `INFANT_SOCKET` and may run in another folder.
        let socket = &std::path::absolute(socket).map_err(|e| Error::Socket {
            path: socket.to_path_buf(),
            reason: format!("cannot make the path absolute: {e}"),
        })?;
        let SupervisorOptions {
            remote,
            trim_memory,
            containment,
            control_listener,
            health_listen,
            reload,
            log_dir,
        } = options;
        let logs = crate::daemon::logs::Logs::new(log_dir);
        let containment =
            containment.unwrap_or_else(|| Containment::new(process::cgroup::Tree::create(), None));
        process::become_subreaper().map_err(|e| Error::io("PR_SET_CHILD_SUBREAPER", e))?;
        // TCP first: if its port is taken, nothing else has been set up yet.
        let remote = match remote {
            Some(remote) => {
                let address = remote.address();
                let listener = TcpListener::bind(address).await.map_err(|e| {
                    Error::io(format!("binding the remote control address {address}"), e)
                })?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| Error::io(format!("the remote control address {address}"), e))?;
                Some((listener, bound, remote))
            }
            None => None,
        };
        let health_listener = match health_listen {
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .map_err(|e| Error::io(format!("binding the health address {address}"), e))?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| Error::io(format!("the health address {address}"), e))?;
                Some((listener, bound))
            }
            None => None,
        };
        // An activated socket's file belongs to whoever bound it: never removed.
        let (listener, bound) = match control_listener {
            Some(listener) => {
                let listener =
                    tokio::net::UnixListener::from_std(listener).map_err(|e| Error::Socket {
                        path: socket.to_path_buf(),
                        reason: format!("the socket passed by the service manager: {e}"),
                    })?;
                (listener, None)
            }
            None => {
                let (listener, bound) = socket::bind(socket)?;
                (listener, Some(bound))
            }
        };
        let notify = systemd::NotifyListener::bind()?;
        // Only a root daemon runs programs as other users, so only it needs the
        // worker-only socket that any local user can reach.
        let worker_listener = if nix::unistd::geteuid().is_root() {
            Some(bind_worker_socket()?)
        } else {
            None
        };
        let worker_socket = worker_listener.as_ref().map(|(_, name)| name.clone());
        let (engine, engine_task) = engine::spawn(
            EngineConfig {
                socket: socket.to_path_buf(),
                trim_memory,
                notify_socket: Some(notify.address().to_owned()),
                worker_socket,
                logs,
            },
            containment,
        )
        .map_err(|e| Error::io("installing the SIGCHLD handler", e))?;
        tokio::spawn(notify.forward(engine.clone()));
        let stop_serving = CancellationToken::new();
        let health = grpc::health::track(engine.clone());
        let rpc_stats = Arc::new(RpcStats::default());
        let server = tokio::spawn(grpc::serve(
            engine.clone(),
            listener,
            health.clone(),
            Arc::clone(&rpc_stats),
            reload.clone(),
            stop_serving.clone().cancelled_owned(),
        ));
        let workers = worker_listener.map(|(listener, _)| {
            tokio::spawn(grpc::serve_workers(
                engine.clone(),
                listener,
                stop_serving.clone().cancelled_owned(),
            ))
        });
        let health = health_listener.map(|(listener, bound)| {
            tracing::info!(address = %bound, "health service listening (plain TCP, health only)");
            let server = tokio::spawn(grpc::health::serve_health(
                health,
                listener,
                stop_serving.clone().cancelled_owned(),
            ));
            (bound, server)
        });
        let remote = remote.map(|(listener, bound, remote)| {
            let security = if remote.is_tls() {
                "TLS"
            } else {
                "plaintext, loopback only"
            };
            tracing::info!(address = %bound, "remote control listening ({security}, bearer token)");
            let server = tokio::spawn(grpc::serve_remote(
                engine.clone(),
                listener,
                remote,
                Arc::clone(&rpc_stats),
                reload.clone(),
                stop_serving.clone().cancelled_owned(),
            ));
            (bound, server)
        });
        Ok(Supervisor {
            engine,
            socket: socket.to_path_buf(),
            bound,
            engine_task,
            server,
            remote,
            stop_serving,
            health,
            workers,
            rpc_stats,
        })
    }

    /// The engine, for the daemon's own start-up and shutdown.
    pub(crate) fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// What the gRPC servers counted, for the metrics page.
    pub(crate) fn rpc_stats(&self) -> &Arc<RpcStats> {
        &self.rpc_stats
    }

    /// Starts program `name`: as `def` (validated) if given, else as defined
    /// earlier. With `wait`, a `once` job's reply comes when its run ends.
    /// A program that failed to start comes back with its `error` set.
    pub async fn start_program(
        &self,
        name: &str,
        def: Option<ProgramDef>,
        wait: bool,
    ) -> Result<ProgramInfo> {
        self.engine.start(name.to_owned(), def, wait).await
    }

    /// Stops program `name` gracefully, within `timeout` if given (else its
    /// `stop_timeout`), and what depends on it first.
    pub async fn stop_program(&self, name: &str, timeout: Option<Duration>) -> Result<ProgramInfo> {
        self.engine.stop(name.to_owned(), timeout).await
    }

    /// Stops program `name` gracefully (within `timeout` if given) and forgets
    /// it: it is gone from [`Supervisor::programs`]. Refused while another
    /// program names it in `after`. Returns its last state.
    pub async fn remove_program(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<ProgramInfo> {
        self.engine.remove(name.to_owned(), timeout).await
    }

    /// Every program, or only `name`.
    pub async fn programs(&self, name: Option<&str>) -> Result<Vec<ProgramInfo>> {
        self.engine.list(name.map(str::to_owned)).await
    }

    /// Every instance, or only those of program `name`.
    pub async fn workers(&self, name: Option<&str>) -> Result<Vec<WorkerInfo>> {
        self.engine.workers(name.map(str::to_owned)).await
    }

    /// The control socket (also the workers' `INFANT_SOCKET`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The address the control API is served on over TCP, if it is (with the
    /// actual port when port 0 was asked for).
    pub fn remote_address(&self) -> Option<SocketAddr> {
        self.remote.as_ref().map(|(address, _)| *address)
    }

    /// The address the health service is served on over TCP, if it is.
    pub fn health_address(&self) -> Option<SocketAddr> {
        self.health.as_ref().map(|(address, _)| *address)
    }

    /// Stops every program gracefully in reverse start order, then closes the
    /// socket and kills and reaps anything the workers left behind.
    pub async fn shutdown(self) {
        let _ = self.engine.shutdown().await;
        self.finish().await;
    }

    /// Like [`Supervisor::shutdown`], but SIGKILLs every instance at once.
    pub async fn kill(self) {
        let _ = self.engine.tell(Command::ForceShutdown).await;
        let _ = self.engine.shutdown().await;
        self.finish().await;
    }

    async fn finish(self) {
        let _ = self.engine_task.await;
        // The engine is gone, and with it the event channel: every `Events`
        // stream has ended, so both servers can close within the deadline.
        self.engine.logs().stop_following();
        self.stop_serving.cancel();
        let deadline = Instant::now() + SERVE_DEADLINE;
        close_server("control server", self.server, deadline).await;
        if let Some(workers) = self.workers {
            close_server("worker socket server", workers, deadline).await;
        }
        if let Some((_, server)) = self.remote {
            close_server("remote control server", server, deadline).await;
        }
        if let Some((_, server)) = self.health {
            close_server("health server", server, deadline).await;
        }
        if self.bound.as_ref().is_some_and(|bound| !bound.remove()) {
            tracing::info!(
                socket = %self.socket.display(),
                "the control socket was removed or replaced since it was bound; left as it is"
            );
        }
        let leftovers = process::kill_leftovers();
        if leftovers > 0 {
            tracing::info!(leftovers, "killed processes left behind by workers");
            reap_leftovers().await;
        }
        // Every instance is gone: what their pipes still hold reaches the files.
        self.engine.logs().drain(LOG_DRAIN_DEADLINE).await;
    }
}

/// Binds the worker-only socket: an abstract Unix socket (no file, so no
/// folder permission keeps another user out, and nothing to clean up) with a
/// name the kernel picks (see [`socket::bind_abstract`]).
fn bind_worker_socket() -> Result<(tokio::net::UnixListener, String)> {
    use nix::sys::socket::{listen, Backlog, SockType};
    let what = "binding the worker socket";
    let (fd, address) = socket::bind_abstract(SockType::Stream, what)?;
    listen(&fd, Backlog::MAXCONN).map_err(|e| Error::io(what, std::io::Error::from(e)))?;
    let listener = tokio::net::UnixListener::from_std(std::os::unix::net::UnixListener::from(fd))
        .map_err(|e| Error::io(what, e))?;
    Ok((listener, address))
}

/// Waits for a server that was told to stop until `deadline`, then drops it with
/// whatever connections it still holds.
async fn close_server(what: &str, mut server: ServerTask, deadline: Instant) {
    match tokio::time::timeout_at(deadline, &mut server).await {
        Ok(Ok(Err(e))) => tracing::warn!("{what}: {e}"),
        Err(_) => {
            tracing::warn!("{what} did not close within {SERVE_DEADLINE:?}");
            server.abort();
        }
        _ => {}
    }
}

/// After SIGKILLing leftovers, reap them (the engine's reaper has stopped).
async fn reap_leftovers() {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        process::reaper::reap_all(&tx);
        drop(tx);
        while rx.recv().await.is_some() {}
        if process::own_children().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
