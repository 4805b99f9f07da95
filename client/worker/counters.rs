//! Connection and request counters, reported to the daemon in every heartbeat.
//!
//! A worker bumps them as it serves; they are plain atomics so any task or thread
//! can count without a lock. In an enhanced cluster the daemon recycles a worker
//! once either count reaches `max_connections`, so reaching it wakes the heartbeat
//! loop to report at once instead of at the next interval.
//!
//! The enhanced-mode helpers count through them:
//! [`CountingListener`](super::CountingListener) calls [`Counters::connection`]
//! per accepted connection, [`CountRequestsLayer`](super::CountRequestsLayer)
//! calls [`Counters::request`] per request.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// A worker's connection and request counts.
#[derive(Debug, Default)]
pub struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    /// The daemon's recycle limit; 0: not counted.
    limit: u64,
    reached: Notify,
}

impl Counters {
    /// Counters that wake [`Counters::limit_reached`] when a count reaches `limit`
    /// (0: never).
    pub(super) fn new(limit: u64) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Counts one accepted connection; returns the new total.
    pub fn connection(&self) -> u64 {
        self.bump(&self.connections)
    }

    /// Counts one served request; returns the new total.
    pub fn request(&self) -> u64 {
        self.bump(&self.requests)
    }

    /// Connections counted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Requests counted so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The count at which the daemon recycles this worker, if it counts at all.
    pub fn limit(&self) -> Option<u64> {
        (self.limit != 0).then_some(self.limit)
    }

    /// Resolves once a count has reached the limit since the last call.
    pub(super) async fn limit_reached(&self) {
        self.reached.notified().await;
    }

    fn bump(&self, count: &AtomicU64) -> u64 {
        let total = count.fetch_add(1, Ordering::Relaxed) + 1;
        // Counts go up by one, so each reaches the limit exactly once. notify_one
        // keeps a permit when nobody waits yet, so the crossing is never lost.
        if total == self.limit {
            self.reached.notify_one();
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn reaching_the_limit_wakes_once() {
        let counters = Counters::new(2);
        assert_eq!(counters.connection(), 1);
        assert_eq!(counters.request(), 1);
        assert_eq!(counters.request(), 2);
        assert_eq!(counters.requests(), 2);
        assert_eq!(counters.limit(), Some(2));
        let woke = tokio::time::timeout(Duration::from_secs(5), counters.limit_reached()).await;
        assert!(woke.is_ok(), "the crossing was lost");

        counters.request(); // past the limit: no second wake-up
        let again = tokio::time::timeout(Duration::from_millis(20), counters.limit_reached()).await;
        assert!(again.is_err());
    }

    #[tokio::test]
    async fn no_limit_never_wakes() {
        let counters = Counters::new(0);
        assert_eq!(counters.limit(), None);
        counters.connection();
        let woke = tokio::time::timeout(Duration::from_millis(20), counters.limit_reached()).await;
        assert!(woke.is_err());
    }
}
