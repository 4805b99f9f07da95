//! The event bus: every change in the engine becomes an [`Event`].
//!
//! Events go into one ring, bounded both in events ([`HISTORY`]) and in payload
//! bytes ([`HISTORY_PAYLOAD_BYTES`]), and nowhere else: each watcher is only a
//! cursor (the `seq` of the next event it wants) into that ring. So the memory
//! events take does not grow with the number of watchers nor with how far
//! behind they are. Publishing never waits for a watcher: one that falls behind
//! the ring's oldest event skips to it and is told how many it missed. A new
//! watcher's replay is the ring itself, read as it goes, not a copy.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::state::{InstanceStatus, ProgramStatus};
use crate::daemon::process::reaper::ExitStatus;

/// Events retained for replay and for watchers that are behind.
pub const HISTORY: usize = 1024;
/// Message payload bytes retained: a worker's messages may be up to 1 MiB each,
/// and the count alone would let 1,024 of them pin a gigabyte. Past this, the
/// oldest events leave the ring early (and a watcher still on them misses them).
pub const HISTORY_PAYLOAD_BYTES: usize = 4 << 20;

/// What an event reports (see `EventKind` in the proto for each one's fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A program's or instance's status changed.
    Status,
    /// An instance became `ok`.
    Online,
    /// A program became `ok`.
    Started,
    /// An instance exited.
    Exit,
    /// An instance was respawned.
    Respawn,
    /// A worker is being recycled.
    Recycle,
    /// A program began to stop.
    Stopping,
    /// A program stopped.
    Stopped,
    /// A worker sent a message.
    Message,
    /// Something failed.
    Error,
    /// A cluster's size changed.
    Scale,
    /// A config reload began (`plan`).
    Reload,
    /// A program was removed and forgotten.
    Removed,
}

/// A change in the engine. Fields that do not apply to the kind are empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Increases by one per event.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub time_ms: i64,
    /// The program.
    pub program: String,
    /// The worker, 0 for program events.
    pub worker: u64,
    /// The worker's pid, 0 if none.
    pub pid: u32,
    /// What happened.
    pub kind: EventKind,
    /// New program status (`Status` about a program).
    pub program_status: Option<ProgramStatus>,
    /// New instance status (`Status` about an instance).
    pub instance_status: Option<InstanceStatus>,
    /// How the process ended (`Exit`, `Respawn`).
    pub exit: Option<ExitStatus>,
    /// Why.
    pub reason: String,
    /// Message bytes (`Message`).
    pub payload: Vec<u8>,
    /// Connections served (`Recycle`).
    pub connections: u64,
    /// New worker count (`Scale`).
    pub count: u32,
    /// Hold-down waited (`Respawn`), in milliseconds.
    pub delay_ms: u64,
    /// What a reload does (`Reload`).
    pub plan: Vec<super::plan::PlanEntry>,
}

impl Event {
    /// A blank event of `kind` about `program`; the bus fills in `seq` and `time_ms`.
    pub fn new(program: &str, kind: EventKind) -> Self {
        Event {
            seq: 0,
            time_ms: 0,
            program: program.to_string(),
            worker: 0,
            pid: 0,
            kind,
            program_status: None,
            instance_status: None,
            exit: None,
            reason: String::new(),
            payload: Vec::new(),
            connections: 0,
            count: 0,
            delay_ms: 0,
            plan: Vec::new(),
        }
    }

    /// Sets the worker and pid.
    pub fn worker(mut self, id: u64, pid: Option<nix::unistd::Pid>) -> Self {
        self.worker = id;
        self.pid = pid.map_or(0, |p| p.as_raw().unsigned_abs());
        self
    }

    /// Sets the reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }
}

/// The retained events: consecutive `seq`s, oldest first.
struct Ring {
    events: VecDeque<Arc<Event>>,
    /// Payload bytes of `events`.
    payload: usize,
    /// The `seq` the next event gets.
    next_seq: u64,
}

impl Ring {
    /// The `seq` of the oldest retained event (`next_seq` if none is).
    fn first_seq(&self) -> u64 {
        self.next_seq - self.events.len() as u64
    }
}

/// The ring, shared by the bus (which alone writes it) and every watcher.
type SharedRing = Arc<Mutex<Ring>>;

/// Reads the ring; a watcher that panicked holding the lock left it intact.
fn lock(ring: &SharedRing) -> MutexGuard<'_, Ring> {
    ring.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An event as a watcher receives it.
#[derive(Debug)]
pub struct Delivery {
    /// The event.
    pub event: Arc<Event>,
    /// Events this watcher missed just before this one: they left the ring
    /// before it read them.
    pub missed: u64,
}

/// One watcher: a cursor into the bus's ring.
pub struct Subscription {
    ring: SharedRing,
    /// The next `seq` published; closed when the bus is gone.
    published: watch::Receiver<u64>,
    /// The `seq` this watcher reads next.
    cursor: u64,
    /// Where a watcher that does not follow stops: the next `seq` at subscription.
    now: u64,
    follow: bool,
}

impl Subscription {
    /// Skips the retained events: only events published from now on are read.
    pub fn skip_history(&mut self) {
        self.cursor = self.now;
    }

    /// Skips every event published so far, retained or not.
    pub fn skip_to_now(&mut self) {
        let next = lock(&self.ring).next_seq;
        self.cursor = self.cursor.max(next);
    }

    /// Replays only the last `n` retained events that `wanted` keeps (published
    /// before the subscription), then goes on as usual.
    pub fn replay_last(&mut self, n: usize, wanted: impl Fn(&Event) -> bool) {
        let ring = lock(&self.ring);
        let first = ring.first_seq();
        let mut start = self.now;
        let mut kept = 0;
        for (offset, event) in ring.events.iter().enumerate().rev() {
            if kept == n {
                break;
            }
            let seq = first + offset as u64;
            if seq < self.now && wanted(event) {
                kept += 1;
                start = seq;
            }
        }
        drop(ring);
        self.cursor = self.cursor.max(start);
    }

    /// Stops at the events published before the subscription, instead of
    /// waiting for new ones.
    pub fn stop_at_now(&mut self) {
        self.follow = false;
    }

    /// The next event and how many were missed before it; waits for one if
    /// following. `None` at the end: the bus is gone, or (not following) the
    /// events up to the subscription have been read.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            // Marked seen before the ring is read: a publish after this wakes us.
            self.published.borrow_and_update();
            if !self.follow && self.cursor >= self.now {
                return None;
            }
            if let Some(delivery) = self.read() {
                return Some(delivery);
            }
            if self.published.changed().await.is_err() {
                // The bus is gone: what is still in the ring can be read.
                return self.read();
            }
        }
    }

    /// The event at the cursor, if it has been published; skips to the oldest
    /// retained one if the cursor has fallen out of the ring.
    fn read(&mut self) -> Option<Delivery> {
        let ring = lock(&self.ring);
        let first = ring.first_seq();
        let missed = first.saturating_sub(self.cursor);
        self.cursor = self.cursor.max(first);
        let offset = usize::try_from(self.cursor - first).ok()?;
        let event = Arc::clone(ring.events.get(offset)?);
        self.cursor += 1;
        Some(Delivery { event, missed })
    }
}

/// Sequence numbers and the ring of retained events.
pub struct EventBus {
    ring: SharedRing,
    /// The next `seq`, published to wake the watchers.
    published: watch::Sender<u64>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// An empty bus; the first event gets `seq` 1.
    pub fn new() -> Self {
        EventBus {
            ring: Arc::new(Mutex::new(Ring {
                events: VecDeque::with_capacity(HISTORY),
                payload: 0,
                next_seq: 1,
            })),
            published: watch::Sender::new(1),
        }
    }

    /// Stamps and publishes `event`. Never blocks on a watcher: they only hold
    /// the ring's lock to clone one event out of it.
    pub fn publish(&mut self, mut event: Event) {
        let mut ring = lock(&self.ring);
        event.seq = ring.next_seq;
        event.time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        tracing::debug!(
            seq = event.seq,
            program = %event.program,
            worker = event.worker,
            pid = event.pid,
            kind = ?event.kind,
            reason = %event.reason,
            "event"
        );
        ring.payload += event.payload.len();
        ring.events.push_back(Arc::new(event));
        ring.next_seq += 1;
        while ring.events.len() > HISTORY || ring.payload > HISTORY_PAYLOAD_BYTES {
            let Some(old) = ring.events.pop_front() else {
                break;
            };
            ring.payload -= old.payload.len();
        }
        let next_seq = ring.next_seq;
        drop(ring);
        // Nobody watching is fine.
        self.published.send_replace(next_seq);
    }

    /// A watcher that reads the retained events, then follows new ones.
    pub fn subscribe(&self) -> Subscription {
        let ring = lock(&self.ring);
        Subscription {
            ring: Arc::clone(&self.ring),
            published: self.published.subscribe(),
            cursor: ring.first_seq(),
            now: ring.next_seq,
            follow: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: usize) -> Event {
        let mut event = Event::new("p", EventKind::Message);
        event.payload = vec![7; bytes];
        event
    }

    /// Reads what a non-following watcher gets: (seq, missed) pairs.
    async fn read_all(mut sub: Subscription) -> Vec<(u64, u64)> {
        sub.stop_at_now();
        let mut seen = Vec::new();
        while let Some(d) = sub.next().await {
            seen.push((d.event.seq, d.missed));
        }
        seen
    }

    #[tokio::test]
    async fn large_payloads_leave_the_ring_early() {
        let mut bus = EventBus::new();
        for _ in 0..10 {
            bus.publish(message(1 << 20));
        }
        bus.publish(Event::new("p", EventKind::Status));
        {
            let ring = lock(&bus.ring);
            let bytes: usize = ring.events.iter().map(|e| e.payload.len()).sum();
            assert!(bytes <= HISTORY_PAYLOAD_BYTES, "{bytes} bytes retained");
            assert_eq!(ring.payload, bytes);
        }
        let seqs: Vec<u64> = read_all(bus.subscribe())
            .await
            .iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(
            seqs,
            [7, 8, 9, 10, 11],
            "the 4 newest messages and the status"
        );
    }

    #[tokio::test]
    async fn seq_increases_and_history_is_bounded() {
        let mut bus = EventBus::new();
        for _ in 0..(HISTORY + 10) {
            bus.publish(Event::new("p", EventKind::Status));
        }
        let seen = read_all(bus.subscribe()).await;
        assert_eq!(seen.len(), HISTORY);
        assert_eq!(seen[0], (11, 0));
        assert_eq!(seen[HISTORY - 1].0, (HISTORY + 10) as u64);
    }

    #[tokio::test]
    async fn a_lagging_watcher_is_told_how_many_it_missed() {
        let mut bus = EventBus::new();
        let mut sub = bus.subscribe();
        for _ in 0..(HISTORY + 5) {
            bus.publish(Event::new("p", EventKind::Status));
        }
        let first = sub.next().await.expect("an event");
        assert_eq!((first.event.seq, first.missed), (6, 5));
        let next = sub.next().await.expect("the one after");
        assert_eq!((next.event.seq, next.missed), (7, 0));
    }

    #[tokio::test]
    async fn a_follower_wakes_for_new_events_and_ends_with_the_bus() {
        let mut bus = EventBus::new();
        bus.publish(Event::new("p", EventKind::Status));
        let mut sub = bus.subscribe();
        sub.skip_history();
        let reader = tokio::spawn(async move {
            let mut seqs = Vec::new();
            while let Some(d) = sub.next().await {
                seqs.push(d.event.seq);
            }
            seqs
        });
        tokio::task::yield_now().await;
        bus.publish(Event::new("p", EventKind::Status));
        bus.publish(Event::new("p", EventKind::Status));
        drop(bus);
        assert_eq!(reader.await.expect("reader"), [2, 3]);
    }

    #[tokio::test]
    async fn watchers_share_the_ring_instead_of_copying_it() {
        let mut bus = EventBus::new();
        for _ in 0..4 {
            bus.publish(message(1 << 20));
        }
        let watchers: Vec<_> = (0..50).map(|_| bus.subscribe()).collect();
        // Every event is referenced once by the ring, not once per watcher.
        for event in lock(&bus.ring).events.iter() {
            assert_eq!(Arc::strong_count(event), 1);
        }
        drop(watchers);
    }
}
