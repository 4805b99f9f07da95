//! Config reload: `Reload` requests and SIGHUP reread the `--config` file and
//! apply its [`Plan`].
//!
//! One task owns reloading, so reloads never overlap: each request waits for
//! the one before it. A reload reads and validates the whole file first; a file
//! that does not parse or validate, or that cannot be planned, changes nothing.
//! Then the plan is announced (the `reload` event) and applied in an order that
//! keeps every `after` satisfiable and frees what new programs may need:
//!
//! 1. added programs are defined, changed ones take their new definitions;
//! 2. removed programs stop and are forgotten, what needs them first;
//! 3. changed programs restart, roll or scale as their plan entry says;
//! 4. added programs start, each after what it names in `after`.
//!
//! A step that fails is recorded on its entry and the others go on; a changed
//! program whose restart failed goes back to its previous definition, so the
//! next reload tries the change again. The service
//! manager hears `RELOADING=1` at the start and `READY=1` at the end.

use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use super::config;
use super::engine::plan::{self, Action, Change, Plan, PlanEntry};
use super::engine::EngineHandle;
use super::error::{Error, Result};
use super::spec::{Kind, ProgramSpec};
use super::systemd::{self, Notifier};

/// Requests that can wait for the one being applied.
const QUEUE: usize = 16;

/// A reload asked for.
struct Request {
    /// Only compute the plan.
    dry_run: bool,
    /// Where the outcome goes.
    reply: oneshot::Sender<Result<Plan>>,
}

/// Asks the reload task for reloads; cheap to clone.
#[derive(Clone, Debug)]
pub struct ReloadHandle {
    tx: mpsc::Sender<Request>,
}

impl ReloadHandle {
    /// Rereads the config file and, unless `dry_run`, applies the plan. Returns
    /// the plan, each entry with the error that stopped it if any; fails
    /// (changing nothing) if the file is bad or cannot be applied.
    pub async fn reload(&self, dry_run: bool) -> Result<Plan> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { dry_run, reply })
            .await
            .map_err(|_| Error::ShuttingDown)?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }
}

/// The reload task's side of the channel.
pub struct Reloads {
    rx: mpsc::Receiver<Request>,
}

/// A handle for the gRPC service and the signal handler, and the receiving end
/// for [`serve`].
pub fn channel() -> (ReloadHandle, Reloads) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (ReloadHandle { tx }, Reloads { rx })
}

/// Applies reloads of `path` one at a time until every handle is gone.
pub async fn serve(mut reloads: Reloads, path: PathBuf, engine: EngineHandle, notifier: Notifier) {
    while let Some(request) = reloads.rx.recv().await {
        let outcome = if request.dry_run {
            prepare(&path, &engine).await.map(|(plan, _)| plan)
        } else {
            reload(&path, &engine, &notifier).await
        };
        let _ = request.reply.send(outcome);
    }
}

/// Reads the file and plans it against what is defined.
async fn prepare(
    path: &std::path::Path,
    engine: &EngineHandle,
) -> Result<(Plan, Vec<ProgramSpec>)> {
    let file = config::load(path)?;
    let current = engine.defined().await?;
    let plan = plan::plan(&current, &file).map_err(|reason| Error::Config {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok((plan, file))
}

/// A reload, with the service manager told when it begins and ends.
async fn reload(
    path: &std::path::Path,
    engine: &EngineHandle,
    notifier: &Notifier,
) -> Result<Plan> {
    notifier.reloading();
    let outcome = match prepare(path, engine).await {
        Ok((plan, file)) => {
            tracing::info!("reloading {}: {}", path.display(), plan.summary());
            for entry in plan
                .entries
                .iter()
                .filter(|e| e.change != Change::Unchanged)
            {
                tracing::info!("reload: {}", describe(entry));
            }
            let _ = engine.announce(plan.clone()).await;
            Ok(apply(engine, plan, file).await)
        }
        Err(e) => Err(e),
    };
    let summary = systemd::summary(engine)
        .await
        .unwrap_or_else(|e| e.to_string());
    let status = match &outcome {
        Ok(plan) if plan.failures().is_empty() => summary,
        Ok(plan) => format!("{summary}; reload failed for {}", failed_names(plan)),
        Err(e) => format!("{summary}; reload refused: {e}"),
    };
    match &outcome {
        Ok(plan) => {
            for failure in plan.failures() {
                tracing::error!("reload: {failure}");
            }
        }
        Err(e) => tracing::error!("reload refused, nothing changed: {e}"),
    }
    // One line: a long error would otherwise fill `systemctl status`.
    notifier.ready(status.lines().next().unwrap_or_default());
    outcome
}

fn failed_names(plan: &Plan) -> String {
    plan.entries
        .iter()
        .filter(|e| e.error.is_some())
        .map(|e| e.program.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies `plan`, whose added and changed programs are defined in `file`
/// (file order); see the module docs for the order.
async fn apply(engine: &EngineHandle, mut plan: Plan, file: Vec<ProgramSpec>) -> Plan {
    let defined = engine.defined().await.unwrap_or_default();
    let spec_of = |name: &str| file.iter().find(|s| s.name == name).cloned();
    let added: Vec<ProgramSpec> = plan
        .entries
        .iter()
        .filter(|e| e.change == Change::Added)
        .filter_map(|e| spec_of(&e.program))
        .collect();
    if let Err(e) = engine.define(added).await {
        fail_all(&mut plan, Change::Added, &e);
    }
    for entry in plan.entries.iter_mut() {
        if entry.change != Change::Changed {
            continue;
        }
        if let Some(spec) = spec_of(&entry.program) {
            if let Err(e) = engine.redefine(spec).await {
                entry.error = Some(e.to_string());
            }
        }
    }

    // Removed: what needs a program stops before it.
    let mut removed: Vec<String> = plan
        .entries
        .iter()
        .filter(|e| e.change == Change::Removed)
        .map(|e| e.program.clone())
        .collect();
    while !removed.is_empty() {
        let needs = |name: &str, other: &str| {
            defined
                .iter()
                .any(|d| d.spec.name == other && d.spec.after.iter().any(|a| a == name))
        };
        // A program no other removed program needs; the `after` graph has no
        // cycle, so there is one.
        let next = removed
            .iter()
            .position(|name| !removed.iter().any(|other| needs(name, other)))
            .unwrap_or(0);
        let name = removed.remove(next);
        if let Err(e) = engine.remove(name.clone(), None).await {
            set_error(&mut plan, &name, e.to_string());
        }
    }

    for entry in plan.entries.iter_mut() {
        if entry.change != Change::Changed || entry.error.is_some() {
            continue;
        }
        let Some(spec) = spec_of(&entry.program) else {
            continue;
        };
        let Some(old) = defined.iter().find(|d| d.spec.name == entry.program) else {
            continue;
        };
        if let Err(e) = restart(engine, entry.action, &spec, old.spec.count).await {
            // Back to the definition it runs on (a failed rollout keeps the old
            // workers), so that the next reload tries the change again.
            let reverted = engine.redefine(old.spec.clone()).await.is_ok();
            entry.error = Some(if reverted {
                format!("{e} (it keeps its previous definition)")
            } else {
                e.to_string()
            });
        }
    }

    // Added: each after what it names, as at start-up.
    let order = config::check_order(&file).unwrap_or_default();
    for index in order {
        let name = &file[index].name;
        let is_added = plan
            .entries
            .iter()
            .any(|e| &e.program == name && e.change == Change::Added && e.error.is_none());
        if !is_added {
            continue;
        }
        match engine.start(name.clone(), None, false).await {
            Ok(info) => tracing::info!(program = %name, workers = info.running, "started"),
            Err(e) => set_error(&mut plan, name, e.to_string()),
        }
    }
    plan
}

/// Carries out a changed program's action, once it has its new definition.
async fn restart(
    engine: &EngineHandle,
    action: Action,
    spec: &ProgramSpec,
    old_count: u32,
) -> Result<()> {
    let name = spec.name.clone();
    match action {
        Action::None | Action::Update | Action::Start | Action::Remove => {}
        Action::Restart => {
            engine.restart(name, true).await?;
        }
        Action::Scale => {
            engine.scale(name, spec.count).await?;
        }
        Action::RollingRestart => {
            // Shrink before rolling (fewer to replace), grow after.
            if spec.count < old_count {
                engine.scale(name.clone(), spec.count).await?;
            }
            engine.restart(name.clone(), false).await?;
            if spec.count > old_count {
                engine.scale(name, spec.count).await?;
            }
        }
        Action::FullRestart if spec.kind == Kind::Once => {
            // A job does not come back `ok`: stop it and run it anew.
            engine.stop(name.clone(), None).await?;
            engine.start(name, None, false).await?;
        }
        Action::FullRestart => {
            engine.restart(name, true).await?;
        }
    }
    Ok(())
}

fn set_error(plan: &mut Plan, name: &str, error: String) {
    if let Some(entry) = plan.entries.iter_mut().find(|e| e.program == name) {
        entry.error = Some(error);
    }
}

fn fail_all(plan: &mut Plan, change: Change, error: &Error) {
    for entry in plan.entries.iter_mut().filter(|e| e.change == change) {
        entry.error = Some(error.to_string());
    }
}

/// The plan as one line per program, for logs: `web changed (command):
/// rolling restart`.
fn describe(entry: &PlanEntry) -> String {
    let fields = if entry.fields.is_empty() {
        String::new()
    } else {
        format!(" ({})", entry.fields.join(", "))
    };
    format!(
        "{} {}{fields}: {}",
        entry.program,
        entry.change.as_str(),
        entry.action.as_str()
    )
}
