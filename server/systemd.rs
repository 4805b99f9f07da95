//! infantd under a service manager (systemd, or anything that speaks its
//! protocols): the notify protocol and socket activation of the control socket.
//!
//! Notify: with `NOTIFY_SOCKET` set, `READY=1` once the configured programs are
//! up, `RELOADING=1` … `READY=1` around a reload, `STOPPING=1` at shutdown,
//! `STATUS=` with a one-line summary, and `WATCHDOG=1` every half of
//! `WATCHDOG_USEC`, sent only after the engine answered (a wedged engine stops
//! the pings, and the manager restarts the daemon). Without `NOTIFY_SOCKET`
//! every call does nothing. The datagrams are sent by the `sd-notify` crate.
//!
//! None of these variables reach the programs: the engine drops them from the
//! environment it passes on.

use std::os::fd::{FromRawFd, RawFd};
use std::time::Duration;

use sd_notify::NotifyState;

use super::engine::state::ProgramStatus;
use super::engine::EngineHandle;
use super::error::{Error, Result};

/// Talks to the service manager, if there is one.
#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`WATCHDOG_PID` of this process.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some_and(|v| !v.is_empty()),
            watchdog: sd_notify::watchdog_enabled().filter(|d| !d.is_zero()),
        }
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// `READY=1` with `status`: start-up (or a reload) is done.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `RELOADING=1` (with `MONOTONIC_USEC`, which `Type=notify-reload` needs):
    /// a config reload begins; [`Notifier::ready`] ends it.
    pub fn reloading(&self) {
        let mut states = vec![NotifyState::Reloading];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        states.push(NotifyState::Status("reloading the configuration"));
        self.send(&states);
    }

    /// `STOPPING=1`: the daemon is shutting down.
    pub fn stopping(&self) {
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status("stopping every program"),
        ]);
    }

    /// `STATUS=`: a one-line summary for `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, if it is set.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    /// `WATCHDOG=1`.
    pub fn ping(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        // A manager that went away is not a reason to stop supervising.
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!("cannot notify the service manager: {e}");
        }
    }
}

/// A one-line summary of the engine's state, such as `4 programs, 11 instances
/// ok` or `3 programs, 5 instances ok; in error: web`.
pub async fn summary(engine: &EngineHandle) -> Result<String> {
    let programs = engine.list(None).await?;
    let running: Vec<_> = programs
        .iter()
        .filter(|p| !matches!(p.status, ProgramStatus::Ready))
        .collect();
    let ok: u64 = running.iter().map(|p| u64::from(p.running)).sum();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut line = format!(
        "{}, {} ok",
        plural(running.len(), "program"),
        plural(usize::try_from(ok).unwrap_or(usize::MAX), "instance")
    );
    let failing: Vec<&str> = running
        .iter()
        .filter(|p| matches!(p.status, ProgramStatus::Error | ProgramStatus::Fatal))
        .map(|p| p.name.as_str())
        .collect();
    if !failing.is_empty() {
        line.push_str("; in error: ");
        line.push_str(&failing.join(", "));
    }
    Ok(line)
}

/// Keeps the manager informed while the daemon runs: `STATUS=` when the
/// summary changes (looked at a second after an event, so that a burst makes
/// one summary), and `WATCHDOG=1` every half `WATCHDOG_USEC`, each time after
/// the engine has answered. Returns when the engine is gone.
pub async fn keep_informed(notifier: Notifier, engine: EngineHandle) {
    const SETTLE: Duration = Duration::from_secs(1);
    if !notifier.enabled() {
        return;
    }
    let Ok(mut events) = engine.subscribe().await else {
        return;
    };
    events.skip_history();
    let watchdog = notifier.watchdog_interval();
    // Without a watchdog the ticker still runs, as the summary's slow path.
    let mut ticker = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(30)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut summary_due: Option<tokio::time::Instant> = None;
    let mut last = String::new();
    loop {
        let ping = tokio::select! {
            _ = ticker.tick() => watchdog.is_some(),
            event = events.next(), if summary_due.is_none() => {
                if event.is_none() {
                    return;
                }
                summary_due = Some(tokio::time::Instant::now() + SETTLE);
                continue;
            }
            () = tokio::time::sleep_until(summary_due.unwrap_or_else(tokio::time::Instant::now)),
                if summary_due.is_some() =>
            {
                summary_due = None;
                // What piled up meanwhile is in this summary already.
                events.skip_to_now();
                false
            }
        };
        let Ok(line) = summary(&engine).await else {
            return; // the engine stopped
        };
        // The engine answered: it is alive, and the watchdog may be fed.
        if ping {
            notifier.ping();
        }
        if line != last {
            notifier.status(&line);
            last = line;
        }
    }
}

/// The control socket the service manager passed (socket activation): the first
/// of `LISTEN_FDS`, if `LISTEN_PID` is this process. It must be a listening Unix
/// stream socket.
pub fn activated_listener() -> Result<Option<std::os::unix::net::UnixListener>> {
    let fail = |reason: String| Error::InvalidArgument {
        field: "LISTEN_FDS",
        reason,
    };
    let mut fds = sd_notify::listen_fds().map_err(|e| fail(e.to_string()))?;
    let Some(fd) = fds.next() else {
        return Ok(None);
    };
    if fds.len() > 0 {
        tracing::warn!("socket activation passed more than one socket; only fd 3 is used");
    }
    check_unix_listener(fd).map_err(fail)?;
    // SAFETY: the service manager passed this fd to this process (LISTEN_PID is
    // ours) for it to own, nothing else in the daemon uses it, and it was just
    // checked to be a listening Unix stream socket.
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
    listener
        .set_nonblocking(true)
        .map_err(|e| fail(format!("fd {fd}: {e}")))?;
    Ok(Some(listener))
}

/// Refuses anything but a listening Unix stream socket: a TCP socket would
/// bypass the peer-credential check the control API relies on.
fn check_unix_listener(fd: RawFd) -> std::result::Result<(), String> {
    use nix::sys::socket::{getsockname, getsockopt, sockopt, SockaddrStorage};
    // SAFETY: the fd stays open for the duration of this borrow (it is ours and
    // nothing closes it meanwhile).
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let kind = getsockopt(&borrowed, sockopt::SockType)
        .map_err(|e| format!("fd {fd} is not a socket ({e})"))?;
    let listening =
        getsockopt(&borrowed, sockopt::AcceptConn).map_err(|e| format!("fd {fd}: {e}"))?;
    let address: SockaddrStorage = getsockname(fd).map_err(|e| format!("fd {fd}: {e}"))?;
    if address.as_unix_addr().is_none() || kind != nix::sys::socket::SockType::Stream || !listening
    {
        return Err(format!(
            "fd {fd} must be a listening Unix stream socket (ListenStream=/path in the \
             .socket unit)"
        ));
    }
    Ok(())
}

/// The socket `ready = "notify"` instances send `READY=1` and the rest to: one
/// abstract Unix datagram socket per daemon (no file to clean up or to
/// protect), with `SO_PASSCRED`, so that each datagram carries its sender's pid
/// by the kernel's word and is credited to the instance whose process group
/// the sender is in.
pub struct NotifyListener {
    socket: tokio::net::UnixDatagram,
    /// The `NOTIFY_SOCKET` value: `@` and the abstract name.
    address: String,
}

impl NotifyListener {
    /// Binds a fresh abstract socket with a name the kernel picks (see
    /// [`super::socket::bind_abstract`]).
    pub fn bind() -> Result<NotifyListener> {
        use nix::sys::socket::{setsockopt, sockopt, SockType};
        let what = "the notify socket";
        let (fd, address) = super::socket::bind_abstract(SockType::Datagram, what)?;
        setsockopt(&fd, sockopt::PassCred, &true)
            .map_err(|e| Error::io(what, std::io::Error::from(e)))?;
        let socket = tokio::net::UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(fd))
            .map_err(|e| Error::io(what, e))?;
        Ok(NotifyListener { socket, address })
    }

    /// The `NOTIFY_SOCKET` value for instances.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Hands every datagram to the engine with its sender's pid, until the
    /// engine is gone.
    pub async fn forward(self, engine: EngineHandle) {
        use std::os::fd::AsRawFd;
        let mut buffer = vec![0u8; 4096];
        loop {
            if self.socket.readable().await.is_err() {
                return;
            }
            let fd = self.socket.as_raw_fd();
            let received = self
                .socket
                .try_io(tokio::io::Interest::READABLE, || receive(fd, &mut buffer));
            let (len, pid) = match received {
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    tracing::warn!("notify socket: {e}");
                    continue;
                }
            };
            let Some(pid) = pid else { continue };
            let text = String::from_utf8_lossy(&buffer[..len]).into_owned();
            if engine
                .tell(super::engine::Command::Notify { pid, text })
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// One datagram and its sender's pid (from `SCM_CREDENTIALS`). File descriptors
/// a sender passed along are closed: nothing here wants them.
fn receive(fd: RawFd, buffer: &mut [u8]) -> std::io::Result<(usize, Option<i32>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixCredentials};
    let mut iov = [std::io::IoSliceMut::new(buffer)];
    let mut space = nix::cmsg_space!(UnixCredentials, [RawFd; 8]);
    let message = recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut pid = None;
    for control in message.cmsgs()? {
        match control {
            ControlMessageOwned::ScmCredentials(credentials) => pid = Some(credentials.pid()),
            ControlMessageOwned::ScmRights(fds) => {
                for passed in fds {
                    // SAFETY: the kernel just installed this fd in this process
                    // for this message; nothing else knows of it.
                    drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(passed) });
                }
            }
            _ => {}
        }
    }
    Ok((message.bytes, pid))
}
