//! The daemon's log output: lines go to stderr from a thread of their own,
//! through a bounded queue, so that a stderr nobody reads (a full pipe, a
//! stopped terminal) can never block the engine. When the queue is full a line
//! is dropped and counted; the count is written out as soon as stderr takes
//! lines again.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines queued for stderr before new ones are dropped: room for a burst (a
/// cluster of a hundred workers starting) without holding more than a few
/// hundred KiB.
const QUEUE_LINES: usize = 1024;

/// How long the guard waits at exit for queued lines to reach stderr.
const DRAIN_DEADLINE: Duration = Duration::from_secs(1);

/// The counters the writer thread and the loggers share.
#[derive(Debug, Default)]
struct Counters {
    /// Lines dropped because the queue was full, ever.
    dropped: AtomicU64,
    /// Lines queued and not yet written.
    pending: AtomicUsize,
}

/// A [`MakeWriter`] whose writers hand each finished line to the writer thread
/// without ever blocking.
#[derive(Clone, Debug)]
pub struct LossyStderr {
    queue: SyncSender<Vec<u8>>,
    counters: Arc<Counters>,
}

/// Waits, when dropped, for the lines still queued to be written (for at most a
/// second: stderr may be a pipe nobody reads).
#[must_use = "dropping the guard at once may lose the last log lines"]
#[derive(Debug)]
pub struct LogGuard {
    counters: Option<Arc<Counters>>,
}

impl LossyStderr {
    /// Starts the writer thread on a duplicate of stderr (so that it never holds
    /// the lock of Rust's `Stderr` while blocked).
    pub fn start() -> std::io::Result<(LossyStderr, LogGuard)> {
        let stderr = File::from(std::io::stderr().as_fd().try_clone_to_owned()?);
        let (queue, lines) = sync_channel(QUEUE_LINES);
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("infantd-log".into())
            .spawn(move || write_lines(stderr, &lines, &shared))?;
        let guard = LogGuard {
            counters: Some(Arc::clone(&counters)),
        };
        Ok((LossyStderr { queue, counters }, guard))
    }
}

impl LogGuard {
    /// A guard with nothing to wait for (logging writes directly).
    pub(crate) fn none() -> LogGuard {
        LogGuard { counters: None }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let Some(counters) = &self.counters else {
            return;
        };
        let deadline = Instant::now() + DRAIN_DEADLINE;
        while counters.pending.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The writer thread: writes each line, and before it, how many were dropped
/// since the last one written.
fn write_lines(mut stderr: File, lines: &Receiver<Vec<u8>>, counters: &Counters) {
    let mut reported = 0;
    for line in lines {
        let dropped = counters.dropped.load(Ordering::Relaxed);
        if dropped > reported {
            let note = format!(
                "infantd: {} log line(s) dropped: stderr was not taking them\n",
                dropped - reported
            );
            let _ = stderr.write_all(note.as_bytes());
            reported = dropped;
        }
        let _ = stderr.write_all(&line);
        counters.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One log line being formatted; queued when the formatter is done with it.
pub struct Line<'a> {
    sink: &'a LossyStderr,
    buffer: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let counters = &self.sink.counters;
        counters.pending.fetch_add(1, Ordering::AcqRel);
        match self.sink.queue.try_send(std::mem::take(&mut self.buffer)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                counters.pending.fetch_sub(1, Ordering::AcqRel);
                counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<'a> MakeWriter<'a> for LossyStderr {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            sink: self,
            buffer: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        // A queue with no thread behind it: nothing is ever written.
        let (queue, _lines) = sync_channel(2);
        let sink = LossyStderr {
            queue,
            counters: Arc::new(Counters::default()),
        };
        for _ in 0..5 {
            let mut line = sink.make_writer();
            line.write_all(b"a line\n").expect("buffered");
        }
        assert_eq!(sink.counters.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(sink.counters.pending.load(Ordering::Relaxed), 2);
    }
}
