//! `infantd` itself: load the config, bind the control socket, run the engine and
//! the gRPC front end, and shut down in order on SIGINT/SIGTERM.
//!
//! Shutdown: the first SIGINT/SIGTERM stops every program gracefully in reverse
//! start order; a second one SIGKILLs what is left. Then the gRPC server gets a
//! short deadline to close its streams, the socket file is removed, any orphan
//! still parented to the daemon is killed and reaped, and the exit status is 0 if
//! the stop was graceful.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use super::engine::EngineHandle;
use super::error::{Error, Result};
use super::spec::{ProgramDef, ProgramSpec};
use super::supervisor::Supervisor;
use super::{config, process, socket};

/// How `infantd` was asked to run.
#[derive(Debug, Default)]
pub struct Options {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--socket PATH`.
    pub socket: Option<PathBuf>,
    /// The inline form: one program from the command line.
    pub inline: Option<(String, ProgramDef)>,
}

/// Sets up logging: `INFANT_LOG` in `RUST_LOG` syntax; the seed's `DEBUG=infant*`
/// turns on debug output too; `info` otherwise.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let debug =
        std::env::var("DEBUG").is_ok_and(|v| v.split(',').any(|p| p.trim().starts_with("infant")));
    let filter = match std::env::var("INFANT_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ if debug => EnvFilter::new("infant=debug,info"),
        _ => EnvFilter::new("info"),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
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

    process::become_subreaper().map_err(|e| Error::io("PR_SET_CHILD_SUBREAPER", e))?;
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
    runtime.block_on(serve(path, programs, inline))
}

async fn serve(
    path: PathBuf,
    programs: Vec<ProgramSpec>,
    inline: Option<String>,
) -> Result<ExitCode> {
    let supervisor = Supervisor::start(&path).await?;
    let engine = supervisor.engine().clone();
    let names: Vec<String> = programs.iter().map(|p| p.name.clone()).collect();
    engine.define(programs).await?;
    tracing::info!(socket = %path.display(), "infantd ready");

    let failed_inline = CancellationToken::new();
    tokio::spawn(start_all(
        engine.clone(),
        names,
        inline.clone(),
        failed_inline.clone(),
    ));

    let forced = wait_for_shutdown(&supervisor, &failed_inline).await?;
    if forced {
        supervisor.kill().await;
    } else {
        supervisor.shutdown().await;
    }
    if let Some(name) = inline {
        println!("{name} stopped");
    }
    tracing::info!("infantd stopped");
    Ok(if forced || failed_inline.is_cancelled() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Starts configured programs in file order, each once the previous is `ok`; the
/// inline program prints when it is started, like the seed's `node index`.
async fn start_all(
    engine: EngineHandle,
    names: Vec<String>,
    inline: Option<String>,
    failed: CancellationToken,
) {
    for name in names {
        match engine.start(name.clone(), None, false).await {
            Ok(info) => {
                tracing::info!(program = %name, workers = info.running, "started");
                if inline.as_deref() == Some(name.as_str()) {
                    let plural = if info.running == 1 { "" } else { "s" };
                    println!("{name} started ({} worker{plural})", info.running);
                }
            }
            Err(Error::ShuttingDown) => return,
            Err(e) => {
                tracing::error!("{e}");
                if inline.as_deref() == Some(name.as_str()) {
                    eprintln!("infantd: {e}");
                    failed.cancel();
                    return;
                }
            }
        }
    }
}

/// Waits for SIGINT/SIGTERM (or a failed inline start), then for the graceful
/// stop of every program; a second signal cuts it short. Returns whether it was
/// forced.
async fn wait_for_shutdown(
    supervisor: &Supervisor,
    failed_inline: &CancellationToken,
) -> Result<bool> {
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| Error::io("SIGINT handler", e))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| Error::io("SIGTERM handler", e))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|e| Error::io("SIGHUP handler", e))?;
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = failed_inline.cancelled() => break,
            _ = sighup.recv() => tracing::info!("SIGHUP ignored (config reload is not supported yet)"),
        }
    }
    tracing::info!("stopping every program (signal again to force)");
    let engine = supervisor.engine();
    let shutdown = engine.shutdown();
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut shutdown => Ok(false),
        _ = sigint.recv() => Ok(true),
        _ = sigterm.recv() => Ok(true),
    }
}
