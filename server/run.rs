//! `infantd` itself: load the config, bind the control socket (and the remote
//! control address, if asked), run the engine and the gRPC front end, and shut
//! down in order on SIGINT/SIGTERM.
//!
//! Start-up: the configured programs start one after another, each after what
//! it names in `after` (see [`super::app`]).
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

use tokio::signal::unix::{signal, Signal, SignalKind};

use super::error::{Error, Result};
use super::grpc::{BearerToken, RemoteListener};
use super::logging::{LogGuard, LossyStderr};
use super::spec::{ProgramDef, ProgramSpec};
use super::supervisor::{Supervisor, SupervisorOptions};
use super::{app, config, fds, process, socket};

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
    /// `--max-remote-connections N`: remote connections open at once (default 256).
    pub max_remote_connections: Option<usize>,
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

/// Runs the daemon in the foreground until it is told to stop.
pub fn run(options: Options) -> ExitCode {
    match run_inner(options) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("infantd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(options: Options) -> Result<ExitCode> {
    // Everything the user wrote is checked before anything is started.
    let mut programs: Vec<ProgramSpec> = match &options.config {
        Some(path) => config::load(path)?,
        None => Vec::new(),
    };
    let remote = remote_listener(&options)?;
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
    let explicit = options.socket.is_some();
    let path = crate::paths::socket_path(options.socket);
    if !explicit && std::env::var_os(crate::paths::SOCKET_ENV).is_none() {
        socket::secure_default_dir(&path)?;
    }

    // One thread is plenty for a supervisor and keeps it small; it is also the
    // thread every instance is forked from, which matters for the parent-death
    // signal (it fires when the forking thread exits).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))?;
    runtime.block_on(serve(path, remote, programs, order, inline))
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

/// `HOST:PORT` to the first address it resolves to.
fn resolve(listen: &str) -> Result<SocketAddr> {
    let expected = |why: String| {
        flag_error(
            "--control-listen",
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

/// Serves until told to stop: binds the sockets, brings the configured programs
/// up in order, waits for SIGINT/SIGTERM, then stops everything in order (a
/// second signal kills what is left).
async fn serve(
    path: PathBuf,
    remote: Option<RemoteListener>,
    programs: Vec<ProgramSpec>,
    order: Vec<String>,
    inline: Option<String>,
) -> Result<ExitCode> {
    let mut signals = Signals::new()?;
    let mut options = SupervisorOptions::new().trim_memory(true);
    options.remote = remote;
    let supervisor = Supervisor::start_with(&path, options).await?;
    let engine = supervisor.engine().clone();
    engine.define(programs).await?;
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
    if !told_to_stop && !failed {
        signals.stop().await;
    }

    tracing::info!("stopping every program (signal again to force)");
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
    if forced {
        supervisor.kill().await;
    } else {
        supervisor.shutdown().await;
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

/// The signals that stop the daemon; SIGHUP is caught and ignored, so that it
/// does not kill the daemon.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn new() -> Result<Self> {
        let handler = |kind, name| signal(kind).map_err(|e| Error::io(name, e));
        Ok(Signals {
            interrupt: handler(SignalKind::interrupt(), "SIGINT handler")?,
            terminate: handler(SignalKind::terminate(), "SIGTERM handler")?,
            hangup: handler(SignalKind::hangup(), "SIGHUP handler")?,
        })
    }

    /// Returns at the next SIGINT or SIGTERM.
    async fn stop(&mut self) {
        loop {
            tokio::select! {
                _ = self.interrupt.recv() => return,
                _ = self.terminate.recv() => return,
                _ = self.hangup.recv() => {
                    tracing::info!("SIGHUP ignored (config reload is not supported yet)")
                }
            }
        }
    }
}
