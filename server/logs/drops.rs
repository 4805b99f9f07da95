//! Dropped output, counted per worker: which workers' bytes were lost, so that
//! `infantctl workers` can point at the one that floods or lost its lines.
//!
//! Worker ids only grow within a program (a respawn keeps its id; a scale-up,
//! a recycle or a rolling restart's replacement gets a new one), so a worker
//! that is gone never drops again. The count is kept for at most
//! [`MAX_WORKERS`] workers per program: past that, the lowest id, the oldest
//! worker, is forgotten. Its bytes stay in the program's total.

use std::collections::BTreeMap;

/// Workers whose dropped bytes a program keeps: more than a cluster usually
/// runs, a few KiB at most per program, and nothing for one that never drops.
pub(super) const MAX_WORKERS: usize = 256;

/// Bytes dropped per worker of one program.
#[derive(Debug, Default)]
pub(super) struct WorkerDrops {
    by_worker: BTreeMap<u64, u64>,
}

impl WorkerDrops {
    /// Counts `bytes` of `worker`'s output dropped.
    pub(super) fn add(&mut self, worker: u64, bytes: u64) {
        if bytes == 0 {
            return;
        }
        if !self.by_worker.contains_key(&worker) && self.by_worker.len() >= MAX_WORKERS {
            self.by_worker.pop_first();
        }
        *self.by_worker.entry(worker).or_default() += bytes;
    }

    /// Every worker with dropped bytes, and how many.
    pub(super) fn all(&self) -> BTreeMap<u64, u64> {
        self.by_worker.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_worker_and_the_oldest_worker_is_forgotten_first() {
        let mut drops = WorkerDrops::default();
        drops.add(1, 10);
        drops.add(2, 5);
        drops.add(1, 7);
        drops.add(3, 0);
        assert_eq!(drops.all(), BTreeMap::from([(1, 17), (2, 5)]));

        for worker in 3..=MAX_WORKERS as u64 + 1 {
            drops.add(worker, 1);
        }
        let all = drops.all();
        assert_eq!(all.len(), MAX_WORKERS);
        assert!(!all.contains_key(&1), "the oldest goes first");
        assert_eq!(all.get(&2), Some(&5));
        // A worker already counted is never the one forgotten to make room.
        drops.add(2, 1);
        assert_eq!(drops.all().get(&2), Some(&6));
        assert_eq!(drops.all().len(), MAX_WORKERS);
    }
}
