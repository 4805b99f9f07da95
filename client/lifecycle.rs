//! Ordered startup and shutdown: infant's `Lifecycle`, for async Rust.
//!
//! A [`Lifecycle`] is a list of titled steps, each with a start hook, a stop hook
//! or both. [`start`](Lifecycle::start) runs the start hooks in the order the
//! steps were added, [`stop`](Lifecycle::stop) runs the stop hooks in reverse,
//! like init.d runlevels.
//!
//! ```
//! use infant::lifecycle::{BoxError, Event, Lifecycle};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut lifecycle = Lifecycle::new();
//! let mut events = lifecycle.subscribe();
//!
//! lifecycle.add(
//!     "database",
//!     || async { /* connect */ Ok::<(), BoxError>(()) },
//!     || async { /* disconnect */ Ok::<(), BoxError>(()) },
//! )?;
//! lifecycle.add_start("cache", || async { Ok::<(), BoxError>(()) })?;
//!
//! lifecycle.start().await?;
//! lifecycle.stop().await?;
//!
//! assert_eq!(events.recv().await?, Event::Add { title: "database".into() });
//! # Ok(())
//! # }
//! ```
//!
//! # Differences from the original
//!
//! - **Rollback.** When a start hook fails, the steps this call already started
//!   are stopped, in reverse order, before [`start`](Lifecycle::start) returns
//!   [`LifecycleError::StartFailed`], which names the failing step, carries its
//!   error text and lists any step whose stop hook failed during the rollback.
//!   The failing step's own stop hook is not run: it never started, so its start
//!   hook must clean up after itself.
//! - **Stop goes on.** A failing stop hook does not keep the steps before it
//!   running: every started step is stopped, and [`stop`](Lifecycle::stop) returns
//!   [`LifecycleError::StopFailed`] listing each step that failed.
//! - **State.** Each step knows whether it is started. `start` starts only the
//!   steps that are not (so a step added later is started by the next `start`),
//!   and `stop` stops only those that are; a failed stop counts as stopped.
//! - **Unique titles.** Adding a title twice, or removing an unknown one, is an
//!   error. [`remove`](Lifecycle::remove) does not run the step's stop hook.
//! - Steps may have only a start or only a stop hook
//!   ([`add_start`](Lifecycle::add_start), [`add_stop`](Lifecycle::add_stop)): as
//!   in infant, only the hooks that exist are called.
//!
//! # Hooks
//!
//! A hook is a closure that returns a future: `FnMut() -> impl Future<Output =
//! Result<(), E>>`, with `E: Display` (the error is kept as its text, like the
//! worker SDK's hooks; [`BoxError`] lets `?` take any error). The closure is
//! called each time the step starts or stops, so a lifecycle can be started
//! again after a stop.
//!
//! Why this shape rather than a `Step` trait or async closures: a closure captures
//! shared state with a `clone()` and no type to declare, so a step is written
//! where it is added. The future is `'static` and `Send` so that `start` and `stop`
//! can run on a spawned task; a hook that needs shared state clones it into the
//! future: `move || { let db = db.clone(); async move { db.close().await } }`.
//! (An `async` closure's future may borrow the closure, and there is no stable
//! way yet to require that future to be `Send`, so such closures cannot be boxed
//! here.)
//!
//! # Events
//!
//! [`subscribe`](Lifecycle::subscribe) returns a `tokio::sync::broadcast`
//! receiver of [`Event`]s, the original's `add`, `remove`, `start`, `stop`,
//! `online` and `offline`, plus [`Event::Failed`]. A broadcast rather than
//! callbacks: a subscriber cannot slow or break the sequence, any number can
//! watch from their own tasks, and one that falls more than [`EVENT_CAPACITY`]
//! events behind is told how many it missed (`RecvError::Lagged`) instead of
//! holding the lifecycle up. `Start` and `Stop` are sent just before the hook
//! runs, and only for hooks that exist.
//!
//! # Cancellation
//!
//! Dropping a `start` or `stop` future mid-way drops the hook that was running;
//! the steps finished before it keep their state, and the interrupted one keeps
//! its old state (a start cut short counts as not started).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tokio::sync::broadcast;

/// An error of any type, for hooks that want `?` on several kinds of error:
/// end the hook with `Ok::<(), BoxError>(())`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How many events a subscriber may fall behind before it misses some.
pub const EVENT_CAPACITY: usize = 256;

/// A boxed hook: called once per run, its future yields the error's text.
type Hook = Box<dyn FnMut() -> HookFuture + Send>;
type HookFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A sequence of steps started in order and stopped in reverse. See the
/// [module docs](self).
pub struct Lifecycle {
    steps: Vec<Step>,
    events: broadcast::Sender<Event>,
}

struct Step {
    title: String,
    start: Option<Hook>,
    stop: Option<Hook>,
    started: bool,
}

/// Something that happened in a [`Lifecycle`], as [`Lifecycle::subscribe`]
/// delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A step was added.
    Add {
        /// The step's title.
        title: String,
    },
    /// A step was removed.
    Remove {
        /// The step's title.
        title: String,
    },
    /// A step's start hook is about to run.
    Start {
        /// The step's title.
        title: String,
    },
    /// A step's stop hook is about to run, in `stop` or in a rollback.
    Stop {
        /// The step's title.
        title: String,
    },
    /// A step's hook failed.
    Failed {
        /// The step's title.
        title: String,
        /// Which hook failed.
        phase: Phase,
        /// The hook's error text.
        error: String,
    },
    /// `start` finished: every step is started.
    Online,
    /// `stop` finished: every step is stopped (some perhaps with errors).
    Offline,
}

/// Which of a step's hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The start hook.
    Start,
    /// The stop hook.
    Stop,
}

/// One step's failed hook: which step, and the hook's error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    /// The step's title.
    pub title: String,
    /// The hook's error text.
    pub error: String,
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {:?}: {}", self.title, self.error)
    }
}

/// What can go wrong in a [`Lifecycle`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// `add` with a title the lifecycle already has.
    #[error("the lifecycle already has a step {0:?}")]
    Duplicate(String),

    /// `remove` of a title the lifecycle does not have.
    #[error("the lifecycle has no step {0:?}")]
    Unknown(String),

    /// A start hook failed. The steps started before it, by the same call, were
    /// stopped in reverse order.
    #[error("step {:?} failed to start: {}{}", .failure.title, .failure.error, rollback_text(.rollback))]
    StartFailed {
        /// The step whose start hook failed, and its error.
        failure: StepFailure,
        /// The steps whose stop hook failed during the rollback; empty when the
        /// rollback was clean.
        rollback: Vec<StepFailure>,
    },

    /// One or more stop hooks failed. Every started step was still stopped.
    #[error("{} failed to stop: {}", count(.0.len()), list(.0))]
    StopFailed(Vec<StepFailure>),
}

fn rollback_text(rollback: &[StepFailure]) -> String {
    if rollback.is_empty() {
        String::new()
    } else {
        format!(
            "; rolling back, {} failed to stop: {}",
            count(rollback.len()),
            list(rollback)
        )
    }
}

fn count(steps: usize) -> String {
    if steps == 1 {
        "1 step".into()
    } else {
        format!("{steps} steps")
    }
}

fn list(failures: &[StepFailure]) -> String {
    let items: Vec<String> = failures.iter().map(StepFailure::to_string).collect();
    items.join("; ")
}

impl Lifecycle {
    /// An empty lifecycle.
    pub fn new() -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Self {
            steps: Vec::new(),
            events,
        }
    }

    /// A receiver of every [`Event`] from now on. See the [module docs](self).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Adds a step with a start hook and a stop hook, after the steps already
    /// there. It is not started until the next [`start`](Self::start).
    ///
    /// Fails with [`LifecycleError::Duplicate`] when `title` is taken.
    pub fn add<S, SFut, SErr, T, TFut, TErr>(
        &mut self,
        title: impl Into<String>,
        start: S,
        stop: T,
    ) -> Result<(), LifecycleError>
    where
        S: FnMut() -> SFut + Send + 'static,
        SFut: Future<Output = Result<(), SErr>> + Send + 'static,
        SErr: fmt::Display,
        T: FnMut() -> TFut + Send + 'static,
        TFut: Future<Output = Result<(), TErr>> + Send + 'static,
        TErr: fmt::Display,
    {
        self.push(title.into(), Some(hook(start)), Some(hook(stop)))
    }

    /// Adds a step that only has a start hook: [`stop`](Self::stop) just marks
    /// it stopped.
    pub fn add_start<S, SFut, SErr>(
        &mut self,
        title: impl Into<String>,
        start: S,
    ) -> Result<(), LifecycleError>
    where
        S: FnMut() -> SFut + Send + 'static,
        SFut: Future<Output = Result<(), SErr>> + Send + 'static,
        SErr: fmt::Display,
    {
        self.push(title.into(), Some(hook(start)), None)
    }

    /// Adds a step that only has a stop hook: it counts as started once
    /// [`start`](Self::start) has reached it, and its hook runs on
    /// [`stop`](Self::stop).
    pub fn add_stop<T, TFut, TErr>(
        &mut self,
        title: impl Into<String>,
        stop: T,
    ) -> Result<(), LifecycleError>
    where
        T: FnMut() -> TFut + Send + 'static,
        TFut: Future<Output = Result<(), TErr>> + Send + 'static,
        TErr: fmt::Display,
    {
        self.push(title.into(), None, Some(hook(stop)))
    }

    fn push(
        &mut self,
        title: String,
        start: Option<Hook>,
        stop: Option<Hook>,
    ) -> Result<(), LifecycleError> {
        if self.position(&title).is_some() {
            return Err(LifecycleError::Duplicate(title));
        }
        self.steps.push(Step {
            title: title.clone(),
            start,
            stop,
            started: false,
        });
        self.emit(Event::Add { title });
        Ok(())
    }

    /// Removes the step titled `title`, without running its stop hook, even if
    /// it is started. Fails with [`LifecycleError::Unknown`] when there is none.
    pub fn remove(&mut self, title: &str) -> Result<(), LifecycleError> {
        let index = self
            .position(title)
            .ok_or_else(|| LifecycleError::Unknown(title.to_string()))?;
        let step = self.steps.remove(index);
        self.emit(Event::Remove { title: step.title });
        Ok(())
    }

    /// The steps' titles, in start order.
    pub fn titles(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|step| step.title.as_str())
    }

    /// Whether the step titled `title` is started; `None` when there is none.
    pub fn is_started(&self, title: &str) -> Option<bool> {
        self.position(title).map(|index| self.steps[index].started)
    }

    /// Starts every step that is not started, in the order they were added, then
    /// sends [`Event::Online`].
    ///
    /// When a start hook fails, the steps this call started are stopped in
    /// reverse order (steps that were already started before the call are left
    /// running) and [`LifecycleError::StartFailed`] is returned.
    pub async fn start(&mut self) -> Result<(), LifecycleError> {
        let mut started_now = Vec::new();
        for index in 0..self.steps.len() {
            let step = &mut self.steps[index];
            if step.started {
                continue;
            }
            if let Some(start) = step.start.as_mut() {
                let title = step.title.clone();
                let _ = self.events.send(Event::Start {
                    title: title.clone(),
                });
                if let Err(error) = start().await {
                    self.emit(Event::Failed {
                        title: title.clone(),
                        phase: Phase::Start,
                        error: error.clone(),
                    });
                    let rollback = self.stop_steps(started_now.into_iter().rev()).await;
                    return Err(LifecycleError::StartFailed {
                        failure: StepFailure { title, error },
                        rollback,
                    });
                }
            }
            self.steps[index].started = true;
            started_now.push(index);
        }
        self.emit(Event::Online);
        Ok(())
    }

    /// Stops every started step, in reverse order, then sends
    /// [`Event::Offline`]. A failing stop hook does not stop the sequence: the
    /// other steps are still stopped, and [`LifecycleError::StopFailed`] lists
    /// every failure.
    pub async fn stop(&mut self) -> Result<(), LifecycleError> {
        let started: Vec<usize> = (0..self.steps.len())
            .rev()
            .filter(|&index| self.steps[index].started)
            .collect();
        let failures = self.stop_steps(started.into_iter()).await;
        self.emit(Event::Offline);
        if failures.is_empty() {
            Ok(())
        } else {
            Err(LifecycleError::StopFailed(failures))
        }
    }

    /// Stops the steps at `indices`, in that order; returns the failures.
    async fn stop_steps(&mut self, indices: impl Iterator<Item = usize>) -> Vec<StepFailure> {
        let mut failures = Vec::new();
        for index in indices {
            let step = &mut self.steps[index];
            if let Some(stop) = step.stop.as_mut() {
                let title = step.title.clone();
                let _ = self.events.send(Event::Stop {
                    title: title.clone(),
                });
                if let Err(error) = stop().await {
                    self.emit(Event::Failed {
                        title: title.clone(),
                        phase: Phase::Stop,
                        error: error.clone(),
                    });
                    failures.push(StepFailure { title, error });
                }
            }
            // Tried is stopped: a stop hook that failed is not run again.
            self.steps[index].started = false;
        }
        failures
    }

    fn position(&self, title: &str) -> Option<usize> {
        self.steps.iter().position(|step| step.title == title)
    }

    fn emit(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let steps: Vec<(&str, bool)> = self
            .steps
            .iter()
            .map(|step| (step.title.as_str(), step.started))
            .collect();
        f.debug_struct("Lifecycle").field("steps", &steps).finish()
    }
}

/// Boxes a hook, turning its error into text inside the future so that the
/// error type need not be `Send`.
fn hook<F, Fut, E>(mut hook: F) -> Hook
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display,
{
    Box::new(move || {
        let future = hook();
        Box::pin(async move { future.await.map_err(|error| error.to_string()) })
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A shared log of what the hooks did.
    type Log = Arc<Mutex<Vec<String>>>;

    /// A hook that logs `entry` and then fails with `error`, if given.
    fn logging(
        log: &Log,
        entry: &str,
        error: Option<&str>,
    ) -> impl FnMut() -> std::future::Ready<Result<(), String>> + Send + 'static {
        let (log, entry) = (Arc::clone(log), entry.to_string());
        let error = error.map(str::to_string);
        move || {
            log.lock().unwrap().push(entry.clone());
            std::future::ready(error.clone().map_or(Ok(()), Err))
        }
    }

    fn ok(
        log: &Log,
        entry: &str,
    ) -> impl FnMut() -> std::future::Ready<Result<(), String>> + Send + 'static {
        logging(log, entry, None)
    }

    /// Every event received so far.
    fn drain(events: &mut broadcast::Receiver<Event>) -> Vec<Event> {
        std::iter::from_fn(|| events.try_recv().ok()).collect()
    }

    fn start(title: &str) -> Event {
        Event::Start {
            title: title.into(),
        }
    }

    fn stop(title: &str) -> Event {
        Event::Stop {
            title: title.into(),
        }
    }

    fn entries(log: &Log) -> Vec<String> {
        log.lock().unwrap().clone()
    }

    /// A lifecycle with steps `a`, `b`, `c`, each logging its start and stop.
    fn three(log: &Log) -> Lifecycle {
        let mut lifecycle = Lifecycle::new();
        for title in ["a", "b", "c"] {
            let (on, off) = (format!("start {title}"), format!("stop {title}"));
            lifecycle.add(title, ok(log, &on), ok(log, &off)).unwrap();
        }
        lifecycle
    }

    #[tokio::test]
    async fn starts_in_order_and_stops_in_reverse() {
        let log = Log::default();
        let mut lifecycle = three(&log);
        let mut events = lifecycle.subscribe();

        lifecycle.start().await.unwrap();
        assert_eq!(
            drain(&mut events),
            [start("a"), start("b"), start("c"), Event::Online]
        );
        assert!(lifecycle
            .titles()
            .all(|t| lifecycle.is_started(t) == Some(true)));

        lifecycle.stop().await.unwrap();
        assert_eq!(
            drain(&mut events),
            [stop("c"), stop("b"), stop("a"), Event::Offline]
        );
        assert_eq!(
            entries(&log),
            ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
        );
    }

    #[tokio::test]
    async fn a_failed_start_rolls_back_what_it_started() {
        let log = Log::default();
        let mut lifecycle = three(&log);
        lifecycle
            .add(
                "d",
                logging(&log, "start d", Some("port 80 in use")),
                ok(&log, "stop d"),
            )
            .unwrap();
        lifecycle
            .add("e", ok(&log, "start e"), ok(&log, "stop e"))
            .unwrap();
        let mut events = lifecycle.subscribe();

        let error = lifecycle.start().await.unwrap_err();
        match &error {
            LifecycleError::StartFailed { failure, rollback } => {
                assert_eq!(failure.title, "d");
                assert_eq!(failure.error, "port 80 in use");
                assert!(rollback.is_empty());
            }
            other => panic!("expected StartFailed, got {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            r#"step "d" failed to start: port 80 in use"#
        );
        // d never started, so its stop hook does not run; e is never reached.
        assert_eq!(
            entries(&log),
            ["start a", "start b", "start c", "start d", "stop c", "stop b", "stop a"]
        );
        assert_eq!(
            drain(&mut events),
            [
                start("a"),
                start("b"),
                start("c"),
                start("d"),
                Event::Failed {
                    title: "d".into(),
                    phase: Phase::Start,
                    error: "port 80 in use".into()
                },
                stop("c"),
                stop("b"),
                stop("a"),
            ]
        );
        assert!(lifecycle
            .titles()
            .all(|t| lifecycle.is_started(t) == Some(false)));
    }

    #[tokio::test]
    async fn a_rollback_failure_is_reported() {
        let log = Log::default();
        let mut lifecycle = Lifecycle::new();
        lifecycle
            .add("a", ok(&log, "start a"), ok(&log, "stop a"))
            .unwrap();
        lifecycle
            .add(
                "b",
                ok(&log, "start b"),
                logging(&log, "stop b", Some("stuck")),
            )
            .unwrap();
        lifecycle
            .add_start("c", logging(&log, "start c", Some("refused")))
            .unwrap();

        let error = lifecycle.start().await.unwrap_err();
        let LifecycleError::StartFailed { failure, rollback } = &error else {
            panic!("expected StartFailed, got {error:?}");
        };
        assert_eq!(failure.title, "c");
        assert_eq!(
            rollback,
            &[StepFailure {
                title: "b".into(),
                error: "stuck".into()
            }]
        );
        assert_eq!(
            error.to_string(),
            r#"step "c" failed to start: refused; rolling back, 1 step failed to stop: step "b": stuck"#
        );
        // The rollback went on past b's failure.
        assert_eq!(
            entries(&log),
            ["start a", "start b", "start c", "stop b", "stop a"]
        );
    }

    #[tokio::test]
    async fn a_start_leaves_steps_started_before_it_running() {
        let log = Log::default();
        let mut lifecycle = three(&log);
        lifecycle.start().await.unwrap();
        lifecycle
            .add_start("late", logging(&log, "start late", Some("no")))
            .unwrap();
        log.lock().unwrap().clear();

        assert!(lifecycle.start().await.is_err());
        assert_eq!(entries(&log), ["start late"]);
        assert_eq!(lifecycle.is_started("a"), Some(true));
        assert_eq!(lifecycle.is_started("late"), Some(false));
    }

    #[tokio::test]
    async fn stop_goes_on_past_failing_steps() {
        let log = Log::default();
        let mut lifecycle = Lifecycle::new();
        lifecycle
            .add(
                "a",
                ok(&log, "start a"),
                logging(&log, "stop a", Some("a broke")),
            )
            .unwrap();
        lifecycle
            .add("b", ok(&log, "start b"), ok(&log, "stop b"))
            .unwrap();
        lifecycle
            .add(
                "c",
                ok(&log, "start c"),
                logging(&log, "stop c", Some("c broke")),
            )
            .unwrap();
        lifecycle.start().await.unwrap();
        let mut events = lifecycle.subscribe();

        let error = lifecycle.stop().await.unwrap_err();
        let LifecycleError::StopFailed(failures) = &error else {
            panic!("expected StopFailed, got {error:?}");
        };
        let titles: Vec<&str> = failures.iter().map(|f| f.title.as_str()).collect();
        assert_eq!(titles, ["c", "a"]);
        assert_eq!(
            error.to_string(),
            r#"2 steps failed to stop: step "c": c broke; step "a": a broke"#
        );
        assert_eq!(
            entries(&log),
            ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
        );
        let events = drain(&mut events);
        assert_eq!(events.first(), Some(&stop("c")));
        assert_eq!(events.last(), Some(&Event::Offline));
        assert!(lifecycle
            .titles()
            .all(|t| lifecycle.is_started(t) == Some(false)));

        // Stopped means stopped: a second stop has nothing to do.
        log.lock().unwrap().clear();
        lifecycle.stop().await.unwrap();
        assert!(entries(&log).is_empty());
    }

    #[tokio::test]
    async fn only_existing_hooks_run() {
        let log = Log::default();
        let mut lifecycle = Lifecycle::new();
        lifecycle
            .add_start("config", ok(&log, "load config"))
            .unwrap();
        lifecycle.add_stop("logs", ok(&log, "flush logs")).unwrap();
        let mut events = lifecycle.subscribe();

        lifecycle.start().await.unwrap();
        assert_eq!(lifecycle.is_started("logs"), Some(true));
        lifecycle.stop().await.unwrap();
        assert_eq!(entries(&log), ["load config", "flush logs"]);
        assert_eq!(
            drain(&mut events),
            [start("config"), Event::Online, stop("logs"), Event::Offline]
        );
    }

    #[tokio::test]
    async fn add_and_remove_send_events_and_titles_are_unique() {
        let log = Log::default();
        let mut lifecycle = Lifecycle::new();
        let mut events = lifecycle.subscribe();
        lifecycle
            .add("a", ok(&log, "start a"), ok(&log, "stop a"))
            .unwrap();
        lifecycle.add_stop("b", ok(&log, "stop b")).unwrap();

        let duplicate = lifecycle.add_start("a", ok(&log, "again")).unwrap_err();
        assert!(matches!(&duplicate, LifecycleError::Duplicate(t) if t == "a"));
        assert_eq!(
            duplicate.to_string(),
            r#"the lifecycle already has a step "a""#
        );

        lifecycle.remove("a").unwrap();
        let unknown = lifecycle.remove("a").unwrap_err();
        assert_eq!(unknown.to_string(), r#"the lifecycle has no step "a""#);
        assert_eq!(lifecycle.titles().collect::<Vec<_>>(), ["b"]);
        assert_eq!(
            drain(&mut events),
            [
                Event::Add { title: "a".into() },
                Event::Add { title: "b".into() },
                Event::Remove { title: "a".into() },
            ]
        );

        // A removed title is free again, and goes to the end.
        lifecycle.add_start("a", ok(&log, "start a")).unwrap();
        assert_eq!(lifecycle.titles().collect::<Vec<_>>(), ["b", "a"]);
    }

    #[tokio::test]
    async fn hooks_can_share_state_and_run_again() {
        let connections = Arc::new(Mutex::new(0_u32));
        let mut lifecycle = Lifecycle::new();
        let (open, close) = (Arc::clone(&connections), Arc::clone(&connections));
        lifecycle
            .add(
                "pool",
                move || {
                    let open = Arc::clone(&open);
                    async move {
                        tokio::task::yield_now().await;
                        *open.lock().unwrap() += 1;
                        Ok::<(), BoxError>(())
                    }
                },
                move || {
                    let close = Arc::clone(&close);
                    async move {
                        *close.lock().unwrap() -= 1;
                        Ok::<(), BoxError>(())
                    }
                },
            )
            .unwrap();

        // start and stop can run on a spawned task.
        let mut lifecycle = tokio::spawn(async move {
            lifecycle.start().await.unwrap();
            lifecycle
        })
        .await
        .unwrap();
        assert_eq!(*connections.lock().unwrap(), 1);
        lifecycle.stop().await.unwrap();
        lifecycle.start().await.unwrap();
        assert_eq!(*connections.lock().unwrap(), 1);
    }
}
