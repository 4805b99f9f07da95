//! A typed client for the daemon's control API (`Supervisor`).
//!
//! [`Control`] turns each RPC into one async method taking plain Rust values
//! (`&str`, [`Duration`], `Option`) and returning the reply's payload, so a caller
//! never builds a request message or unwraps a `tonic::Response`. Failures are one
//! [`ControlError`] that says what was being done and what the daemon answered.
//! Anything not covered here is reachable through [`Control::client`].
//!
//! [`Control::connect`] talks to the local daemon over its Unix socket;
//! [`Control::connect_remote`] to a daemon's remote control address over TLS,
//! presenting a bearer token on every call.
//!
//! ```no_run
//! # async fn demo() -> Result<(), infant::control::ControlError> {
//! use infant::control::Control;
//!
//! let control = Control::connect(None).await?;
//! for program in control.list(None).await? {
//!     println!("{} {}", program.name, infant::names::status_name(program.status()));
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

use crate::paths;
use crate::proto::supervisor_client::SupervisorClient;
use crate::proto::{
    EachWorkerRequest, Event, EventsRequest, KillRequest, ListRequest, LogLine, LogsRequest,
    ProgramInfo, ProgramSpec, ReloadReply, ReloadRequest, RemoveRequest, RestartRequest,
    ScaleRequest, SendRequest, StartRequest, StopRequest, WorkerInfo,
};
use crate::transport::{self, ConnectError, RemoteConnectError};

/// The generated control client as [`Control`] uses it: on a channel, with the
/// [`Authorization`] of the connection added to every call.
pub type ControlClient = SupervisorClient<InterceptedService<Channel, Authorization>>;

/// A connection to `infantd`'s control service.
///
/// Cloning is cheap and clones share the connection. Methods take `&self` (each call
/// works on its own handle of the channel), so one `Control` can follow events while
/// other tasks send commands through it.
#[derive(Debug, Clone)]
pub struct Control {
    client: ControlClient,
}

impl Control {
    /// Connects to the daemon's control socket: `socket` if given, else the default
    /// location (`$INFANT_SOCKET`, `$XDG_RUNTIME_DIR/infant/infantd.sock`,
    /// `/tmp/infant-$UID/infantd.sock`; see [`paths::socket_path`]).
    ///
    /// Connects eagerly: a missing socket or a dead daemon is reported here.
    pub async fn connect(socket: Option<PathBuf>) -> Result<Control, ControlError> {
        let path = paths::socket_path(socket);
        let channel = transport::connect_unix(&path).await?;
        Ok(Control::from_channel(channel))
    }

    /// Connects to a daemon's remote control address (`infantd --control-listen`)
    /// and presents `token` on every call.
    ///
    /// `url` is `https://HOST:PORT`; the daemon's certificate is verified against
    /// the PEM CA certificates in `ca_pem` if given, else against the system's
    /// trusted roots. `http://HOST:PORT` (no `ca_pem`) reaches a daemon that serves
    /// plain TCP on a loopback address (`--insecure-plaintext`), and is refused for
    /// any other host. Connects eagerly: a bad address, an unreachable daemon or a
    /// failed TLS handshake is reported here; a wrong token on the first call, as
    /// `UNAUTHENTICATED`.
    pub async fn connect_remote(
        url: &str,
        token: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Control, ControlError> {
        let authorization = Authorization::bearer(token)?;
        let channel = transport::connect_remote(url, ca_pem).await?;
        Ok(Control::from_channel_with(channel, authorization))
    }

    /// Wraps a channel that is already connected to the daemon's Unix socket.
    pub fn from_channel(channel: Channel) -> Control {
        Control::from_channel_with(channel, Authorization::default())
    }

    /// Wraps a channel that is already connected to the daemon, adding
    /// `authorization` to every call.
    pub fn from_channel_with(channel: Channel, authorization: Authorization) -> Control {
        Control {
            client: SupervisorClient::with_interceptor(channel, authorization),
        }
    }

    /// The generated client, sharing this connection (and its token), for calls
    /// made by hand.
    pub fn client(&self) -> ControlClient {
        self.client.clone()
    }

    /// Starts program `name`: the configured one when `spec` is `None`, else one
    /// defined by `spec`. Returns once every instance is `ok`; with `wait`, a `once`
    /// program returns when its job has completed, with the outcome in the reply.
    /// Starting a program that is already running returns its current state.
    pub async fn start(
        &self,
        name: &str,
        spec: Option<ProgramSpec>,
        wait: bool,
    ) -> Result<ProgramInfo, ControlError> {
        let request = StartRequest {
            name: name.to_owned(),
            spec,
            wait,
        };
        self.client()
            .start(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ControlError::status(format!("start {name}"), status))
    }

    /// Stops program `name` gracefully and returns once every instance has exited.
    /// `timeout` overrides the program's `stop_timeout` for this stop.
    pub async fn stop(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<ProgramInfo, ControlError> {
        let request = StopRequest {
            name: name.to_owned(),
            timeout_ms: timeout.map(millis),
        };
        self.client()
            .stop(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ControlError::status(format!("stop {name}"), status))
    }

    /// Restarts program `name`: rolling for clusters unless `full`, which stops every
    /// instance and then starts them all again.
    pub async fn restart(&self, name: &str, full: bool) -> Result<ProgramInfo, ControlError> {
        let request = RestartRequest {
            name: name.to_owned(),
            full,
        };
        self.client()
            .restart(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ControlError::status(format!("restart {name}"), status))
    }

    /// Sends `payload` to worker `worker` of program `name`, or to all of its workers
    /// when `worker` is `None`. Returns how many workers it was handed to.
    pub async fn send(
        &self,
        name: &str,
        worker: Option<u64>,
        payload: impl Into<Vec<u8>>,
    ) -> Result<u32, ControlError> {
        let request = SendRequest {
            name: name.to_owned(),
            worker,
            payload: payload.into(),
        };
        self.client()
            .send(request)
            .await
            .map(|reply| reply.into_inner().delivered)
            .map_err(|status| {
                ControlError::status(format!("send to {}", target(name, worker)), status)
            })
    }

    /// Sends `signal` (a name such as `TERM`/`SIGTERM`, or a number; `None` means
    /// SIGTERM) to the process group of worker `worker` of program `name`, or of all
    /// its workers. Returns how many process groups were signalled. The daemon does
    /// not treat this as a stop: a worker that dies of it is respawned as usual.
    pub async fn kill(
        &self,
        name: &str,
        worker: Option<u64>,
        signal: Option<&str>,
    ) -> Result<u32, ControlError> {
        let request = KillRequest {
            name: name.to_owned(),
            worker,
            signal: signal.unwrap_or_default().to_owned(),
        };
        self.client()
            .kill(request)
            .await
            .map(|reply| reply.into_inner().signalled)
            .map_err(|status| {
                ControlError::status(format!("kill {}", target(name, worker)), status)
            })
    }

    /// Changes the number of workers of cluster `name` to `count`, returning once the
    /// new workers are `ok` or the surplus ones have exited.
    pub async fn scale(&self, name: &str, count: u32) -> Result<ProgramInfo, ControlError> {
        let request = ScaleRequest {
            name: name.to_owned(),
            count,
        };
        self.client()
            .scale(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ControlError::status(format!("scale {name}"), status))
    }

    /// Rereads the daemon's config file and applies the difference, returning
    /// once it has been applied: the plan, one entry per program, each with the
    /// error that stopped it if any. With `dry_run`, only returns the plan. A
    /// file that does not parse or validate changes nothing and fails with
    /// `INVALID_ARGUMENT`.
    pub async fn reload(&self, dry_run: bool) -> Result<ReloadReply, ControlError> {
        self.client()
            .reload(ReloadRequest { dry_run })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ControlError::status("reload", status))
    }

    /// Stops program `name` gracefully (within `timeout` if given) and forgets
    /// it: it is gone from [`Control::list`]. Returns its last state.
    pub async fn remove(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<ProgramInfo, ControlError> {
        let request = RemoveRequest {
            name: name.to_owned(),
            timeout_ms: timeout.map(millis),
        };
        self.client()
            .remove(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ControlError::status(format!("remove {name}"), status))
    }

    /// Every program the daemon knows, in the order they were defined; only program
    /// `name` if given.
    pub async fn list(&self, name: Option<&str>) -> Result<Vec<ProgramInfo>, ControlError> {
        let request = ListRequest {
            name: name.unwrap_or_default().to_owned(),
        };
        self.client()
            .list(request)
            .await
            .map(|reply| reply.into_inner().programs)
            .map_err(|status| ControlError::status(listing("list", name), status))
    }

    /// One entry per running instance, of every program or only of program `name`.
    pub async fn workers(&self, name: Option<&str>) -> Result<Vec<WorkerInfo>, ControlError> {
        let action = || listing("list workers", name);
        let request = EachWorkerRequest {
            name: name.unwrap_or_default().to_owned(),
        };
        let mut stream = self
            .client()
            .each_worker(request)
            .await
            .map_err(|status| ControlError::status(action(), status))?
            .into_inner();
        let mut workers = Vec::new();
        while let Some(worker) = stream
            .message()
            .await
            .map_err(|status| ControlError::status(action(), status))?
        {
            workers.push(worker);
        }
        Ok(workers)
    }

    /// The event stream of every program, or only of program `name`: the events the
    /// daemon retained first if `replay`, then, if `follow`, every new event until the
    /// stream is dropped or the daemon goes away. Without `follow` the stream ends
    /// after the replay.
    ///
    /// An error while reading the stream is a bare [`Status`]; wrap it with
    /// [`ControlError::status`] to report it like the other calls.
    pub async fn events(
        &self,
        name: Option<&str>,
        replay: bool,
        follow: bool,
    ) -> Result<Streaming<Event>, ControlError> {
        let request = EventsRequest {
            name: name.unwrap_or_default().to_owned(),
            replay,
            follow: Some(follow),
            last: None,
        };
        self.watch(request).await
    }

    /// A program's output as `request` asks for it (see [`LogsRequest`]): its
    /// last lines, then, with `follow`, new ones as they come.
    ///
    /// An error while reading the stream is a bare [`Status`]; wrap it with
    /// [`ControlError::status`] to report it like the other calls.
    pub async fn logs(&self, request: LogsRequest) -> Result<Streaming<LogLine>, ControlError> {
        let name = request.name.clone();
        self.client()
            .logs(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| ControlError::status(format!("read the logs of {name}"), status))
    }

    /// The event stream as `request` asks for it; see [`EventsRequest`]. Its
    /// `last` keeps only the newest retained events of the replay, and an unset
    /// `follow` follows.
    pub async fn watch(&self, request: EventsRequest) -> Result<Streaming<Event>, ControlError> {
        let name = (!request.name.is_empty()).then(|| request.name.clone());
        self.client()
            .events(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| {
                ControlError::status(listing("watch events", name.as_deref()), status)
            })
    }
}

/// What a connection adds to every call: nothing on the Unix socket (the kernel
/// vouches for the caller), `authorization: Bearer <token>` over TCP.
///
/// Its `Debug` output never shows the token.
#[derive(Clone, Default)]
pub struct Authorization {
    header: Option<MetadataValue<Ascii>>,
}

impl Authorization {
    /// `authorization: Bearer <token>`. The token is what `infantd`'s
    /// `--token-file` holds: visible ASCII characters, no spaces.
    pub fn bearer(token: &str) -> Result<Authorization, ControlError> {
        if token.is_empty() {
            return Err(ControlError::Token("the token is empty"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ControlError::Token(
                "the token may contain only visible ASCII characters, no spaces",
            ));
        }
        let mut header: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| ControlError::Token("the token cannot be sent in a header"))?;
        // Keeps it out of HTTP/2 header compression tables.
        header.set_sensitive(true);
        Ok(Authorization {
            header: Some(header),
        })
    }
}

impl Interceptor for Authorization {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.header {
            Some(_) => f.write_str("Authorization(Bearer <redacted>)"),
            None => f.write_str("Authorization(none)"),
        }
    }
}

/// A control call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The daemon's socket could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A remote daemon could not be reached, or its address or CA certificate is
    /// unusable.
    #[error(transparent)]
    Remote(#[from] RemoteConnectError),
    /// The bearer token cannot be used.
    #[error("bearer token: {0}")]
    Token(&'static str),
    /// The daemon (or the connection to it) answered a call with an error.
    #[error("{action}: {}", describe(status))]
    Status {
        /// What was being done, such as `start web` or `kill web/3`.
        action: String,
        /// The gRPC status, whose message comes from the daemon.
        #[source]
        status: Status,
    },
}

impl ControlError {
    /// The error for `status`, received while doing `action` (`start web`).
    pub fn status(action: impl Into<String>, status: Status) -> ControlError {
        ControlError::Status {
            action: action.into(),
            status,
        }
    }

    /// The gRPC code of a failed call; `None` when no call was made (connect failed).
    pub fn code(&self) -> Option<Code> {
        match self {
            ControlError::Connect(_) | ControlError::Remote(_) | ControlError::Token(_) => None,
            ControlError::Status { status, .. } => Some(status.code()),
        }
    }

    /// Whether the daemon could not be reached: the connection failed, or the
    /// daemon went away during the call.
    pub fn is_unreachable(&self) -> bool {
        match self {
            ControlError::Connect(_) => true,
            ControlError::Remote(error) => matches!(error, RemoteConnectError::Connect { .. }),
            ControlError::Token(_) => false,
            ControlError::Status { status, .. } => {
                status.code() == Code::Unavailable || connection_lost(status)
            }
        }
    }
}

/// Saturates instead of failing: a stop window of 292 million years is "forever".
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// `web` or `web/3`, as the CLI spells a worker.
fn target(name: &str, worker: Option<u64>) -> String {
    match worker {
        Some(id) => format!("{name}/{id}"),
        None => name.to_owned(),
    }
}

/// `list` or `list web`.
fn listing(action: &str, name: Option<&str>) -> String {
    match name.filter(|name| !name.is_empty()) {
        Some(name) => format!("{action} {name}"),
        None => action.to_owned(),
    }
}

/// The daemon's message on one line. Transport failures arrive as a status whose
/// message is only "transport error"; the cause underneath is what a user needs.
fn describe(status: &Status) -> String {
    let mut text = one_line(status.message());
    let mut cause = std::error::Error::source(status);
    let mut deepest = None;
    while let Some(error) = cause {
        deepest = Some(error.to_string());
        cause = error.source();
    }
    if let Some(deepest) = deepest.map(|d| one_line(&d)) {
        if !deepest.is_empty() && !text.contains(&deepest) {
            text = if text.is_empty() {
                deepest
            } else {
                format!("{text}: {deepest}")
            };
        }
    }
    if text.is_empty() {
        text = status.code().description().to_owned();
    }
    if status.code() == Code::Unavailable {
        text = format!("daemon unavailable: {text}");
    } else if connection_lost(status) {
        text = format!("connection to infantd lost: {text}");
    }
    text
}

/// A status the client made up because the connection broke mid-call (the daemon
/// died, say): tonic reports those as UNKNOWN with the transport error attached,
/// while a status the daemon sent never carries a source.
fn connection_lost(status: &Status) -> bool {
    status.code() == Code::Unknown && std::error::Error::source(status).is_some()
}

/// Error texts (a worker's failed start hook, say) may span lines; a report is one.
fn one_line(text: &str) -> String {
    let mut joined = String::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if !joined.is_empty() {
            // "failed:\n  boom" reads as one sentence; separate lines become clauses.
            joined.push_str(if joined.ends_with([':', ',']) {
                " "
            } else {
                "; "
            });
        }
        joined.push_str(line);
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_is_one_line_with_the_action() {
        let error = ControlError::status(
            "start web",
            Status::failed_precondition("worker 1 failed:\n  boom\n"),
        );
        assert_eq!(error.to_string(), "start web: worker 1 failed: boom");
        assert_eq!(error.code(), Some(Code::FailedPrecondition));
        assert!(!error.is_unreachable());
    }

    #[test]
    fn empty_message_falls_back_to_the_code() {
        let error = ControlError::status("list", Status::new(Code::NotFound, ""));
        assert!(error.to_string().starts_with("list: "));
        assert!(error.to_string().len() > "list: ".len());
    }

    #[test]
    fn unavailable_says_so() {
        let error = ControlError::status("stop web", Status::unavailable("broken pipe"));
        assert_eq!(
            error.to_string(),
            "stop web: daemon unavailable: broken pipe"
        );
        assert!(error.is_unreachable());
    }

    #[test]
    fn authorization_adds_the_header_and_hides_the_token() {
        let mut authorization = Authorization::bearer("s3cr3t").expect("valid");
        assert!(!format!("{authorization:?}").contains("s3cr3t"));
        let request = authorization.call(Request::new(())).expect("passes");
        let header = request.metadata().get("authorization").expect("added");
        assert_eq!(header.to_str().ok(), Some("Bearer s3cr3t"));
        let request = Authorization::default()
            .call(Request::new(()))
            .expect("passes");
        assert!(request.metadata().get("authorization").is_none());
        for bad in ["", "two words", "caf\u{e9}"] {
            assert!(Authorization::bearer(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_saturate() {
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }

    #[test]
    fn actions_name_the_target() {
        assert_eq!(target("web", Some(3)), "web/3");
        assert_eq!(target("web", None), "web");
        assert_eq!(listing("list", Some("")), "list");
        assert_eq!(listing("list workers", Some("web")), "list workers web");
    }
}
