//! The pipes between an instance and the daemon, and the tasks that drain them.

use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use super::lines::LineSplitter;
use super::{raw, Logs, ProgramLog, Room, Stream};

/// Bytes asked of a pipe per read: one chunk of lines.
const READ_SIZE: usize = 64 * 1024;

/// Bytes read from one pipe per turn of its task, at most: one read. More per
/// turn made `infantctl status` slower during a flood (every step of a request
/// waits for the turn of each busy reader) and the output no faster.
const TURN_BYTES: usize = READ_SIZE;

/// How long output gathers in a pipe the reader has just emptied with a small
/// read: long enough that a chatty program is read in a few large reads rather
/// than many small ones, short enough that `infantctl logs -f` still looks live.
const GATHER: Duration = Duration::from_millis(1);

/// A read below this many bytes is small (see [`GATHER`]). A larger one that
/// emptied the pipe is followed by no pause: its program writes fast, and
/// would soon wait on a full pipe.
const SMALL_READ: usize = 16 * 1024;

/// The pipe capacity asked for: a program writing a burst while the daemon is
/// busy elsewhere keeps going without blocking (best effort; the system caps it).
const PIPE_SIZE: libc::c_int = 256 * 1024;

/// A new process's stdout and stderr.
pub struct Outputs {
    /// The fds the child gets as 1 and 2; `None` keeps the daemon's.
    child: [Option<RawFd>; 2],
    /// Pipes to drain once the child holds its ends: (read end, write end, stream).
    pipes: Vec<(OwnedFd, OwnedFd, Stream)>,
    /// Whose output the pipes carry.
    log: Option<(Arc<ProgramLog>, u64, Logs)>,
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

    /// Both streams into pipes read into `log`. A pipe that cannot be made
    /// leaves that stream with the daemon's (logged).
    pub(super) fn capture(log: Arc<ProgramLog>, worker: u64, logs: Logs) -> Outputs {
        let mut outputs = Outputs::inherit();
        for (index, stream) in [Stream::Out, Stream::Err].into_iter().enumerate() {
            match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
                Ok((read, write)) => {
                    // SAFETY: a plain fcntl on a pipe we own; failure is harmless.
                    unsafe {
                        libc::fcntl(raw(&write), libc::F_SETPIPE_SZ, PIPE_SIZE);
                    }
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
        outputs.log = Some((log, worker, logs));
        outputs
    }

    /// The child's stdout and stderr for the spawn request.
    pub fn child_fds(&self) -> [Option<RawFd>; 2] {
        self.child
    }

    /// The child has forked with its ends: close ours and drain the pipes.
    pub fn start(self) {
        let Some((log, worker, logs)) = self.log else {
            return;
        };
        for (read, write, stream) in self.pipes {
            // Only the child's copy may keep the pipe open: it ends when every
            // process holding it has exited.
            drop(write);
            let guard = logs.reader_started();
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                drain(read, &log, worker, stream).await;
                drop(guard);
            });
        }
    }
}

thread_local! {
    /// The buffer every pipe on this thread is read into: one per thread
    /// rather than one per pipe, since a read is handled whole before the next.
    /// Hundreds of idle workers then cost no buffer memory each.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_SIZE]);
}

/// What one read of a pipe gave.
enum Read {
    /// This many bytes: a full buffer means more is likely waiting.
    Bytes(usize),
    /// Nothing to read right now.
    Empty,
    /// The pipe's end: every process holding it has exited.
    End,
}

/// Reads a pipe to its end, a chunk of lines per read.
///
/// A program writing many small pieces would cost a wake-up, a read and a
/// hand-off each; so once a small read has emptied the pipe, the reader lets
/// output gather for [`GATHER`] and then takes it in large reads. It reads at most [`TURN_BYTES`]
/// per turn of its task (the engine and the control API share the thread), and
/// while the file writer lags it pauses (see [`ProgramLog::wait_for_room`]).
async fn drain(read: OwnedFd, log: &Arc<ProgramLog>, worker: u64, stream: Stream) {
    let pipe = match tokio::net::unix::pipe::Receiver::from_owned_fd(read) {
        Ok(pipe) => pipe,
        Err(e) => {
            tracing::warn!(program = %log.name, worker, "cannot read its {}: {e}", stream.as_str());
            return;
        }
    };
    let mut splitter = LineSplitter::default();
    let mut room = Room::default();
    'pipe: loop {
        if let Err(e) = pipe.readable().await {
            tracing::warn!(program = %log.name, worker, "reading its {}: {e}", stream.as_str());
            break;
        }
        let mut turn = 0;
        while turn < TURN_BYTES {
            log.wait_for_room(stream, &mut room).await;
            let read = SCRATCH.with_borrow_mut(|buf| match pipe.try_read(buf) {
                Ok(0) => Ok(Read::End),
                Ok(n) => {
                    let mut lines = Vec::with_capacity(n + super::lines::CUT_MARK.len() + 1);
                    let count = splitter.feed(&buf[..n], &mut lines);
                    if count > 0 {
                        log.push(worker, stream, lines, count as u64);
                    }
                    Ok(Read::Bytes(n))
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    Ok(Read::Empty)
                }
                Err(e) => Err(e),
            });
            match read {
                Ok(Read::Bytes(n)) if n == READ_SIZE => turn += n,
                Ok(Read::Bytes(n)) => {
                    // The pipe is empty: let the next output gather.
                    if n < SMALL_READ {
                        tokio::time::sleep(GATHER).await;
                    }
                    continue 'pipe;
                }
                Ok(Read::Empty) => continue 'pipe,
                Ok(Read::End) => break 'pipe,
                Err(e) => {
                    tracing::warn!(program = %log.name, worker, "reading its {}: {e}", stream.as_str());
                    break 'pipe;
                }
            }
        }
        // A program that floods its pipe keeps it readable forever.
        tokio::task::yield_now().await;
    }
    let mut last = Vec::new();
    if splitter.finish(&mut last) > 0 {
        log.push(worker, stream, last, 1);
    }
}
