//! The last lines of a program's output, in memory, and the readers of
//! `infantctl logs`: the last N lines, then (following) every new one.
//!
//! A follower never slows anything down: new lines reach it through a bounded
//! broadcast; one that falls behind loses the oldest and is told how many lines
//! it missed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::lines::each_line;
use super::{lock, Chunk, ProgramLog, Stream};

/// Bytes of output kept per program for `logs -n` (whole reads, so up to one
/// read more).
const TAIL_BYTES: usize = 128 * 1024;

/// The last chunks of a program's output.
#[derive(Debug, Default)]
pub struct Tail {
    chunks: VecDeque<Arc<Chunk>>,
    bytes: usize,
}

impl Tail {
    /// Adds the newest chunk, forgetting the oldest beyond the budget.
    pub fn push(&mut self, chunk: Arc<Chunk>) {
        self.bytes += chunk.data.len();
        self.chunks.push_back(chunk);
        while self.bytes > TAIL_BYTES && self.chunks.len() > 1 {
            if let Some(old) = self.chunks.pop_front() {
                self.bytes -= old.data.len();
            }
        }
    }
}

/// Which lines a reader wants.
#[derive(Clone, Copy, Debug, Default)]
pub struct Filter {
    /// One worker's, or every worker's.
    pub worker: Option<u64>,
    /// One stream's, or both.
    pub stream: Option<Stream>,
}

impl Filter {
    fn matches(&self, chunk: &Chunk) -> bool {
        self.worker.is_none_or(|w| w == chunk.worker)
            && self.stream.is_none_or(|s| s == chunk.stream)
    }
}

/// One line of output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When the daemon read it.
    pub time: SystemTime,
    /// The worker that wrote it.
    pub worker: u64,
    /// Its stream.
    pub stream: Stream,
    /// The line, without its `\n`; bytes as written.
    pub line: Vec<u8>,
    /// Lines of the program (any worker, any stream) this follower missed just
    /// before this one because it fell behind.
    pub missed: u64,
}

/// Lines for one reader: the history it asked for, then new lines if it follows.
pub struct LogReader {
    history: VecDeque<LogLine>,
    follow: Option<broadcast::Receiver<Arc<Chunk>>>,
    filter: Filter,
    /// The number of the next line expected from the broadcast: earlier ones
    /// were in the history; a later one means lines were missed.
    next: u64,
    missed: u64,
    /// Lines of the chunk being delivered.
    pending: VecDeque<LogLine>,
    closed: CancellationToken,
}

impl LogReader {
    pub(super) fn new(
        log: &ProgramLog,
        filter: Filter,
        last: usize,
        follow: bool,
        closed: CancellationToken,
    ) -> LogReader {
        let state = lock(&log.state);
        let mut history = VecDeque::new();
        'chunks: for chunk in state.tail.chunks.iter().rev() {
            if history.len() >= last {
                break;
            }
            if !filter.matches(chunk) {
                continue;
            }
            for line in each_line(&chunk.data).rev() {
                if history.len() >= last {
                    break 'chunks;
                }
                history.push_front(line_of(chunk, line));
            }
        }
        // Subscribed under the lock: every chunk not in the tail snapshot comes
        // through the broadcast.
        let followers = follow.then(|| log.followers.subscribe());
        LogReader {
            history,
            follow: followers,
            filter,
            next: state.next_line,
            missed: 0,
            pending: VecDeque::new(),
            closed: if follow { closed } else { cancelled() },
        }
    }

    pub(super) fn empty(follow: bool, closed: CancellationToken) -> LogReader {
        LogReader {
            history: VecDeque::new(),
            // No output is captured: a follower waits for the daemon to stop.
            follow: None,
            filter: Filter::default(),
            next: 0,
            missed: 0,
            pending: VecDeque::new(),
            closed: if follow { closed } else { cancelled() },
        }
    }

    /// The next line; `None` at the end (no follow, or the daemon stopping).
    pub async fn next(&mut self) -> Option<LogLine> {
        if let Some(line) = self.history.pop_front() {
            return Some(line);
        }
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            let Some(follow) = self.follow.as_mut() else {
                // Not following; or following a daemon that captures nothing,
                // which ends when the daemon stops.
                self.closed.cancelled().await;
                return None;
            };
            let received = tokio::select! {
                received = follow.recv() => received,
                () = self.closed.cancelled() => return None,
            };
            let chunk = match received {
                Ok(chunk) => chunk,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if chunk.first + chunk.lines <= self.next {
                continue; // already in the history
            }
            self.missed += chunk.first.saturating_sub(self.next);
            self.next = chunk.first + chunk.lines;
            if !self.filter.matches(&chunk) {
                continue;
            }
            for line in each_line(&chunk.data) {
                let mut line = line_of(&chunk, line);
                line.missed = std::mem::take(&mut self.missed);
                self.pending.push_back(line);
            }
        }
    }
}

fn line_of(chunk: &Chunk, line: &[u8]) -> LogLine {
    LogLine {
        time: chunk.time,
        worker: chunk.worker,
        stream: chunk.stream,
        line: line.to_vec(),
        missed: 0,
    }
}

fn cancelled() -> CancellationToken {
    let token = CancellationToken::new();
    token.cancel();
    token
}
