//! The event bus: every change in the engine becomes an [`Event`].
//!
//! Events go out on a `broadcast` channel, which never waits for a receiver: a
//! watcher that falls behind loses the oldest events and learns how many from the
//! channel (`Lagged`), which the gRPC facade passes on in `missed`. The bus also
//! keeps the last [`HISTORY`] events so a new watcher can replay them; subscribing
//! takes the history and the receiver in one step of the engine, so replay and live
//! events join without a gap or a duplicate.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

use super::state::{InstanceStatus, ProgramStatus};
use crate::daemon::process::reaper::ExitStatus;

/// Events retained for replay.
pub const HISTORY: usize = 1024;
/// Message payload bytes retained for replay: a worker's messages may be up to
/// 1 MiB each, and the count alone would let 1,024 of them pin a gigabyte. Past
/// this, the oldest events leave the history early.
pub const HISTORY_PAYLOAD_BYTES: usize = 4 << 20;
/// Events a watcher may fall behind before it starts missing some. The channel
/// allocates and fills every slot up front and keeps the last `LAG` events alive
/// in them, so this is a memory bound as much as a lag bound: equal to
/// [`HISTORY`], the events kept alive are the history's, and nothing more.
const LAG: usize = HISTORY;

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

/// What a new watcher gets: the retained history and the live feed after it.
pub struct Subscription {
    /// Retained events, oldest first.
    pub history: Vec<Arc<Event>>,
    /// Every event published after `history`.
    pub live: broadcast::Receiver<Arc<Event>>,
}

/// Sequence numbers, history and the broadcast channel.
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    history: VecDeque<Arc<Event>>,
    /// Payload bytes of the events in `history`.
    history_payload: usize,
    next_seq: u64,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// An empty bus; the first event gets `seq` 1.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(LAG);
        EventBus {
            tx,
            history: VecDeque::with_capacity(HISTORY),
            history_payload: 0,
            next_seq: 1,
        }
    }

    /// Stamps and publishes `event`. Never blocks.
    pub fn publish(&mut self, mut event: Event) {
        event.seq = self.next_seq;
        self.next_seq += 1;
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
        let event = Arc::new(event);
        self.history_payload += event.payload.len();
        self.history.push_back(Arc::clone(&event));
        while self.history.len() > HISTORY || self.history_payload > HISTORY_PAYLOAD_BYTES {
            let Some(old) = self.history.pop_front() else {
                break;
            };
            self.history_payload -= old.payload.len();
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }

    /// The history and a receiver for what follows it.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            history: self.history.iter().cloned().collect(),
            live: self.tx.subscribe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_payloads_leave_the_history_early() {
        let mut bus = EventBus::new();
        for _ in 0..10 {
            let mut event = Event::new("p", EventKind::Message);
            event.payload = vec![7; 1 << 20];
            bus.publish(event);
        }
        bus.publish(Event::new("p", EventKind::Status));
        let sub = bus.subscribe();
        let bytes: usize = sub.history.iter().map(|e| e.payload.len()).sum();
        assert!(bytes <= HISTORY_PAYLOAD_BYTES, "{bytes} bytes retained");
        assert_eq!(sub.history.len(), 5, "the 4 newest messages and the status");
        assert_eq!(sub.history.last().map(|e| e.seq), Some(11));
        assert_eq!(bus.history_payload, bytes);
    }

    #[test]
    fn seq_increases_and_history_is_bounded() {
        let mut bus = EventBus::new();
        for _ in 0..(HISTORY + 10) {
            bus.publish(Event::new("p", EventKind::Status));
        }
        let sub = bus.subscribe();
        assert_eq!(sub.history.len(), HISTORY);
        assert_eq!(sub.history[0].seq, 11);
        assert_eq!(sub.history[HISTORY - 1].seq, (HISTORY + 10) as u64);
    }

    #[tokio::test]
    async fn a_lagging_watcher_is_told_how_many_it_missed() {
        let mut bus = EventBus::new();
        let mut sub = bus.subscribe();
        for _ in 0..(LAG + 5) {
            bus.publish(Event::new("p", EventKind::Status));
        }
        match sub.live.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 5),
            other => panic!("expected a lag, got {other:?}"),
        }
        let next = sub.live.recv().await.expect("event after the lag");
        assert_eq!(next.seq, 6);
    }
}
