//! The event `Recorder`: every event of a daemon from the moment it is created,
//! and waits for the ones a test expects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use infant::proto::{self, Event, EventKind};

use super::daemon::Daemon;
use super::wait::{poll, DEADLINE};

/// Records every event of a daemon from the moment it is created.
#[derive(Clone)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Recorder {
    /// Subscribes (live only) and records in the background. The subscription is
    /// in place when this returns.
    pub async fn new(daemon: &Daemon) -> Recorder {
        let mut stream = daemon
            .control()
            .await
            .events(None, false, true)
            .await
            .expect("watch events");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let task = tokio::spawn(async move {
            while let Ok(Some(event)) = stream.message().await {
                if let Ok(mut all) = sink.lock() {
                    all.push(event);
                }
            }
        });
        Recorder {
            events,
            task: Arc::new(task),
        }
    }

    /// A copy of everything so far.
    pub fn all(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Every pid the events so far mention: all the processes the daemon started.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .all()
            .iter()
            .map(|e| e.pid)
            .filter(|&p| p != 0)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Waits for an event matching `matches`; returns it.
    pub async fn wait_for(&self, what: &str, matches: impl Fn(&Event) -> bool) -> Event {
        self.wait_for_within(what, DEADLINE, matches).await
    }

    /// Like [`Recorder::wait_for`], with a deadline of its own: for a test whose
    /// point is how soon the event comes.
    pub async fn wait_for_within(
        &self,
        what: &str,
        deadline: Duration,
        matches: impl Fn(&Event) -> bool,
    ) -> Event {
        let found = poll(deadline, || {
            std::future::ready(self.all().into_iter().find(|e| matches(e)))
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "no event within {deadline:?}: {what}\nseen:\n{}",
                self.seen()
            )
        })
    }

    /// Waits until `count` events match; returns them.
    pub async fn wait_for_n(
        &self,
        what: &str,
        count: usize,
        matches: impl Fn(&Event) -> bool,
    ) -> Vec<Event> {
        let found = poll(DEADLINE, || {
            let found: Vec<Event> = self.all().into_iter().filter(|e| matches(e)).collect();
            std::future::ready((found.len() >= count).then_some(found))
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "timed out waiting for {count}× {what}\nseen:\n{}",
                self.seen()
            )
        })
    }

    /// Waits for the exits of `old` and the spawns of `new`, then asserts that
    /// every old process exited before the first new one was spawned: the
    /// stop-all-then-start-all order of a full restart.
    pub async fn assert_all_exited_before_any_started(&self, old: &[u32], new: &[u32]) {
        let exits = self
            .wait_for_n("an exit of each old worker", old.len(), |e| {
                is(e, EventKind::Exit) && old.contains(&e.pid)
            })
            .await;
        let starts = self
            .wait_for_n("a spawn of each new worker", new.len(), |e| {
                is(e, EventKind::Status)
                    && e.instance_status == proto::InstanceStatus::Starting as i32
                    && new.contains(&e.pid)
            })
            .await;
        let last_exit = exits.iter().map(|e| e.seq).max();
        let first_start = starts.iter().map(|e| e.seq).min();
        assert!(
            last_exit < first_start,
            "every old worker {old:?} exits before a new one {new:?} starts:\n{}",
            self.seen()
        );
    }

    /// Everything so far, one line per event, for failure messages.
    fn seen(&self) -> String {
        self.all()
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

/// One line per event, for failure messages.
pub fn describe(e: &Event) -> String {
    format!(
        "#{} {} w{} pid{} {:?} ps={} is={} code={:?} sig={:?} delay={} reason={:?}",
        e.seq,
        e.program,
        e.worker,
        e.pid,
        EventKind::try_from(e.kind).unwrap_or(EventKind::Unspecified),
        e.program_status,
        e.instance_status,
        e.code,
        e.signal,
        e.delay_ms,
        e.reason
    )
}

/// Is `e` of `kind`?
pub fn is(e: &Event, kind: EventKind) -> bool {
    e.kind == kind as i32
}
