//! The pipes between an instance and the daemon, and the one task that reads
//! them all.
//!
//! Every captured pipe of a [`Logs`] is read by one task, its reactor: the read
//! ends sit in an epoll instance of the reactor's own (watched by tokio as one
//! fd), and each pipe's state (its line splitter, whose output it carries, its
//! reader count) is a small entry in a slab, found by the epoll event's data.
//! A task and an I/O registration of its own per pipe cost the daemon about
//! 1 KiB per pipe even while nothing is written; an entry costs about a tenth
//! of that.
//!
//! - New pipes come over a channel, so that only the reactor touches its slab
//!   and its epoll interest list (no lock on the read path).
//! - Pipes are watched edge-triggered: an event says output arrived, the pipe
//!   goes on the ready list, and stays there until a read finds it empty. A
//!   pipe whose file writer lags (see [`ProgramLog::has_room`]) stays on the
//!   list unread, without waking the reactor again: its program waits on the
//!   full pipe while every other pipe is read. The writer taking its queue, or
//!   [`STALL`](super::STALL) passing, wakes the reactor to read it again.
//! - Each turn reads at most one chunk per ready pipe and at most
//!   [`TURN_BYTES`] in all, then yields: the engine and the control API share
//!   the thread. After a turn of small reads only, output gathers for
//!   [`GATHER`] before the next.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::lines::LineSplitter;
use super::{raw, Logs, ProgramLog, ReaderGuard, Room, Stream};

/// Bytes asked of a pipe per read: one chunk of lines.
const READ_SIZE: usize = 64 * 1024;

/// Bytes the reactor reads per turn, at most (one chunk per pipe, as long as
/// this allows): then it yields. More per turn made `infantctl status` slower
/// during a flood (every step of a request waits for a turn) and the output no
/// faster.
const TURN_BYTES: usize = READ_SIZE;

/// How long output gathers in the pipes after a turn that read only a little:
/// long enough that chatty programs are read in a few large reads rather than
/// many small ones, short enough that `infantctl logs -f` still looks live.
const GATHER: Duration = Duration::from_millis(1);

/// A read below this many bytes is small (see [`GATHER`]). A turn with a
/// larger read is followed by no pause: that program writes fast, and would
/// soon wait on a full pipe.
const SMALL_READ: usize = 16 * 1024;

/// The pipe capacity asked for: a program writing a burst while the daemon is
/// busy elsewhere keeps going without blocking (best effort; the system caps it).
const PIPE_SIZE: libc::c_int = 256 * 1024;

/// Epoll events taken per `epoll_wait`.
const EVENTS: usize = 64;

/// A new process's stdout and stderr.
pub struct Outputs {
    /// The fds the child gets as 1 and 2; `None` keeps the daemon's.
    child: [Option<RawFd>; 2],
    /// Pipes to drain once the child holds its ends: (read end, write end, stream).
    pipes: Vec<(OwnedFd, OwnedFd, Stream)>,
    /// Whose output the pipes carry, and the reactor that reads them.
    log: Option<(Arc<ProgramLog>, u64, Logs, Reactor)>,
}

impl Outputs {
    /// The daemon's own stdout and stderr.
    pub(super) fn inherit() -> Outputs {
        Outputs {
            child: [None, None],
            pipes: Vec::new(),
            log: None,
        }
    }

    /// Both streams to `fd` (which outlives the spawn).
    pub(super) fn fixed(fd: RawFd) -> Outputs {
        Outputs {
            child: [Some(fd), Some(fd)],
            pipes: Vec::new(),
            log: None,
        }
    }

    /// Both streams into pipes read by `reactor` into `log`. A pipe that
    /// cannot be made leaves that stream with the daemon's (logged).
    pub(super) fn capture(
        log: Arc<ProgramLog>,
        worker: u64,
        logs: Logs,
        reactor: Reactor,
    ) -> Outputs {
        let mut outputs = Outputs::inherit();
        for (index, stream) in [Stream::Out, Stream::Err].into_iter().enumerate() {
            match pipe() {
                Ok((read, write)) => {
                    outputs.child[index] = Some(raw(&write));
                    outputs.pipes.push((read, write, stream));
                }
                Err(e) => tracing::warn!(
                    program = %log.name,
                    worker,
                    "cannot make a pipe for its {}: {e}; it writes to the daemon's",
                    stream.as_str()
                ),
            }
        }
        outputs.log = Some((log, worker, logs, reactor));
        outputs
    }

    /// The child's stdout and stderr for the spawn request.
    pub fn child_fds(&self) -> [Option<RawFd>; 2] {
        self.child
    }

    /// The child has forked with its ends: close ours and have the pipes read.
    pub fn start(self) {
        let Some((log, worker, logs, reactor)) = self.log else {
            return;
        };
        for (read, write, stream) in self.pipes {
            // Only the child's copy may keep the pipe open: it ends when every
            // process holding it has exited.
            drop(write);
            reactor.add(Pipe {
                fd: read,
                token: 0,
                splitter: LineSplitter::default(),
                worker,
                stream,
                log: Arc::clone(&log),
                room: Room::default(),
                ready: false,
                _reader: logs.reader_started(),
            });
        }
    }
}

/// A pipe whose read end alone does not block (the child's write end must).
fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    // SAFETY: a plain fcntl on a pipe we own; failure is harmless.
    unsafe {
        libc::fcntl(raw(&write), libc::F_SETPIPE_SZ, PIPE_SIZE);
    }
    Ok((read, write))
}

/// The way to a running reactor: hands it new pipes. Cheap to clone.
#[derive(Clone)]
pub(super) struct Reactor {
    pipes: mpsc::UnboundedSender<Pipe>,
}

impl Reactor {
    /// Starts a reactor task on the current runtime; it wakes on `room` to read
    /// pipes paused for a lagging writer. It ends once every [`Reactor`] handle
    /// is gone and its last pipe has closed.
    pub(super) fn start(room: Arc<Notify>) -> std::io::Result<Reactor> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        // SAFETY: `EpollFd` owns the fd it gives, never gives another, and
        // closes it only when dropped with the `AsyncFd`.
        let epoll = unsafe { AsyncFd::register_with_interest(EpollFd(epoll), Interest::READABLE) }?;
        let (pipes, new_pipes) = mpsc::unbounded_channel();
        let task = Task {
            epoll,
            new_pipes,
            open: true,
            room,
            pipes: Slab::new(),
            ready: VecDeque::new(),
            generation: 0,
            events: vec![EpollEvent::empty(); EVENTS],
            scratch: vec![0; READ_SIZE],
        };
        tokio::spawn(task.run());
        Ok(Reactor { pipes })
    }

    /// Whether the task still runs (a runtime that shut down took it along).
    pub(super) fn is_running(&self) -> bool {
        !self.pipes.is_closed()
    }

    fn add(&self, pipe: Pipe) {
        if let Err(mpsc::error::SendError(pipe)) = self.pipes.send(pipe) {
            tracing::warn!(
                program = %pipe.log.name,
                worker = pipe.worker,
                "cannot read its {}: the log reader has stopped",
                pipe.stream.as_str()
            );
        }
    }
}

/// The reactor's epoll instance, as tokio watches it.
struct EpollFd(Epoll);

impl AsRawFd for EpollFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0 .0.as_raw_fd()
    }
}

/// One pipe being read.
struct Pipe {
    fd: OwnedFd,
    /// Its epoll data: a generation above its slab key, so that a late event
    /// of a closed pipe is not taken for the pipe that reuses its key.
    token: u64,
    splitter: LineSplitter,
    worker: u64,
    stream: Stream,
    log: Arc<ProgramLog>,
    room: Room,
    /// On the ready list: output arrived that no read has taken yet.
    ready: bool,
    /// Counts this pipe among those [`Logs::drain`] waits for.
    _reader: ReaderGuard,
}

impl Pipe {
    /// The pipe has ended: a last line without its `\n` still counts.
    fn finish(mut self) {
        let mut last = Vec::new();
        if self.splitter.finish(&mut last) > 0 {
            self.log.push(self.worker, self.stream, last, 1);
        }
    }

    fn warn(&self, what: &str, e: impl std::fmt::Display) {
        tracing::warn!(
            program = %self.log.name,
            worker = self.worker,
            "{what} its {}: {e}",
            self.stream.as_str()
        );
    }
}

/// What one read of a pipe gave.
enum Read {
    /// This many bytes: a full buffer means more is likely waiting.
    Bytes(usize),
    /// Nothing to read right now.
    Empty,
    /// Interrupted: try again.
    Again,
    /// The pipe's end: every process holding it has exited (or it failed).
    End,
}

/// What a turn did.
#[derive(Default)]
struct Turn {
    /// A pipe that is not paused may have more to read.
    more: bool,
    /// A read filled the buffer: its program writes fast.
    full: bool,
    /// The largest read.
    largest: usize,
}

/// What woke the reactor from its wait.
enum Wake {
    Readable,
    Pipe(Pipe),
    NoMorePipes,
    Room,
    Stopped(std::io::Error),
}

/// The reactor task.
struct Task {
    epoll: AsyncFd<EpollFd>,
    new_pipes: mpsc::UnboundedReceiver<Pipe>,
    /// Handles to this reactor may still send pipes.
    open: bool,
    /// Told when a file writer takes its queue.
    room: Arc<Notify>,
    pipes: Slab<Pipe>,
    /// The pipes with output to read, in the order they are served.
    ready: VecDeque<usize>,
    generation: u32,
    events: Vec<EpollEvent>,
    /// The buffer every pipe is read into: one for all, since a read is handled
    /// whole before the next. Hundreds of idle workers cost no buffer each.
    scratch: Vec<u8>,
}

impl Task {
    async fn run(mut self) {
        loop {
            while let Ok(pipe) = self.new_pipes.try_recv() {
                self.add(pipe);
            }
            self.collect_events();
            if !self.open && self.pipes.is_empty() {
                return;
            }
            let turn = self.turn();
            if turn.more {
                if !turn.full && turn.largest < SMALL_READ {
                    // Only small reads, each of which emptied its pipe: let
                    // the next output gather.
                    tokio::time::sleep(GATHER).await;
                } else {
                    // A program that floods its pipe keeps it readable forever.
                    tokio::task::yield_now().await;
                }
                continue;
            }
            match self.wait().await {
                Wake::Readable | Wake::Room => {}
                Wake::Pipe(pipe) => self.add(pipe),
                Wake::NoMorePipes => self.open = false,
                Wake::Stopped(e) => {
                    // The runtime is going away: nothing can be read any more.
                    tracing::warn!("program output reader stopped: {e}");
                    return;
                }
            }
        }
    }

    /// Watches a new pipe. One that cannot be watched is closed (logged): its
    /// program's writes then fail, as they would to a closed terminal.
    fn add(&mut self, mut pipe: Pipe) {
        let entry = self.pipes.vacant_entry();
        self.generation = self.generation.wrapping_add(1);
        pipe.token = u64::from(self.generation) << 32 | entry.key() as u64;
        let event = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, pipe.token);
        match self.epoll.get_ref().0.add(&pipe.fd, event) {
            // An ADD reports output (or an end) already there as an event.
            Ok(()) => {
                entry.insert(pipe);
            }
            Err(e) => pipe.warn("cannot read", e),
        }
    }

    /// Takes the events of the epoll instance, without waiting: each puts its
    /// pipe on the ready list.
    fn collect_events(&mut self) {
        loop {
            let count = match self
                .epoll
                .get_ref()
                .0
                .wait(&mut self.events, EpollTimeout::ZERO)
            {
                Ok(count) => count,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!("waiting for program output: {e}");
                    return;
                }
            };
            for event in &self.events[..count] {
                let token = event.data();
                let key = (token & u64::from(u32::MAX)) as usize;
                if let Some(pipe) = self.pipes.get_mut(key) {
                    if pipe.token == token && !pipe.ready {
                        pipe.ready = true;
                        self.ready.push_back(key);
                    }
                }
            }
            if count < self.events.len() {
                return;
            }
        }
    }

    /// Reads each ready pipe once (as long as [`TURN_BYTES`] allows), in turn;
    /// skips those whose file writer lags.
    ///
    /// A pipe leaves the ready list only once a read finds it empty (or
    /// ended): a short read may have raced with the program's last write and
    /// its exit, whose events the reactor may already have taken.
    fn turn(&mut self) -> Turn {
        let now = Instant::now();
        let mut turn = Turn::default();
        let mut bytes = 0;
        let mut left = self.ready.len();
        while left > 0 {
            if bytes >= TURN_BYTES {
                turn.more = true;
                turn.full = true;
                break;
            }
            left -= 1;
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            let pipe = &mut self.pipes[key];
            if !pipe.log.has_room(pipe.stream, &mut pipe.room, now) {
                self.ready.push_back(key);
                continue;
            }
            match read(pipe, &mut self.scratch) {
                Read::Bytes(n) => {
                    bytes += n;
                    turn.more = true;
                    turn.full |= n == READ_SIZE;
                    turn.largest = turn.largest.max(n);
                    self.ready.push_back(key);
                }
                Read::Again => {
                    turn.more = true;
                    self.ready.push_back(key);
                }
                Read::Empty => pipe.ready = false,
                Read::End => {
                    let pipe = self.pipes.remove(key);
                    // Closing it would do, unless a process forked meanwhile
                    // holds a copy of the fd (it closes it at its exec).
                    let _ = self.epoll.get_ref().0.delete(&pipe.fd);
                    pipe.finish();
                }
            }
        }
        turn
    }

    /// Waits for something to do: output in a pipe, a new pipe, or room for a
    /// paused one (which the ready list then holds alone).
    async fn wait(&mut self) -> Wake {
        let paused = !self.ready.is_empty();
        let stalled = self
            .ready
            .iter()
            .filter_map(|&key| self.pipes[key].room.waiting_until())
            .min();
        tokio::select! {
            readable = self.epoll.readable() => match readable {
                // The events themselves are taken next.
                Ok(mut guard) => {
                    guard.clear_ready();
                    Wake::Readable
                }
                Err(e) => Wake::Stopped(e),
            },
            pipe = self.new_pipes.recv(), if self.open => match pipe {
                Some(pipe) => Wake::Pipe(pipe),
                None => Wake::NoMorePipes,
            },
            () = self.room.notified(), if paused => Wake::Room,
            () = sleep_until(stalled), if stalled.is_some() => Wake::Room,
        }
    }
}

/// Sleeps until `deadline`; forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Reads one chunk of `pipe` into `scratch` and hands its lines to the
/// program's log.
fn read(pipe: &mut Pipe, scratch: &mut [u8]) -> Read {
    match nix::unistd::read(&pipe.fd, scratch) {
        Ok(0) => Read::End,
        Ok(n) => {
            let mut lines = Vec::with_capacity(n + super::lines::CUT_MARK.len() + 1);
            let count = pipe.splitter.feed(&scratch[..n], &mut lines);
            if count > 0 {
                pipe.log.push(pipe.worker, pipe.stream, lines, count as u64);
            }
            Read::Bytes(n)
        }
        Err(Errno::EAGAIN) => Read::Empty,
        Err(Errno::EINTR) => Read::Again,
        Err(e) => {
            pipe.warn("reading", e);
            Read::End
        }
    }
}
