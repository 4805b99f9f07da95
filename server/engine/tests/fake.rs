//! A fake operating system for the engine: spawns hand out pids and record what
//! was started, signals are recorded and act the way a simple program would
//! (SIGKILL ends it, SIGTERM too unless its program was made stubborn), and the
//! test ends processes itself. Exits go to the engine on the same kind of channel
//! the reaper feeds in the daemon.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::daemon::engine::os::{Os, Spawned};
use crate::daemon::process::cpu::Usage;
use crate::daemon::process::reaper::{Exit, ExitStatus};
use crate::daemon::process::sockets::{self, BoundSocket};
use crate::daemon::process::spawn::{SpawnError, SpawnRequest};
use crate::daemon::spec::ListenAddr;

/// One process the engine spawned.
#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: Pid,
    pub program: String,
    pub worker: u64,
    /// Its `INFANT_TOKEN`, for an SDK attach.
    pub token: String,
    pub spawned_at: Instant,
    /// When it ended and how; `None` while it runs.
    pub ended: Option<(Instant, ExitStatus)>,
}

/// A signal the engine sent to a running process group.
#[derive(Clone, Debug)]
pub struct Sent {
    pub pid: Pid,
    pub signal: Signal,
    pub at: Instant,
}

/// Something that happened, in order: for capacity checks over time.
#[derive(Clone, Debug)]
pub enum Happened {
    Spawned(Pid),
    Signalled(Pid, Signal),
    Ended(Pid),
}

#[derive(Default)]
struct World {
    next_pid: i32,
    procs: Vec<Proc>,
    sent: Vec<Sent>,
    log: Vec<Happened>,
    /// Programs whose processes ignore SIGTERM.
    stubborn: HashSet<String>,
    /// Programs whose spawns fail.
    unspawnable: HashSet<String>,
    rss: HashMap<Pid, u64>,
    exits: Option<mpsc::UnboundedSender<Exit>>,
    spawned: Option<mpsc::UnboundedSender<Proc>>,
}

impl World {
    fn end(&mut self, pid: Pid, status: ExitStatus) -> bool {
        let Some(proc) = self
            .procs
            .iter_mut()
            .find(|p| p.pid == pid && p.ended.is_none())
        else {
            return false;
        };
        proc.ended = Some((Instant::now(), status));
        self.log.push(Happened::Ended(pid));
        if let Some(exits) = &self.exits {
            let _ = exits.send(Exit { pid, status });
        }
        true
    }
}

/// The test's side of the fake.
#[derive(Clone)]
pub struct Fake {
    world: Arc<Mutex<World>>,
}

impl Fake {
    /// The fake, the [`Os`] to give the engine, the exits to give it, and a feed
    /// of every spawn.
    pub fn new() -> (
        Fake,
        Box<dyn Os>,
        mpsc::UnboundedReceiver<Exit>,
        mpsc::UnboundedReceiver<Proc>,
    ) {
        let (exit_tx, exit_rx) = mpsc::unbounded_channel();
        let (spawn_tx, spawn_rx) = mpsc::unbounded_channel();
        let world = World {
            next_pid: 1000,
            exits: Some(exit_tx),
            spawned: Some(spawn_tx),
            ..World::default()
        };
        let world = Arc::new(Mutex::new(world));
        let os = FakeOs {
            world: Arc::clone(&world),
        };
        (Fake { world }, Box::new(os), exit_rx, spawn_rx)
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().expect("fake world")
    }

    /// Processes of `program` ignore SIGTERM from now on.
    pub fn stubborn(&self, program: &str) {
        self.world().stubborn.insert(program.to_string());
    }

    /// Spawns of `program` fail (`true`) or work again.
    pub fn unspawnable(&self, program: &str, fail: bool) {
        let mut world = self.world();
        if fail {
            world.unspawnable.insert(program.to_string());
        } else {
            world.unspawnable.remove(program);
        }
    }

    /// Sets the resident memory the engine reads for `pid`.
    pub fn set_rss(&self, pid: Pid, bytes: u64) {
        self.world().rss.insert(pid, bytes);
    }

    /// Ends `pid` with `status` as if it exited by itself; false if it was not
    /// running.
    pub fn end(&self, pid: Pid, status: ExitStatus) -> bool {
        self.world().end(pid, status)
    }

    /// Every process ever spawned for `program`, oldest first.
    pub fn procs(&self, program: &str) -> Vec<Proc> {
        self.world()
            .procs
            .iter()
            .filter(|p| p.program == program)
            .cloned()
            .collect()
    }

    /// The processes of `program` still running.
    pub fn running(&self, program: &str) -> Vec<Proc> {
        let mut procs = self.procs(program);
        procs.retain(|p| p.ended.is_none());
        procs
    }

    /// Every running process, of any program.
    pub fn all_running(&self) -> Vec<Proc> {
        let world = self.world();
        world
            .procs
            .iter()
            .filter(|p| p.ended.is_none())
            .cloned()
            .collect()
    }

    /// The signals sent to `pid` while it ran.
    pub fn signals(&self, pid: Pid) -> Vec<Sent> {
        self.world()
            .sent
            .iter()
            .filter(|s| s.pid == pid)
            .cloned()
            .collect()
    }

    /// What happened so far, in order.
    pub fn log(&self) -> Vec<Happened> {
        self.world().log.clone()
    }

    /// The process `pid`.
    pub fn proc(&self, pid: Pid) -> Proc {
        self.world()
            .procs
            .iter()
            .find(|p| p.pid == pid)
            .cloned()
            .expect("a spawned pid")
    }
}

struct FakeOs {
    world: Arc<Mutex<World>>,
}

impl FakeOs {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().expect("fake world")
    }
}

fn env<'a>(request: &'a SpawnRequest<'_>, key: &str) -> &'a str {
    request
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.to_str())
        .unwrap_or("")
}

impl Os for FakeOs {
    fn spawn(&mut self, request: &SpawnRequest<'_>) -> Result<Spawned, SpawnError> {
        let program = env(request, "INFANT_PROGRAM").to_string();
        let worker = env(request, "INFANT_WORKER_ID").parse().unwrap_or(0);
        let token = env(request, "INFANT_TOKEN").to_string();
        let mut world = self.world();
        if world.unspawnable.contains(&program) {
            return Err(SpawnError::Executable {
                command: request.argv[0].clone(),
                reason: "No such file or directory".into(),
            });
        }
        world.next_pid += 1;
        let pid = Pid::from_raw(world.next_pid);
        let proc = Proc {
            pid,
            program,
            worker,
            token,
            spawned_at: Instant::now(),
            ended: None,
        };
        world.procs.push(proc.clone());
        world.log.push(Happened::Spawned(pid));
        if let Some(spawned) = &world.spawned {
            let _ = spawned.send(proc);
        }
        Ok(Spawned {
            pid,
            exec: Box::pin(std::future::ready(None)),
        })
    }

    fn signal_group(&mut self, pgid: Pid, signal: Signal) -> std::io::Result<()> {
        let mut world = self.world();
        let Some(proc) = world
            .procs
            .iter()
            .find(|p| p.pid == pgid && p.ended.is_none())
            .cloned()
        else {
            return Ok(()); // gone: ESRCH, which is no error
        };
        world.sent.push(Sent {
            pid: pgid,
            signal,
            at: Instant::now(),
        });
        world.log.push(Happened::Signalled(pgid, signal));
        let ends = match signal {
            Signal::SIGKILL => true,
            Signal::SIGTERM => !world.stubborn.contains(&proc.program),
            _ => false,
        };
        if ends {
            world.end(pgid, ExitStatus::Signal(signal as i32));
        }
        Ok(())
    }

    fn bind(&mut self, addr: &ListenAddr) -> std::io::Result<BoundSocket> {
        // A loopback port costs nothing and is closed when the program stops.
        sockets::bind(addr)
    }

    fn rss_bytes(&self, pid: Pid) -> Option<u64> {
        let world = self.world();
        let running = world
            .procs
            .iter()
            .any(|p| p.pid == pid && p.ended.is_none());
        running.then(|| world.rss.get(&pid).copied().unwrap_or(10 << 20))
    }

    /// The fake's processes use no CPU.
    fn usage(&self, pid: Pid) -> Option<Usage> {
        Some(Usage {
            cpu: std::time::Duration::ZERO,
            rss_bytes: self.rss_bytes(pid)?,
        })
    }
}
