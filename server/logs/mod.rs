//! Program output: every instance's stdout and stderr, captured through pipes,
//! written to rotated files and kept in a small tail for `infantctl logs`.
//!
//! The pieces, and who runs them:
//! - one reader task, the reactor ([`capture`]), watches every pipe through an
//!   epoll instance of its own and drains each as fast as its program writes
//!   (pausing that pipe, for a bounded time, while its file writer lags), cuts
//!   the bytes into lines ([`lines`]) and hands each read's lines, as one
//!   [`Chunk`] with one timestamp, to the program's [`ProgramLog`];
//! - the [`ProgramLog`] keeps the last lines in memory ([`tail`]) for readers
//!   and followers, and queues them, prefixed with time and worker, for its file
//!   writer, up to a bound: what does not fit is dropped and counted, for the
//!   program and for its worker ([`drops`]);
//! - the file writer runs on the blocking pool, one job per program at a time,
//!   writing whole batches and rotating between lines ([`file`]).
//!
//! Nothing here waits on a disk or a reader while holding up the engine: the
//! engine only creates the pipes ([`Logs::outputs`]). A program waits on its
//! pipe while its file writer lags, as it would writing the file itself, but
//! never longer than [`STALL`] for a writer that takes nothing.

mod capture;
mod drops;
mod file;
mod lines;
mod tail;

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use capture::Outputs;
pub use tail::{Filter, LogLine, LogReader};

use self::drops::WorkerDrops;
use self::file::{FileRules, LogFile};
use crate::daemon::spec::{LogMode, ProgramSpec};

/// Bytes queued for one file before new output is dropped: enough to ride out
/// a slow disk for a moment, small enough for a daemon that stays small.
const MAX_PENDING: usize = 1024 * 1024;

/// Bytes queued for one file beyond which its pipe readers pause until the
/// writer takes them: the program then waits on its full pipe for a moment, as
/// it would writing to a file itself, rather than lose output.
const BACKLOG: usize = 256 * 1024;

/// How long a pipe stays unread for a writer that takes nothing (a hung disk)
/// before it is drained again, dropping and counting what does not fit.
const STALL: Duration = Duration::from_millis(500);

/// What a queue keeps of its buffers once output is quiet again.
const IDLE_QUEUE: usize = 16 * 1024;

/// Which of an instance's streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// stdout.
    Out,
    /// stderr.
    Err,
}

impl Stream {
    /// `out` or `err`, as the file names say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }
}

/// The lines one read of one pipe completed.
#[derive(Debug)]
pub struct Chunk {
    /// When they were read.
    pub time: SystemTime,
    /// The worker that wrote them.
    pub worker: u64,
    /// Its stream.
    pub stream: Stream,
    /// The lines, each ending in `\n`.
    pub data: Vec<u8>,
    /// How many.
    pub lines: u64,
    /// The program-wide number of the first one (lines of every worker and
    /// stream are numbered in one sequence).
    pub first: u64,
}

/// What the daemon counted of one program's output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// The program.
    pub program: String,
    /// Bytes written to its files (with their prefixes).
    pub written: u64,
    /// Bytes dropped: its files could not be written, or not fast enough.
    pub dropped: u64,
}

/// Where program output goes: the daemon's log folder and every program's log.
/// Cheap to clone.
#[derive(Clone)]
pub struct Logs {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None`: no folder (an embedded supervisor not given one); `file`
    /// programs then pass their output through as `inherit` does.
    dir: Option<PathBuf>,
    /// Files 0600 in a 0700 folder (a user's daemon) rather than 0640/0750.
    private: bool,
    programs: Mutex<HashMap<String, Arc<ProgramLog>>>,
    /// `/dev/null`, the output of `log = "off"` programs.
    null: Option<OwnedFd>,
    /// Pipes still being read, and a wake-up when one ends.
    readers: AtomicUsize,
    reader_ended: Notify,
    /// The task that reads the pipes, started with the first one.
    reactor: Mutex<Option<capture::Reactor>>,
    /// Told when a file writer takes its queue: paused pipes may be read again.
    room: Arc<Notify>,
    /// Set when the daemon stops: followers end.
    closed: CancellationToken,
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl Logs {
    /// Program output written under `dir`; with `None`, `file` programs' output
    /// is not captured (it goes where the daemon's goes).
    pub fn new(dir: Option<PathBuf>) -> Logs {
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| tracing::warn!("cannot open /dev/null for `log = \"off\"`: {e}"))
            .ok();
        Logs {
            inner: Arc::new(Inner {
                dir,
                private: !nix::unistd::geteuid().is_root(),
                programs: Mutex::new(HashMap::new()),
                null,
                readers: AtomicUsize::new(0),
                reader_ended: Notify::new(),
                reactor: Mutex::new(None),
                room: Arc::new(Notify::new()),
                closed: CancellationToken::new(),
            }),
        }
    }

    /// The stdout and stderr for a new process of worker `worker` of `spec`.
    /// Pass [`Outputs::child_fds`] to the spawn, then [`Outputs::start`] once it
    /// has forked (or drop it if it failed).
    pub fn outputs(&self, spec: &ProgramSpec, worker: u64) -> Outputs {
        match (spec.log, &self.inner.dir) {
            (LogMode::Inherit, _) | (LogMode::File, None) => Outputs::inherit(),
            (LogMode::Off, _) => match &self.inner.null {
                Some(null) => Outputs::fixed(null.as_raw_fd()),
                None => Outputs::inherit(),
            },
            (LogMode::File, Some(dir)) => match self.reactor() {
                Ok(reactor) => {
                    let log = self.program(spec, dir);
                    Outputs::capture(log, worker, self.clone(), reactor)
                }
                Err(e) => {
                    tracing::warn!(
                        program = %spec.name,
                        worker,
                        "cannot capture its output: {e}; it writes to the daemon's"
                    );
                    Outputs::inherit()
                }
            },
        }
    }

    /// The pipe reader, started on first use (on the current runtime).
    fn reactor(&self) -> std::io::Result<capture::Reactor> {
        let mut reactor = lock(&self.inner.reactor);
        if let Some(running) = reactor.as_ref().filter(|r| r.is_running()) {
            return Ok(running.clone());
        }
        let started = capture::Reactor::start(Arc::clone(&self.inner.room))?;
        *reactor = Some(started.clone());
        Ok(started)
    }

    /// The log of `spec`'s program, made on first use; its rules follow `spec`
    /// (a program redefined with other rules gets them at its next spawn).
    fn program(&self, spec: &ProgramSpec, dir: &Path) -> Arc<ProgramLog> {
        let rules = FileRules {
            max_size: spec.log_max_size,
            keep: spec.log_keep,
            private: self.inner.private,
        };
        let mut programs = lock(&self.inner.programs);
        let log = programs
            .entry(spec.name.clone())
            .or_insert_with(|| Arc::new(self.new_program(&spec.name, dir, rules)));
        lock(&log.state).rules = rules;
        Arc::clone(log)
    }

    /// Takes `spec`'s rotation rules now for a program that already has a log
    /// (a reload that changed only `log_max_size` or `log_keep`): they are read
    /// at each write, so nothing needs to restart.
    pub fn redefine(&self, spec: &ProgramSpec) {
        if let Some(log) = self.find(&spec.name) {
            let mut state = lock(&log.state);
            state.rules.max_size = spec.log_max_size;
            state.rules.keep = spec.log_keep;
        }
    }

    /// Forgets program `name` (it was removed): its in-memory tail and counts
    /// go; its files stay, and a new program of that name appends to them.
    pub fn forget(&self, name: &str) {
        lock(&self.inner.programs).remove(name);
    }

    /// The log of program `name`, if it ever captured anything.
    fn find(&self, name: &str) -> Option<Arc<ProgramLog>> {
        lock(&self.inner.programs).get(name).cloned()
    }

    /// Bytes of `name`'s output dropped so far.
    pub fn dropped(&self, name: &str) -> u64 {
        self.find(name)
            .map_or(0, |log| log.dropped.load(Ordering::Relaxed))
    }

    /// Bytes of `name`'s output dropped so far, per worker id, for the workers
    /// that lost any (the newest 256 of them: older ones are forgotten, their
    /// bytes still in [`Logs::dropped`], which is the sum).
    pub fn dropped_by_worker(&self, name: &str) -> BTreeMap<u64, u64> {
        self.find(name)
            .map_or_else(BTreeMap::new, |log| lock(&log.state).dropped.all())
    }

    /// What was written and dropped, per program that captured output.
    pub fn stats(&self) -> Vec<LogStats> {
        let programs = lock(&self.inner.programs);
        let mut stats: Vec<LogStats> = programs
            .values()
            .map(|log| LogStats {
                program: log.name.clone(),
                written: log.written.load(Ordering::Relaxed),
                dropped: log.dropped.load(Ordering::Relaxed),
            })
            .collect();
        stats.sort_by(|a, b| a.program.cmp(&b.program));
        stats
    }

    /// Reads `name`'s last lines and, with `follow`, what comes after: see
    /// [`LogReader`]. A program that never wrote anything reads empty.
    pub fn read(&self, name: &str, filter: Filter, last: usize, follow: bool) -> LogReader {
        let closed = self.inner.closed.clone();
        let Some(dir) = &self.inner.dir else {
            return LogReader::empty(follow, closed);
        };
        // Made here if need be, so that a follower of a program that has not
        // run yet sees its first lines.
        let log = Arc::clone(
            lock(&self.inner.programs)
                .entry(name.to_owned())
                .or_insert_with(|| {
                    let rules = FileRules {
                        max_size: crate::daemon::spec::DEFAULT_LOG_MAX_SIZE,
                        keep: crate::daemon::spec::DEFAULT_LOG_KEEP,
                        private: self.inner.private,
                    };
                    Arc::new(self.new_program(name, dir, rules))
                }),
        );
        LogReader::new(&log, filter, last, follow, closed)
    }

    /// Ends every follower: the daemon is stopping.
    pub fn stop_following(&self) {
        self.inner.closed.cancel();
    }

    /// Waits (up to `deadline`) for the pipes still open to be drained and the
    /// files written: the daemon is about to exit.
    pub async fn drain(&self, deadline: std::time::Duration) {
        let drained = async {
            loop {
                let ended = self.inner.reader_ended.notified();
                if self.inner.readers.load(Ordering::Acquire) == 0 {
                    break;
                }
                ended.await;
            }
            let logs: Vec<_> = lock(&self.inner.programs).values().cloned().collect();
            for log in logs {
                log.flushed().await;
            }
        };
        if tokio::time::timeout(deadline, drained).await.is_err() {
            tracing::warn!("program output still arriving at shutdown; the rest is not written");
        }
    }

    fn new_program(&self, name: &str, dir: &Path, rules: FileRules) -> ProgramLog {
        ProgramLog::new(name, dir, rules, Arc::clone(&self.inner.room))
    }

    fn reader_started(&self) -> ReaderGuard {
        self.inner.readers.fetch_add(1, Ordering::AcqRel);
        ReaderGuard(Arc::clone(&self.inner))
    }
}

/// Counts a pipe being read.
struct ReaderGuard(Arc<Inner>);

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::AcqRel);
        self.0.reader_ended.notify_waiters();
    }
}

/// One program's output: its files, its tail, its followers.
pub struct ProgramLog {
    name: String,
    state: Mutex<LogState>,
    followers: broadcast::Sender<Arc<Chunk>>,
    written: AtomicU64,
    dropped: AtomicU64,
    /// Told when the file writer has nothing left to write.
    idle: Notify,
    /// Told when the file writer takes what is queued (shared by every
    /// program: it wakes the pipe reader).
    room: Arc<Notify>,
}

struct LogState {
    rules: FileRules,
    out: Queue,
    err: Queue,
    /// A writer job is running.
    writing: bool,
    /// The files, here while no job writes them.
    files: Option<Box<[LogFile; 2]>>,
    /// The writer's buffers for stdout and stderr, here while no job runs.
    spare: [Vec<u8>; 2],
    tail: tail::Tail,
    /// The number the next line gets.
    next_line: u64,
    /// Bytes dropped, per worker; they add up to `ProgramLog::dropped`.
    dropped: WorkerDrops,
}

/// Lines waiting for one file, prefixed.
#[derive(Default)]
struct Queue {
    pending: Vec<u8>,
}

/// Chunks kept for followers that fell behind: each holds one read (≤ 64 KiB
/// of lines), so a follower that stops reading pins at most this many.
pub(super) const FOLLOW_CHUNKS: usize = 32;

impl ProgramLog {
    fn new(name: &str, dir: &Path, rules: FileRules, room: Arc<Notify>) -> ProgramLog {
        let file = |stream: Stream| {
            LogFile::new(dir.join(format!("{name}.{}.log", stream.as_str())), name)
        };
        ProgramLog {
            name: name.to_owned(),
            state: Mutex::new(LogState {
                rules,
                out: Queue::default(),
                err: Queue::default(),
                writing: false,
                files: Some(Box::new([file(Stream::Out), file(Stream::Err)])),
                spare: Default::default(),
                tail: tail::Tail::default(),
                next_line: 0,
                dropped: WorkerDrops::default(),
            }),
            followers: broadcast::channel(FOLLOW_CHUNKS).0,
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            idle: Notify::new(),
            room,
        }
    }

    /// Takes the lines of one read: tail, followers, and the file queue.
    ///
    /// The whole read gets one timestamp (the time it was read) and is
    /// prefixed straight into the queue, one copy.
    fn push(self: &Arc<Self>, worker: u64, stream: Stream, data: Vec<u8>, lines: u64) {
        let time = SystemTime::now();
        let prefix = line_prefix(time, &self.name, worker);
        let size = data.len() + prefix.len() * lines as usize;
        let mut start_writer = false;
        let chunk = {
            let mut state = lock(&self.state);
            let first = state.next_line;
            state.next_line += lines;
            let queue = match stream {
                Stream::Out => &mut state.out,
                Stream::Err => &mut state.err,
            };
            // An empty queue takes any read, however many short lines it holds.
            if !queue.pending.is_empty() && queue.pending.len() + size > MAX_PENDING {
                self.dropped.fetch_add(size as u64, Ordering::Relaxed);
                state.dropped.add(worker, size as u64);
            } else {
                prefix_lines(&mut queue.pending, prefix.as_bytes(), &data, size);
                if !state.writing {
                    state.writing = true;
                    start_writer = true;
                }
            }
            let chunk = Arc::new(Chunk {
                time,
                worker,
                stream,
                data,
                lines,
                first,
            });
            state.tail.push(Arc::clone(&chunk));
            chunk
        };
        if self.followers.receiver_count() > 0 {
            let _ = self.followers.send(chunk);
        }
        if start_writer {
            let log = Arc::clone(self);
            tokio::task::spawn_blocking(move || log.write_queued());
        }
    }

    /// Whether a pipe of `stream` may be read now: not while more than
    /// [`BACKLOG`] bytes are queued for its file, for up to [`STALL`] from the
    /// first time it was refused (`room` remembers; the writer taking its queue
    /// tells [`Inner::room`]). A writer that took nothing in that time is not
    /// waited for again until its queue has gone down: the pipe is drained
    /// meanwhile, and what does not fit is dropped and counted.
    pub(super) fn has_room(&self, stream: Stream, room: &mut Room, now: Instant) -> bool {
        let queued = {
            let state = lock(&self.state);
            match stream {
                Stream::Out => state.out.pending.len(),
                Stream::Err => state.err.pending.len(),
            }
        };
        if queued <= BACKLOG {
            *room = Room::default();
            return true;
        }
        if room.gave_up {
            return true;
        }
        match room.until {
            None => {
                room.until = Some(now + STALL);
                false
            }
            Some(until) if now >= until => {
                *room = Room {
                    gave_up: true,
                    until: None,
                };
                true
            }
            Some(_) => false,
        }
    }

    /// The writer job: writes what is queued until nothing is.
    fn write_queued(&self) {
        let (mut files, [mut out, mut err]) = {
            let mut state = lock(&self.state);
            (state.files.take(), std::mem::take(&mut state.spare))
        };
        // The largest batch of this job: a flood's buffers are kept for the
        // next job, a quiet job gives their memory back.
        let mut largest = 0;
        loop {
            let rules = {
                let mut guard = lock(&self.state);
                let state = &mut *guard;
                if state.out.pending.is_empty() && state.err.pending.is_empty() {
                    if largest <= IDLE_QUEUE {
                        for buffer in [
                            &mut state.out.pending,
                            &mut state.err.pending,
                            &mut out,
                            &mut err,
                        ] {
                            buffer.shrink_to(IDLE_QUEUE);
                        }
                    }
                    state.spare = [out, err];
                    state.files = files;
                    state.writing = false;
                    self.idle.notify_waiters();
                    return;
                }
                std::mem::swap(&mut state.out.pending, &mut out);
                std::mem::swap(&mut state.err.pending, &mut err);
                largest = largest.max(out.len()).max(err.len());
                state.rules
            };
            self.room.notify_one();
            for (batch, index) in [(&mut out, 0), (&mut err, 1)] {
                if batch.is_empty() {
                    continue;
                }
                let done = match files.as_mut() {
                    Some(files) => files[index].write(batch, rules),
                    None => file::Written {
                        written: 0,
                        dropped: batch.len() as u64,
                    },
                };
                self.written.fetch_add(done.written, Ordering::Relaxed);
                if done.dropped > 0 {
                    // What a write drops is always the end of the batch: whole
                    // lines, each with its worker in its prefix. Read before
                    // locking: pipe readers wait on the lock.
                    let lost = &batch[batch.len().saturating_sub(done.dropped as usize)..];
                    let by_worker = workers_of(lost, &self.name);
                    let mut state = lock(&self.state);
                    self.dropped.fetch_add(done.dropped, Ordering::Relaxed);
                    for (worker, bytes) in by_worker {
                        state.dropped.add(worker, bytes);
                    }
                }
                batch.clear();
            }
        }
    }

    /// Returns once the writer has written everything queued.
    async fn flushed(&self) {
        loop {
            let idle = self.idle.notified();
            if !lock(&self.state).writing {
                return;
            }
            idle.await;
        }
    }
}

/// What a pipe's reader knows of its file writer.
#[derive(Debug, Default)]
pub(super) struct Room {
    /// The writer took nothing for [`STALL`]: do not wait for it until its
    /// queue has gone down.
    gave_up: bool,
    /// The pipe is paused for the writer until then at the latest.
    until: Option<Instant>,
}

impl Room {
    /// When a paused pipe is read again even if its writer takes nothing.
    pub(super) fn waiting_until(&self) -> Option<Instant> {
        self.until
    }
}

/// What each line gets in front in the files: `TIME NAME/WORKER `.
fn line_prefix(time: SystemTime, name: &str, worker: u64) -> String {
    format!(
        "{} {name}/{worker} ",
        humantime::format_rfc3339_millis(time)
    )
}

/// The worker in a line's prefix (see [`line_prefix`]) of program `name`.
fn prefix_worker(line: &[u8], name: &str) -> Option<u64> {
    let after_time = &line[memchr::memchr(b' ', line)? + 1..];
    let id = after_time
        .strip_prefix(name.as_bytes())?
        .strip_prefix(b"/")?;
    let id = &id[..memchr::memchr(b' ', id)?];
    std::str::from_utf8(id).ok()?.parse().ok()
}

/// Whose the prefixed `lines` of program `name` are: (worker, bytes), one
/// entry per run of one worker's lines, adding up to `lines.len()`. A line
/// whose prefix does not read (none: every queued line gets one) counts for the
/// worker next to it.
fn workers_of(lines: &[u8], name: &str) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    let mut unread = 0;
    let mut start = 0;
    while start < lines.len() {
        let end = memchr::memchr(b'\n', &lines[start..]).map_or(lines.len(), |e| start + e + 1);
        let line = &lines[start..end];
        let bytes = line.len() as u64;
        match (prefix_worker(line, name), runs.last_mut()) {
            (Some(worker), Some((last, run))) if *last == worker => *run += bytes,
            (Some(worker), _) => {
                runs.push((worker, bytes + unread));
                unread = 0;
            }
            (None, Some((_, run))) => *run += bytes,
            (None, None) => unread += bytes,
        }
        start = end;
    }
    runs
}

/// Appends each line of `data` (every one ending in `\n`) to `out` behind
/// `prefix`; `size` is what that adds: `data.len()` and a prefix per `\n`.
fn prefix_lines(out: &mut Vec<u8>, prefix: &[u8], data: &[u8], size: usize) {
    out.reserve(size);
    // Copied straight into the reserved room, with no capacity check or
    // zeroing per line: this is the loop every byte of output goes through.
    let mut to = out.spare_capacity_mut().as_mut_ptr().cast::<u8>();
    let mut start = 0;
    let mut copied = 0;
    for end in memchr::memchr_iter(b'\n', data) {
        let line = &data[start..=end];
        if copied + prefix.len() + line.len() > size {
            break; // more lines than the caller counted: never past the room
        }
        copied += prefix.len() + line.len();
        // SAFETY: `copied` bytes from the start of the spare capacity stay
        // within the `size` reserved (checked above); the sources are live
        // slices that cannot overlap `out`'s spare capacity.
        unsafe {
            std::ptr::copy_nonoverlapping(prefix.as_ptr(), to, prefix.len());
            to = to.add(prefix.len());
            std::ptr::copy_nonoverlapping(line.as_ptr(), to, line.len());
            to = to.add(line.len());
        }
        start = end + 1;
    }
    // SAFETY: the first `copied` bytes of the spare capacity were written above.
    unsafe { out.set_len(out.len() + copied) };
}

/// Locks `mutex`, also after a panic elsewhere (the data stays usable: every
/// critical section leaves it consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An fd number for a spawn request.
fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_gets_the_prefix_and_a_short_count_never_overruns() {
        let mut out = b"kept ".to_vec();
        let data = b"one\n\ntwo\n";
        prefix_lines(&mut out, b"P ", data, data.len() + 3 * 2);
        assert_eq!(out, b"kept P one\nP \nP two\n");
        // Room for two lines only: the third is not written past it.
        let mut out = Vec::new();
        prefix_lines(&mut out, b"P ", data, 4 + 2 + 1 + 2);
        assert_eq!(out, b"P one\nP \n");
    }

    #[test]
    fn dropped_lines_are_told_apart_by_the_worker_in_their_prefix() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let mut lines = Vec::new();
        for (worker, data) in [
            (1, &b"one\ntwo\n"[..]),
            (1, b"three\n"),
            (12, b"a 1/2 b\n"),
            (1, b"\n"),
        ] {
            let prefix = line_prefix(time, "web-1", worker);
            let size = data.len() + prefix.len() * memchr::memchr_iter(b'\n', data).count();
            prefix_lines(&mut lines, prefix.as_bytes(), data, size);
        }
        let prefix = line_prefix(time, "web-1", 1).len() as u64;
        let runs = workers_of(&lines, "web-1");
        assert_eq!(
            runs,
            [(1, 3 * prefix + 14), (12, prefix + 1 + 8), (1, prefix + 1)]
        );
        assert_eq!(runs.iter().map(|r| r.1).sum::<u64>(), lines.len() as u64);
        // Only the end of a batch may be dropped: it starts on a line.
        let last_two = prefix as usize + 1 + 8 + prefix as usize + 1;
        assert_eq!(
            workers_of(&lines[lines.len() - last_two..], "web-1"),
            [(12, prefix + 1 + 8), (1, prefix + 1)]
        );
        // Bytes whose prefix does not read still count, for a worker next to them.
        assert!(workers_of(b"junk\n", "web-1").is_empty());
        let mut odd = b"junk\n".to_vec();
        odd.extend_from_slice(&lines);
        assert_eq!(workers_of(&odd, "web-1")[0], (1, 5 + 3 * prefix + 14));
    }

    #[test]
    fn a_pipe_pauses_for_a_lagging_writer_at_most_stall_then_until_it_catches_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = FileRules {
            max_size: 1 << 30,
            keep: 1,
            private: true,
        };
        let log = Arc::new(ProgramLog::new("p", dir.path(), rules, Default::default()));
        // A writer that is running and takes nothing: the queue only grows.
        lock(&log.state).writing = true;
        let fill = |log: &Arc<ProgramLog>| {
            while lock(&log.state).out.pending.len() <= BACKLOG {
                log.push(
                    1,
                    Stream::Out,
                    vec![b'x'; 1023].into_iter().chain([b'\n']).collect(),
                    1,
                );
            }
        };
        fill(&log);
        let start = Instant::now();
        let mut room = Room::default();
        assert!(
            log.has_room(Stream::Err, &mut Room::default(), start),
            "the other stream reads on"
        );
        assert!(!log.has_room(Stream::Out, &mut room, start));
        assert_eq!(room.waiting_until(), Some(start + STALL));
        let later = start + STALL / 2;
        assert!(
            !log.has_room(Stream::Out, &mut room, later),
            "the deadline holds"
        );
        assert_eq!(room.waiting_until(), Some(start + STALL));
        // The writer took nothing in time: not waited for again...
        assert!(log.has_room(Stream::Out, &mut room, start + STALL));
        assert_eq!(room.waiting_until(), None);
        assert!(log.has_room(Stream::Out, &mut room, start + STALL));
        // ...until its queue has gone down: then the next lag pauses again.
        lock(&log.state).out.pending.clear();
        let again = start + 2 * STALL;
        assert!(log.has_room(Stream::Out, &mut room, again));
        fill(&log);
        assert!(!log.has_room(Stream::Out, &mut room, again));
        assert_eq!(room.waiting_until(), Some(again + STALL));
    }
}
