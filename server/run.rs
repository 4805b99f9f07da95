//! `infantd` itself: load the config, bind the control socket (and the remote
//! control address, if asked), run the engine and the gRPC front end, and shut
//! down in order on SIGINT/SIGTERM.
//!
//! Start-up: the configured programs start one after another, each after what
//! it names in `after` (see [`super::app`]); then a service manager is told
//! `READY=1` (see [`super::systemd`], which also supplies a control socket
//! passed by socket activation). From then on SIGHUP and `Reload` reread the
//! config file (see [`super::reload`]).
//!
//! Shutdown: the first SIGINT/SIGTERM stops every program gracefully: the
//! configured ones in reverse start-up order, then any started over the API; a
//! second signal SIGKILLs what is left. Then the gRPC server gets a
//! short deadline to close its streams, the socket file is removed, any orphan
//! still parented to the daemon is killed and reaped, and the exit status is 0 if
//! the stop was graceful.

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::error::{Error, Result};
use super::grpc::{BearerToken, RemoteListener};
use super::logging::{LogGuard, LossyStderr};
use super::metrics::{self, MetricsListener, Tally};
use super::process::contain::Containment;
use super::process::guardian::Guardian;
use super::reload::{self, ReloadHandle};
use super::spec::{ProgramDef, ProgramSpec};
use super::supervisor::{Supervisor, SupervisorOptions};
use super::{app, config, fds, process, socket, systemd};

/// How `infantd` was asked to run.
#[derive(Debug, Default)]
pub struct Options {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--socket PATH`.
    pub socket: Option<PathBuf>,
    /// The inline form: one program from the command line.
    pub inline: Option<(String, ProgramDef)>,
    /// `--control-listen HOST:PORT`: also serve the control API over TCP.
    pub control_listen: Option<String>,
    /// `--token-file FILE`: the bearer token remote callers must present.
    pub token_file: Option<PathBuf>,
    /// `--tls-cert FILE`: the remote listener's PEM certificate chain.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key FILE`: the PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `--insecure-plaintext`: serve the remote listener without TLS (loopback only).
    pub insecure_plaintext: bool,
    /// `--health-listen HOST:PORT`: serve the standard health service alone over
    /// plain TCP.
    pub health_listen: Option<String>,
    /// `--metrics-listen HOST:PORT`: serve `GET /metrics` there.
    pub metrics_listen: Option<String>,
    /// `--metrics-behind-proxy`: allow a non-loopback metrics address.
    pub metrics_behind_proxy: bool,
    /// `--max-remote-connections N`: remote connections open at once (default 256).
    pub max_remote_connections: Option<usize>,
    /// `--log-dir DIR`: the folder of the programs' log files.
    pub log_dir: Option<PathBuf>,
}

/// The longest token file read; a token is a few dozen bytes.
const MAX_TOKEN_FILE: u64 = 4096;

/// Sets up logging: `INFANT_LOG` in `RUST_LOG` syntax; `DEBUG=infant*` turns on
/// debug output too; `info` otherwise.
///
/// Lines reach stderr through a bounded queue and a thread of their own: when
/// stderr does not take them (a pipe nobody reads), lines are dropped and
/// counted, and supervision goes on. Keep the guard until the daemon exits: its
/// drop gives the last lines a moment to be written.
pub fn init_logging() -> LogGuard {
    // `Targets` understands the `target=level,level` subset of RUST_LOG syntax
    // without pulling a regex engine into the daemon (that alone is ~1 MiB of
    // code, most of it resident).
    use tracing_subscriber::filter::{LevelFilter, Targets};
    let debug =
        std::env::var("DEBUG").is_ok_and(|v| v.split(',').any(|p| p.trim().starts_with("infant")));
    let fallback = || Targets::new().with_default(LevelFilter::INFO);
    let filter = match std::env::var("INFANT_LOG") {
        Ok(spec) if !spec.is_empty() => spec.parse::<Targets>().unwrap_or_else(|e| {
            eprintln!("infantd: INFANT_LOG={spec:?} is not a log filter ({e}); using info");
            fallback()
        }),
        _ if debug => Targets::new()
            .with_target("infant", LevelFilter::DEBUG)
            .with_default(LevelFilter::INFO),
        _ => fallback(),
    };
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (writer, guard) = match LossyStderr::start() {
        Ok((writer, guard)) => (BoxMakeWriter::new(writer), guard),
        Err(e) => {
            eprintln!("infantd: cannot start the log writer ({e}); logging to stderr directly");
            (BoxMakeWriter::new(std::io::stderr), LogGuard::none())
        }
    };
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .try_init();
    guard
}

/// Runs the daemon in the foreground until it is told to stop. Sets up logging
/// itself (see [`init_logging`]): the guardian must be forked while the process
/// is still a single thread, before the log writer's thread starts.
pub fn run(options: Options) -> ExitCode {
    // Before anything opens a file that could land on a closed 0, 1 or 2.
    fds::fill_standard();
    let (containment, trouble) = containment();
    // Held to the end, so that the last lines are written before exit.
    let _logs = init_logging();
    if let Some(trouble) = trouble {
        tracing::warn!("{trouble}");
    }
    match run_inner(options, containment) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("infantd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(options: Options, containment: Containment) -> Result<ExitCode> {
    // Everything the user wrote is checked before anything is started.
    let (mut programs, settings) = match &options.config {
        Some(path) => config::load_all(path)?,
        None => (Vec::new(), config::DaemonSettings::default()),
    };
    let log_dir = options
        .log_dir
        .clone()
        .or(settings.log_dir)
        .unwrap_or_else(default_log_dir);
    // Relative to where the daemon was started, like every path it is given.
    let log_dir = std::path::absolute(&log_dir).unwrap_or(log_dir);
    let remote = remote_listener(&options)?;
    let health_listen = options
        .health_listen
        .as_deref()
        .map(|listen| resolve_flag("--health-listen", listen))
        .transpose()?;
    let metrics = metrics_listener(&options)?;
    let inline = match options.inline {
        Some((name, def)) => {
            let spec = def.validate(&name)?;
            if programs.iter().any(|p| p.name == spec.name) {
                return Err(Error::InvalidArgument {
                    field: "name",
                    reason: format!("`{name}` is also defined in the config file"),
                });
            }
            programs.push(spec);
            Some(name)
        }
        None => None,
    };

    // Each program after what it names in `after`; the inline program's `after`
    // may name configured programs.
    let order = config::check_order(&programs)
        .map_err(|(index, reason)| Error::InvalidField {
            program: programs[index].name.clone(),
            field: "after",
            reason,
        })?
        .into_iter()
        .map(|index| programs[index].name.clone())
        .collect();

    process::become_subreaper().map_err(|e| Error::io("PR_SET_CHILD_SUBREAPER", e))?;
    // Every worker costs the daemon a few descriptors, and so does every remote
    // client: take what the system allows, not the soft default.
    match fds::raise_limit() {
        Ok(Some((old, new))) => tracing::info!("open-file limit raised from {old} to {new}"),
        Ok(None) => {}
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
    // A control socket passed by the service manager wins over every default.
    let activated = systemd::activated_listener()?;
    let path = match &activated {
        Some(listener) => activated_path(listener, options.socket.as_deref())?,
        None => {
            let explicit = options.socket.is_some();
            let path = crate::paths::socket_path(options.socket);
            if !explicit && std::env::var_os(crate::paths::SOCKET_ENV).is_none() {
                socket::secure_default_dir(&path)?;
            }
            path
        }
    };

    // One thread is plenty for a supervisor and keeps it small; it is also the
    // thread every instance is forked from, which matters for the parent-death
    // signal (it fires when the forking thread exits).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))?;
    let listeners = Listeners {
        activated,
        remote,
        health: health_listen,
        metrics,
        log_dir,
    };
    let config = options.config;
    runtime.block_on(serve(
        path,
        listeners,
        programs,
        order,
        inline,
        config,
        containment,
    ))
}

/// Where program output goes when neither `--log-dir` nor `[daemon] log_dir`
/// says: `$XDG_STATE_HOME/infant/logs`, `/var/log/infant` for root, else
/// `~/.local/state/infant/logs` (`/tmp/infant-$UID/logs` without a home).
fn default_log_dir() -> PathBuf {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(state).join("infant").join("logs");
    }
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return PathBuf::from("/var/log/infant");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/infant/logs"),
        None => PathBuf::from(format!("/tmp/infant-{uid}/logs")),
    }
}

/// The path of the control socket the service manager passed: workers find the
/// daemon by it (`INFANT_SOCKET`), so an abstract or unnamed socket will not do.
fn activated_path(
    listener: &std::os::unix::net::UnixListener,
    flag: Option<&Path>,
) -> Result<PathBuf> {
    let address = listener
        .local_addr()
        .map_err(|e| Error::io("the socket passed by the service manager", e))?;
    let Some(path) = address.as_pathname() else {
        return Err(Error::InvalidArgument {
            field: "LISTEN_FDS",
            reason: "the socket passed by the service manager has no path (an abstract \
                     or unnamed socket); workers find the daemon by its path"
                .into(),
        });
    };
    if let Some(flag) = flag.filter(|flag| *flag != path) {
        tracing::warn!(
            "--socket {} ignored: serving the socket passed by the service manager, {}",
            flag.display(),
            path.display()
        );
    }
    Ok(path.to_path_buf())
}

/// The daemon's cgroup, if it can have one, and its guardian (see
/// [`process::guardian`]), forked while the daemon is still a single thread.
/// Logging is not set up yet when this runs, so a problem comes back as text.
fn containment() -> (Containment, Option<String>) {
    let cgroups = process::cgroup::Tree::create();
    let (guardian, trouble) = if process::single_threaded() {
        // SAFETY: the process has a single thread (just checked; logging and
        // the runtime start later).
        match unsafe { Guardian::start(cgroups.as_ref().map(|tree| tree.root())) } {
            Ok(guardian) => (Some(guardian), None),
            Err(e) => (
                None,
                Some(format!(
                    "cannot start the guardian: {e}; a kill -9 of infantd may leave processes behind"
                )),
            ),
        }
    } else {
        (
            None,
            Some("not started as a single thread: no guardian".to_owned()),
        )
    };
    (Containment::new(cgroups, guardian), trouble)
}

/// The remote control listener the flags ask for, checked: the address resolves,
/// the token file is private and holds a token, and either TLS is configured or
/// plaintext was asked for explicitly, on a loopback address.
fn remote_listener(options: &Options) -> Result<Option<RemoteListener>> {
    let Some(listen) = &options.control_listen else {
        for (flag, given) in [
            ("--token-file", options.token_file.is_some()),
            ("--tls-cert", options.tls_cert.is_some()),
            ("--tls-key", options.tls_key.is_some()),
            ("--insecure-plaintext", options.insecure_plaintext),
            (
                "--max-remote-connections",
                options.max_remote_connections.is_some(),
            ),
        ] {
            if given {
                return Err(flag_error(
                    flag,
                    "only means something with --control-listen",
                ));
            }
        }
        return Ok(None);
    };
    let address = resolve(listen)?;
    let Some(token_file) = &options.token_file else {
        return Err(flag_error(
            "--control-listen",
            "needs --token-file FILE, the bearer token every remote call must present",
        ));
    };
    let token = read_token(token_file)?;
    let remote = match (
        &options.tls_cert,
        &options.tls_key,
        options.insecure_plaintext,
    ) {
        (Some(cert), Some(key), false) => {
            let cert_pem = read_pem("--tls-cert", cert, "CERTIFICATE-----")?;
            let key_pem = read_pem("--tls-key", key, "PRIVATE KEY-----")?;
            if std::fs::metadata(key).is_ok_and(|meta| meta.permissions().mode() & 0o004 != 0) {
                tracing::warn!(
                    "--tls-key {} is readable by every user: chmod o-r it",
                    key.display()
                );
            }
            RemoteListener::tls(address, &cert_pem, &key_pem, token).map_err(|e| {
                flag_error(
                    "--tls-cert/--tls-key",
                    format!("{} with {}: {}", cert.display(), key.display(), reason(e)),
                )
            })?
        }
        (None, None, true) => {
            if !address.ip().is_loopback() {
                let resolved = if address.to_string() == *listen {
                    String::new()
                } else {
                    format!(" (`{listen}`)")
                };
                return Err(flag_error(
                    "--insecure-plaintext",
                    format!(
                        "plain TCP is allowed only on a loopback address (127.0.0.1, ::1), \
                         not {address}{resolved}: use --tls-cert and --tls-key"
                    ),
                ));
            }
            RemoteListener::insecure_plaintext(address, token)?
        }
        (_, _, true) => {
            return Err(flag_error(
                "--insecure-plaintext",
                "cannot be combined with --tls-cert/--tls-key",
            ))
        }
        (Some(_), None, false) => return Err(flag_error("--tls-cert", "needs --tls-key FILE")),
        (None, Some(_), false) => return Err(flag_error("--tls-key", "needs --tls-cert FILE")),
        (None, None, false) => {
            return Err(flag_error(
                "--control-listen",
                "TLS needs --tls-cert FILE and --tls-key FILE; plain TCP needs \
                 --insecure-plaintext, and a loopback address",
            ))
        }
    };
    let remote = match options.max_remote_connections {
        Some(0) => return Err(flag_error("--max-remote-connections", "must be at least 1")),
        Some(max) => remote.max_connections(max),
        None => remote,
    };
    Ok(Some(remote))
}

/// The metrics address the flags ask for, checked (loopback unless
/// `--metrics-behind-proxy`).
fn metrics_listener(options: &Options) -> Result<Option<MetricsListener>> {
    let Some(listen) = &options.metrics_listen else {
        if options.metrics_behind_proxy {
            return Err(flag_error(
                "--metrics-behind-proxy",
                "only means something with --metrics-listen",
            ));
        }
        return Ok(None);
    };
    let address = resolve_flag("--metrics-listen", listen)?;
    MetricsListener::new(address, options.metrics_behind_proxy).map(Some)
}

/// `HOST:PORT` to the first address it resolves to.
fn resolve(listen: &str) -> Result<SocketAddr> {
    resolve_flag("--control-listen", listen)
}

/// `HOST:PORT`, the value of `flag`, to the first address it resolves to.
fn resolve_flag(flag: &'static str, listen: &str) -> Result<SocketAddr> {
    let expected = |why: String| {
        flag_error(
            flag,
            format!("`{listen}`: {why} (expected HOST:PORT, such as 127.0.0.1:7000)"),
        )
    };
    listen
        .to_socket_addrs()
        .map_err(|e| expected(e.to_string()))?
        .next()
        .ok_or_else(|| expected("the host resolves to no address".to_owned()))
}

/// The trimmed content of the token file, which must be a regular file that only
/// its owner can read or write: whoever reads it controls every program.
fn read_token(path: &Path) -> Result<BearerToken> {
    let action = || format!("--token-file {}", path.display());
    let refuse = |why: &str| flag_error("--token-file", format!("{}: {why}", path.display()));
    // Check the file that was opened, not the path, so it cannot be swapped between.
    let (file, meta) = open_regular("--token-file", path)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(refuse(&format!(
            "its mode {mode:04o} lets group or others at it; it must be 0600 or stricter \
             (chmod 600 {})",
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(action(), e))?;
    if text.len() as u64 > MAX_TOKEN_FILE {
        return Err(refuse(&format!("longer than {MAX_TOKEN_FILE} bytes")));
    }
    let token = text.trim();
    if token.is_empty() {
        return Err(refuse("the file is empty"));
    }
    BearerToken::new(token).map_err(|e| refuse(&reason(e)))
}

/// Opens the file a flag names, refusing anything but a regular file. The open
/// does not block: a FIFO would otherwise hang start-up until a writer came, and a
/// device could block for ever.
fn open_regular(flag: &'static str, path: &Path) -> Result<(File, std::fs::Metadata)> {
    let action = || format!("{flag} {}", path.display());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(action(), e))?;
    let meta = file.metadata().map_err(|e| Error::io(action(), e))?;
    if !meta.is_file() {
        return Err(flag_error(
            flag,
            format!("{}: not a regular file", path.display()),
        ));
    }
    Ok((file, meta))
}

/// The bytes of a PEM file that must contain a block ending in `marker`.
fn read_pem(flag: &'static str, path: &Path, marker: &str) -> Result<Vec<u8>> {
    let (mut file, _) = open_regular(flag, path)?;
    let mut pem = Vec::new();
    file.read_to_end(&mut pem)
        .map_err(|e| Error::io(format!("{flag} {}", path.display()), e))?;
    if !String::from_utf8_lossy(&pem).contains(marker) {
        return Err(flag_error(
            flag,
            format!(
                "{}: no PEM `-----BEGIN {marker}` block in it",
                path.display()
            ),
        ));
    }
    Ok(pem)
}

/// An error about a command-line flag.
fn flag_error(flag: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidArgument {
        field: flag,
        reason: reason.into(),
    }
}

/// An invalid-argument error's reason alone, to restate under a flag's name.
fn reason(error: Error) -> String {
    match error {
        Error::InvalidArgument { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// What the daemon listens on besides the control socket's path.
struct Listeners {
    /// The control socket passed by socket activation.
    activated: Option<std::os::unix::net::UnixListener>,
    /// The remote control listener.
    remote: Option<RemoteListener>,
    /// `--health-listen`.
    health: Option<SocketAddr>,
    /// `--metrics-listen`.
    metrics: Option<MetricsListener>,
    /// The folder of the programs' log files.
    log_dir: PathBuf,
}

/// Serves until told to stop: binds the sockets, brings the configured programs
/// up in order, waits for SIGINT/SIGTERM, then stops everything in order (a
/// second signal kills what is left).
async fn serve(
    path: PathBuf,
    listeners: Listeners,
    programs: Vec<ProgramSpec>,
    order: Vec<String>,
    inline: Option<String>,
    config: Option<PathBuf>,
    containment: Containment,
) -> Result<ExitCode> {
    // Reloads (`Reload`, SIGHUP) wait until the start-up is done.
    let (reload_handle, reloads) = match &config {
        Some(_) => {
            let (handle, reloads) = reload::channel();
            (Some(handle), Some(reloads))
        }
        None => (None, None),
    };
    let mut signals = Signals::new(reload_handle.clone())?;
    let mut options = SupervisorOptions::new().trim_memory(true);
    options.reload = reload_handle;
    options.remote = listeners.remote;
    options.control_listener = listeners.activated;
    options.health_listen = listeners.health;
    options.containment = Some(containment);
    tracing::info!(folder = %listeners.log_dir.display(), "program output goes to log files");
    options.log_dir = Some(listeners.log_dir);
    let supervisor = Supervisor::start_with(&path, options).await?;
    let engine = supervisor.engine().clone();
    let notifier = systemd::Notifier::from_env();
    let informing = tokio::spawn(systemd::keep_informed(notifier.clone(), engine.clone()));
    let stop_metrics = CancellationToken::new();
    if let Some(metrics) = listeners.metrics {
        let address = metrics.address();
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| Error::io(format!("binding the metrics address {address}"), e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::io(format!("the metrics address {address}"), e))?;
        let tally = Arc::new(Tally::default());
        tokio::spawn(metrics::tally::watch(
            engine.clone(),
            Arc::clone(&tally),
            stop_metrics.clone(),
        ));
        tokio::spawn(metrics::serve(
            engine.clone(),
            listener,
            tally,
            Arc::clone(supervisor.rpc_stats()),
            stop_metrics.clone(),
        ));
        tracing::info!(address = %bound, "serving metrics on http://{bound}/metrics");
    }
    // The inline program is not the file's: a reload leaves it alone.
    let (inline_spec, programs): (Vec<_>, Vec<_>) = programs
        .into_iter()
        .partition(|spec| inline.as_deref() == Some(spec.name.as_str()));
    engine.define(programs).await?;
    engine.define_other(inline_spec).await?;
    tracing::info!(socket = %supervisor.socket().display(), "infantd ready");
    // Start-up code is done with: let it leave the resident set.
    process::trim_resident_memory();

    let mut app = app::application(&engine, order, inline.as_deref());
    // Start in order until done or told to stop; then wait to be told.
    let mut failed = false;
    let told_to_stop = tokio::select! {
        started = app.start() => {
            // Only the inline program (or a shutdown) fails a step; the
            // lifecycle has rolled back what it started.
            failed = started.is_err();
            false
        }
        () = signals.stop() => true,
    };
    let mut reloading = None;
    if !told_to_stop && !failed {
        // The start-up Lifecycle is done: what could start has started.
        let status = systemd::summary(&engine)
            .await
            .unwrap_or_else(|e| e.to_string());
        notifier.ready(&status);
        if let (Some(reloads), Some(config)) = (reloads, config) {
            reloading = Some(tokio::spawn(reload::serve(
                reloads,
                config,
                engine.clone(),
                notifier.clone(),
            )));
        }
        signals.stop().await;
    }

    tracing::info!("stopping every program (signal again to force)");
    notifier.stopping();
    let stop_all = async {
        // No program starts from now on; the configured ones stop in reverse
        // order; then whatever was started over the API.
        let _ = engine.close().await;
        if let Err(e) = app.stop().await {
            tracing::error!("{e}");
        }
        let _ = engine.shutdown().await;
    };
    let forced = tokio::select! {
        () = stop_all => false,
        () = signals.stop() => true,
    };
    stop_metrics.cancel();
    if forced {
        supervisor.kill().await;
    } else {
        supervisor.shutdown().await;
    }
    informing.abort();
    if let Some(reloading) = reloading {
        reloading.abort();
    }
    if let Some(name) = inline {
        println!("{name} stopped");
    }
    tracing::info!("infantd stopped");
    Ok(if forced || failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The signals that stop the daemon, and SIGHUP, which reloads the config
/// file (or, without one, is ignored rather than killing the daemon).
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
    reload: Option<ReloadHandle>,
}

impl Signals {
    fn new(reload: Option<ReloadHandle>) -> Result<Self> {
        let handler = |kind, name| signal(kind).map_err(|e| Error::io(name, e));
        Ok(Signals {
            interrupt: handler(SignalKind::interrupt(), "SIGINT handler")?,
            terminate: handler(SignalKind::terminate(), "SIGTERM handler")?,
            hangup: handler(SignalKind::hangup(), "SIGHUP handler")?,
            reload,
        })
    }

    /// Returns at the next SIGINT or SIGTERM; meanwhile each SIGHUP asks for a
    /// reload (applied once the start-up is done, after any before it).
    async fn stop(&mut self) {
        loop {
            tokio::select! {
                _ = self.interrupt.recv() => return,
                _ = self.terminate.recv() => return,
                _ = self.hangup.recv() => match &self.reload {
                    Some(reload) => {
                        tracing::info!("SIGHUP: reloading the config file");
                        let reload = reload.clone();
                        // The reload task logs the outcome.
                        tokio::spawn(async move { reload.reload(false).await });
                    }
                    None => tracing::info!("SIGHUP ignored: no config file (--config) to reload"),
                },
            }
        }
    }
}
