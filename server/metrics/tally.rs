//! Counts the snapshots do not hold, kept from the event stream: recycles and
//! failed starts per program, and events this watcher lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::daemon::engine::events::EventKind;
use crate::daemon::engine::state::InstanceStatus;
use crate::daemon::engine::EngineHandle;

/// Per-program counters, and the event-bus drops seen.
#[derive(Debug, Default)]
pub struct Tally {
    programs: Mutex<HashMap<String, ProgramTally>>,
    drops: AtomicU64,
}

/// One program's counters since the daemon started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProgramTally {
    /// Workers recycled.
    pub recycles: u64,
    /// Instances that failed to start.
    pub starts_failed: u64,
}

impl Tally {
    /// A program's counters (zero if nothing happened to it).
    pub fn program(&self, name: &str) -> ProgramTally {
        self.programs
            .lock()
            .map(|programs| programs.get(name).copied().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Events the metrics watcher lost because it fell behind the bus.
    pub fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }

    fn forget(&self, program: &str) {
        if let Ok(mut programs) = self.programs.lock() {
            programs.remove(program);
        }
    }

    fn count(&self, program: &str, change: impl FnOnce(&mut ProgramTally)) {
        if let Ok(mut programs) = self.programs.lock() {
            // One entry per program the daemon has: removed ones are forgotten.
            match programs.get_mut(program) {
                Some(tally) => change(tally),
                None => change(programs.entry(program.to_owned()).or_default()),
            }
        }
    }
}

/// Watches the event bus and counts into `tally` until `shutdown`.
pub async fn watch(engine: EngineHandle, tally: Arc<Tally>, shutdown: CancellationToken) {
    let Ok(mut live) = engine.subscribe().await else {
        return;
    };
    live.skip_history();
    loop {
        let delivery = tokio::select! {
            delivery = live.next() => delivery,
            () = shutdown.cancelled() => return,
        };
        let Some(delivery) = delivery else { return };
        if delivery.missed > 0 {
            tally.drops.fetch_add(delivery.missed, Ordering::Relaxed);
        }
        let event = &delivery.event;
        match event.kind {
            EventKind::Recycle => tally.count(&event.program, |t| t.recycles += 1),
            // A new program of that name starts from zero, and names of
            // programs started over the API may all differ: keep nothing.
            EventKind::Removed => tally.forget(&event.program),
            EventKind::Status if event.instance_status == Some(InstanceStatus::Error) => {
                tally.count(&event.program, |t| t.starts_failed += 1)
            }
            _ => {}
        }
    }
}
