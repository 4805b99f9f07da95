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
#[cfg(test)]
use super::FOLLOW_CHUNKS;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::logs::file::FileRules;

    fn log(dir: &std::path::Path) -> Arc<ProgramLog> {
        let rules = FileRules {
            max_size: 1 << 20,
            keep: 1,
            private: true,
        };
        Arc::new(ProgramLog::new("p", dir, rules, Default::default()))
    }

    fn push(log: &Arc<ProgramLog>, worker: u64, stream: Stream, text: &str) {
        let lines = text.matches('\n').count() as u64;
        log.push(worker, stream, text.as_bytes().to_vec(), lines);
    }

    #[tokio::test]
    async fn the_last_lines_are_read_by_worker_and_stream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(dir.path());
        push(&log, 1, Stream::Out, "a1\na2\n");
        push(&log, 2, Stream::Err, "b1\n");
        push(&log, 1, Stream::Out, "a3\n");
        let log = &log;
        let read = |filter, last| async move {
            let mut reader = LogReader::new(log, filter, last, false, cancelled());
            let mut lines = Vec::new();
            while let Some(line) = reader.next().await {
                lines.push(String::from_utf8(line.line).expect("utf8"));
            }
            lines
        };
        let all = Filter::default();
        assert_eq!(read(all, 3).await, ["a2", "b1", "a3"]);
        let one = Filter {
            worker: Some(1),
            stream: Some(Stream::Out),
        };
        assert_eq!(read(one, 10).await, ["a1", "a2", "a3"]);
        let err = Filter {
            worker: None,
            stream: Some(Stream::Err),
        };
        assert_eq!(read(err, 10).await, ["b1"]);
    }

    #[tokio::test]
    async fn a_follower_that_fell_behind_is_told_how_many_lines_it_missed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = log(dir.path());
        let closed = CancellationToken::new();
        let mut reader = LogReader::new(&log, Filter::default(), 0, true, closed.clone());
        let total = FOLLOW_CHUNKS as u64 * 3;
        for n in 0..total {
            push(&log, 1, Stream::Out, &format!("line {n}\n"));
        }
        let mut received = 0;
        let mut missed = 0;
        let mut last = None;
        while received + missed < total {
            let line = reader.next().await.expect("a line");
            missed += line.missed;
            received += 1;
            last = Some(String::from_utf8(line.line).expect("utf8"));
        }
        assert!(missed > 0, "it fell behind");
        assert_eq!(received + missed, total, "every line received or counted");
        assert_eq!(
            last.as_deref(),
            Some(format!("line {}", total - 1).as_str())
        );
        closed.cancel();
        assert!(
            reader.next().await.is_none(),
            "a follower ends with the daemon"
        );
    }
}
