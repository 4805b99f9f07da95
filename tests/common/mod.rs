//! Shared harness for the end-to-end tests: a real `infantd` on a private socket,
//! a gRPC client, an event recorder, deadline-bound waits and process checks.
//!
//! Every wait has a generous deadline (CI machines are small and shared) and ends
//! as soon as its condition holds: nothing sleeps and hopes.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use infant::proto::supervisor_client::SupervisorClient;
use infant::proto::{self, Event};
use tonic::transport::Channel;

/// The default deadline for a condition in these tests.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Path of a binary target of this package.
pub fn infantd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_infantd"))
}

/// Path of `infantctl`.
pub fn infantctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_infantctl"))
}

/// Path of an example binary (cargo builds examples for `cargo test`).
pub fn example_bin(name: &str) -> PathBuf {
    // tests run from target/<profile>/deps/<test>-<hash>
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples (cargo test builds them)",
        path.display()
    );
    path
}

/// A running `infantd` with its own private folder and socket. Dropping it
/// SIGKILLs the daemon (its instances die with it by their parent-death signal).
pub struct Daemon {
    child: Option<Child>,
    /// A private 0700 folder for this daemon (socket, config, marker files).
    pub dir: tempfile::TempDir,
    /// The control socket.
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts `infantd --socket DIR/d.sock ARGS…` and waits until it answers.
    pub async fn start(args: &[&str]) -> Daemon {
        Self::start_with(args, |_| {}).await
    }

    /// Like [`Daemon::start`], with a chance to add a config file to the folder
    /// first (`setup` gets the folder).
    pub async fn start_with(args: &[&str], setup: impl FnOnce(&Path)) -> Daemon {
        let dir = short_tempdir();
        setup(dir.path());
        let socket = dir.path().join("d.sock");
        let mut command = Command::new(infantd_bin());
        command.arg("--socket").arg(&socket).args(args);
        Self::launch(command, dir, socket).await
    }

    /// Starts `infantd ARGS…` without `--socket`, as a user would: it takes its
    /// default socket, `$XDG_RUNTIME_DIR/infant/infantd.sock`, with
    /// `$XDG_RUNTIME_DIR` set to the daemon's private folder and `$INFANT_SOCKET`
    /// unset.
    pub async fn start_default_socket(args: &[&str]) -> Daemon {
        let dir = short_tempdir();
        let socket = dir.path().join("infant").join("infantd.sock");
        let mut command = Command::new(infantd_bin());
        command
            .args(args)
            .env("XDG_RUNTIME_DIR", dir.path())
            .env_remove("INFANT_SOCKET");
        Self::launch(command, dir, socket).await
    }

    /// Spawns `command` (infantd with its arguments) in `dir` and waits until it
    /// answers on `socket`.
    pub async fn launch(mut command: Command, dir: tempfile::TempDir, socket: PathBuf) -> Daemon {
        // A command that sets its own INFANT_LOG keeps it.
        if !command.get_envs().any(|(key, _)| key == "INFANT_LOG") {
            command.env(
                "INFANT_LOG",
                std::env::var("INFANT_TEST_LOG").unwrap_or_else(|_| "info".into()),
            );
        }
        let child = command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn infantd");
        let daemon = Daemon {
            child: Some(child),
            dir,
            socket,
        };
        let socket = daemon.socket.clone();
        wait_until("infantd answers on its socket", DEADLINE, || {
            let socket = socket.clone();
            async move { infant::transport::connect_unix(&socket).await.is_ok() }
        })
        .await;
        daemon
    }

    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// A control client.
    pub async fn client(&self) -> SupervisorClient<Channel> {
        let channel = infant::transport::connect_unix(&self.socket)
            .await
            .expect("connect to infantd");
        SupervisorClient::new(channel)
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .expect("signal infantd");
    }

    /// Waits (with a deadline) for the daemon to exit and returns its status.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("daemon already waited for");
        wait_child(&mut child, deadline).await
    }

    /// SIGTERM and wait: the graceful path every test should end with.
    pub async fn stop(mut self) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.wait_exit(DEADLINE).await
    }

    /// Runs `infantctl --socket … ARGS` and returns (status, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let out = Command::new(infantctl_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run infantctl");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Daemon {
    /// A test that panicked still cleans up: SIGTERM lets the daemon stop and reap
    /// every process it started (SIGKILL would leave grandchildren to PID 1);
    /// SIGKILL only if it does not exit in time.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < DEADLINE {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A temp folder with a short path: Unix socket paths are limited to 108 bytes.
pub fn short_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("inf")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

/// Waits until `check` returns true, polling every 20 ms; panics naming `what`
/// once `deadline` has passed.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True while `/proc/PID` exists — including as a zombie (not yet reaped).
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The process state letter from `/proc/PID/stat` (`Z` for a zombie).
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Waits until none of `pids` exists any more, not even as a zombie.
pub async fn wait_gone(pids: &[u32], deadline: Duration) {
    let pids = pids.to_vec();
    wait_until(
        &format!("processes {pids:?} to be gone and reaped"),
        deadline,
        || {
            let pids = pids.clone();
            async move { pids.iter().all(|&p| !exists(p)) }
        },
    )
    .await;
}

/// Every process whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = s[s.rfind(')')? + 1..].to_string();
                    rest.split_whitespace().nth(2)?.parse::<u32>().ok()
                })
                == Some(pgid)
        })
        .collect()
}

/// Records every event of a daemon from the moment it is created.
#[derive(Clone)]
pub struct Recorder {
    events: Arc<Mutex<Vec<Event>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Recorder {
    /// Subscribes (live only) and records in the background. The subscription is
    /// in place when this returns.
    pub async fn new(daemon: &Daemon) -> Recorder {
        let mut client = daemon.client().await;
        let mut stream = client
            .events(proto::EventsRequest {
                name: String::new(),
                replay: false,
                follow: true,
            })
            .await
            .expect("Events")
            .into_inner();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let task = tokio::spawn(async move {
            while let Ok(Some(event)) = stream.message().await {
                if let Ok(mut all) = sink.lock() {
                    all.push(event);
                }
            }
        });
        Recorder {
            events,
            task: Arc::new(task),
        }
    }

    /// A copy of everything so far.
    pub fn all(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Every pid the events so far mention: all the processes the daemon started.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .all()
            .iter()
            .map(|e| e.pid)
            .filter(|&p| p != 0)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Waits for an event matching `matches`; returns it.
    pub async fn wait_for(&self, what: &str, matches: impl Fn(&Event) -> bool) -> Event {
        self.wait_for_within(what, DEADLINE, matches).await
    }

    /// Like [`Recorder::wait_for`], with a deadline of its own: for a test whose
    /// point is how soon the event comes.
    pub async fn wait_for_within(
        &self,
        what: &str,
        deadline: Duration,
        matches: impl Fn(&Event) -> bool,
    ) -> Event {
        let start = Instant::now();
        loop {
            if let Some(e) = self.all().into_iter().find(|e| matches(e)) {
                return e;
            }
            if start.elapsed() > deadline {
                let seen: Vec<String> = self.all().iter().map(describe).collect();
                panic!(
                    "no event within {deadline:?}: {what}\nseen:\n{}",
                    seen.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `count` events match; returns them.
    pub async fn wait_for_n(
        &self,
        what: &str,
        count: usize,
        matches: impl Fn(&Event) -> bool,
    ) -> Vec<Event> {
        let start = Instant::now();
        loop {
            let found: Vec<Event> = self.all().into_iter().filter(|e| matches(e)).collect();
            if found.len() >= count {
                return found;
            }
            if start.elapsed() > DEADLINE {
                let seen: Vec<String> = self.all().iter().map(describe).collect();
                panic!(
                    "timed out waiting for {count}× {what}\nseen:\n{}",
                    seen.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Recorder {
    /// Waits for the exits of `old` and the spawns of `new`, then asserts that
    /// every old process exited before the first new one was spawned: the
    /// stop-all-then-start-all order of a full restart.
    pub async fn assert_all_exited_before_any_started(&self, old: &[u32], new: &[u32]) {
        let exits = self
            .wait_for_n("an exit of each old worker", old.len(), |e| {
                is(e, proto::EventKind::Exit) && old.contains(&e.pid)
            })
            .await;
        let starts = self
            .wait_for_n("a spawn of each new worker", new.len(), |e| {
                is(e, proto::EventKind::Status)
                    && e.instance_status == proto::InstanceStatus::Starting as i32
                    && new.contains(&e.pid)
            })
            .await;
        let last_exit = exits.iter().map(|e| e.seq).max();
        let first_start = starts.iter().map(|e| e.seq).min();
        assert!(
            last_exit < first_start,
            "every old worker {old:?} exits before a new one {new:?} starts:\n{}",
            self.all()
                .iter()
                .map(describe)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

/// One line per event, for failure messages.
pub fn describe(e: &Event) -> String {
    format!(
        "#{} {} w{} pid{} {:?} ps={} is={} code={:?} sig={:?} delay={} reason={:?}",
        e.seq,
        e.program,
        e.worker,
        e.pid,
        proto::EventKind::try_from(e.kind).unwrap_or(proto::EventKind::Unspecified),
        e.program_status,
        e.instance_status,
        e.code,
        e.signal,
        e.delay_ms,
        e.reason
    )
}

/// Is `e` of `kind`?
pub fn is(e: &Event, kind: proto::EventKind) -> bool {
    e.kind == kind as i32
}

/// A `ProgramSpec` for `command` with everything else default.
pub fn spec(kind: proto::ProgramKind, command: &[&str]) -> proto::ProgramSpec {
    proto::ProgramSpec {
        kind: kind as i32,
        command: command.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// The workers of `program`, via `EachWorker`.
pub async fn workers(
    client: &mut SupervisorClient<Channel>,
    program: &str,
) -> Vec<proto::WorkerInfo> {
    let mut stream = client
        .each_worker(proto::EachWorkerRequest {
            name: program.to_string(),
        })
        .await
        .expect("EachWorker")
        .into_inner();
    let mut out = Vec::new();
    while let Some(w) = stream.message().await.expect("EachWorker stream") {
        out.push(w);
    }
    out
}

/// The pids of `program`'s workers that are `ok`.
pub async fn ok_pids(client: &mut SupervisorClient<Channel>, program: &str) -> Vec<u32> {
    workers(client, program)
        .await
        .into_iter()
        .filter(|w| w.status == proto::InstanceStatus::Ok as i32)
        .map(|w| w.pid)
        .collect()
}

/// One HTTP/1.1 GET on a new connection (`Connection: close`); the body on a
/// 200, an error otherwise (refused, reset, timed out, bad status).
pub async fn http_get(addr: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = addr.trim_start_matches("tcp://").to_string();
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&addr).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: infant\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        let text = String::from_utf8_lossy(&response).into_owned();
        match text.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
            _ => Err(std::io::Error::other(format!("bad response: {text:?}"))),
        }
    };
    tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .map_err(|_| std::io::Error::other("request timed out"))?
}

/// An HTTP/1.1 client that keeps its connection alive, as wrk and browsers do:
/// requests go back to back on one connection until the server answers with
/// `Connection: close`, then the next one opens a new connection. A request that
/// gets no whole answer (reset, closed before the answer, timed out) is an error:
/// this is how a server that closes an idle keep-alive connection at the wrong
/// moment loses requests.
pub struct KeepAlive {
    addr: String,
    stream: Option<tokio::io::BufReader<tokio::net::TcpStream>>,
    /// When the last request ended.
    last: std::time::Instant,
    /// Answers the current connection has carried.
    uses: u32,
}

impl KeepAlive {
    pub fn new(addr: &str) -> KeepAlive {
        KeepAlive {
            addr: addr.trim_start_matches("tcp://").to_string(),
            stream: None,
            last: std::time::Instant::now(),
            uses: 0,
        }
    }

    /// One GET; the body on a 200. An error says how long the connection had
    /// been idle and how many answers it had carried: a close racing a request
    /// shows as a reused connection.
    pub async fn get(&mut self) -> std::io::Result<String> {
        let idle = self.last.elapsed();
        let result = tokio::time::timeout(Duration::from_secs(15), self.exchange())
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("request timed out")));
        self.last = std::time::Instant::now();
        match result {
            Ok(body) => {
                self.uses += 1;
                Ok(body)
            }
            Err(e) => {
                let uses = self.uses;
                self.stream = None;
                Err(std::io::Error::other(format!(
                    "{e} (connection idle {idle:?}, after {uses} answers)"
                )))
            }
        }
    }

    async fn exchange(&mut self) -> std::io::Result<String> {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        if self.stream.is_none() {
            let stream = tokio::net::TcpStream::connect(&self.addr).await?;
            self.stream = Some(tokio::io::BufReader::new(stream));
            self.uses = 0;
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(std::io::Error::other("no connection"));
        };
        stream
            .get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: infant\r\n\r\n")
            .await?;
        let (mut status, mut length, mut close) = (String::new(), None, false);
        stream.read_line(&mut status).await?;
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::other("closed inside the answer's head"));
            }
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(value) = line.strip_prefix("content-length:") {
                length = value.trim().parse::<usize>().ok();
            }
            if line == "connection: close" {
                close = true;
            }
        }
        if !status.starts_with("HTTP/1.1 200") {
            return Err(std::io::Error::other(format!("bad status: {status:?}")));
        }
        let length =
            length.ok_or_else(|| std::io::Error::other("an answer without Content-Length"))?;
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        if close {
            self.stream = None;
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// The first bound `listen` address of `program` (`tcp://127.0.0.1:PORT`).
pub async fn listen_addr(client: &mut SupervisorClient<Channel>, program: &str) -> String {
    let reply = client
        .list(proto::ListRequest {
            name: program.to_string(),
        })
        .await
        .expect("List")
        .into_inner();
    reply.programs[0]
        .listen
        .first()
        .cloned()
        .expect("the program has a listen address")
}

/// What a [`Load`] saw: (ok, failed, errors, bodies).
pub type LoadTotals = (u64, u64, Vec<String>, Vec<String>);

/// A bounded load: `clients` tasks sending requests back to back until `stop`
/// is set or `max` requests were sent in all. Returns (ok, failed, errors seen).
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    answered: Arc<std::sync::atomic::AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<LoadTotals>>,
}

impl Load {
    /// Starts the load against `addr`, a new connection per request.
    pub fn start(addr: &str, clients: usize, max_per_client: u64) -> Load {
        Load::run(addr, clients, max_per_client, false)
    }

    /// Starts the load against `addr` on keep-alive connections ([`KeepAlive`]).
    pub fn keep_alive(addr: &str, clients: usize, max_per_client: u64) -> Load {
        Load::run(addr, clients, max_per_client, true)
    }

    fn run(addr: &str, clients: usize, max_per_client: u64, keep_alive: bool) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let tasks = (0..clients)
            .map(|_| {
                let addr = addr.to_string();
                let stop = Arc::clone(&stop);
                let answered = Arc::clone(&answered);
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0, 0);
                    let (mut errors, mut bodies) = (Vec::new(), Vec::new());
                    let mut connection = keep_alive.then(|| KeepAlive::new(&addr));
                    for _ in 0..max_per_client {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let answer = match connection.as_mut() {
                            Some(connection) => connection.get().await,
                            None => http_get(&addr).await,
                        };
                        match answer {
                            Ok(body) => {
                                ok += 1;
                                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                bodies.push(body);
                            }
                            Err(e) => {
                                failed += 1;
                                errors.push(e.to_string());
                            }
                        }
                    }
                    (ok, failed, errors, bodies)
                })
            })
            .collect();
        Load {
            stop,
            answered,
            tasks,
        }
    }

    /// Waits until at least `n` requests were answered.
    pub async fn wait_answered(&self, n: u64) {
        let answered = Arc::clone(&self.answered);
        wait_until(&format!("{n} requests answered"), DEADLINE, || {
            let count = answered.load(std::sync::atomic::Ordering::Relaxed);
            async move { count >= n }
        })
        .await;
    }

    /// Stops the load and returns (ok, failed, errors, bodies).
    pub async fn finish(self) -> LoadTotals {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = (0, 0, Vec::new(), Vec::new());
        for task in self.tasks {
            let (ok, failed, errors, bodies) = task.await.expect("load task");
            total.0 += ok;
            total.1 += failed;
            total.2.extend(errors);
            total.3.extend(bodies);
        }
        total
    }
}

/// A cluster of `count` `http_worker`s (SDK HTTP workers) on a daemon-owned
/// socket at a free port; plain, not enhanced.
pub fn http_cluster(count: u32) -> proto::ProgramSpec {
    let worker = example_bin("http_worker");
    let mut s = spec(proto::ProgramKind::Cluster, &[&worker.to_string_lossy()]);
    s.count = Some(count);
    s.listen = vec!["tcp://127.0.0.1:0".into()];
    s
}

/// Starts `s` as program `name`; the reply or the status.
pub async fn start_program_result(
    client: &mut SupervisorClient<Channel>,
    name: &str,
    s: proto::ProgramSpec,
) -> Result<proto::ProgramInfo, tonic::Status> {
    client
        .start(proto::StartRequest {
            name: name.into(),
            spec: Some(s),
            wait: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Starts `s` as program `name` and returns the reply; panics naming the program.
pub async fn start_program(
    client: &mut SupervisorClient<Channel>,
    name: &str,
    s: proto::ProgramSpec,
) -> proto::ProgramInfo {
    start_program_result(client, name, s)
        .await
        .unwrap_or_else(|e| panic!("Start {name}: {e}"))
}

/// The pids whose parent is `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s[s.rfind(')')? + 1..]
                        .split_whitespace()
                        .nth(1)?
                        .parse::<u32>()
                        .ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Waits until `program`'s entry in `List` satisfies `check`; panics naming
/// `what` after `deadline`.
pub async fn wait_program(
    client: &SupervisorClient<Channel>,
    program: &str,
    what: &str,
    deadline: Duration,
    check: impl Fn(&proto::ProgramInfo) -> bool,
) {
    let check = &check;
    wait_until(what, deadline, || {
        let mut client = client.clone();
        let name = program.to_string();
        async move {
            client
                .list(proto::ListRequest { name })
                .await
                .is_ok_and(|l| l.into_inner().programs.first().is_some_and(check))
        }
    })
    .await;
}

/// Waits for a child process to exit; past `deadline` it is SIGKILLed and the
/// test fails.
pub async fn wait_child(child: &mut Child, deadline: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} did not exit within {deadline:?}", child.id());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `infantd --config app.toml` with `text` as that file, in the daemon's
/// private folder (also its working directory, so relative paths in commands land
/// there).
pub async fn daemon_with_config(text: &str) -> Daemon {
    Daemon::start_with(&["--config", "app.toml"], |dir| {
        std::fs::write(dir.join("app.toml"), text).expect("write app.toml");
    })
    .await
}

/// The quick start's application: `db` ← `migrate` (a job; it exits with
/// `$MIGRATE_EXIT`, 0 unless replaced) ← `web` (a cluster of two).
pub const APP: &str = r#"
[program.db]
command = ["sleep", "1000"]
start_grace = "50ms"

[program.migrate]
kind = "once"
command = ["sh", "-c", "sleep 0.2; exit ${MIGRATE_EXIT:-0}"]
after = ["db"]

[program.web]
kind = "cluster"
count = 2
command = ["sleep", "1000"]
start_grace = "50ms"
after = ["migrate"]
"#;
