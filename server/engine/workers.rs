//! The SDK channel (attach, worker messages, detach) and the two ways the control
//! API reaches running workers: `Send` and `Kill`.

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::events::{Event, EventKind};
use super::state::InstanceStatus;
use super::worker_msg::{FromWorker, Hello, ToWorker, Welcome, WorkerKey, WorkerLink};
use super::Engine;
use crate::daemon::error::{Error, Result};
use crate::daemon::spec::{Kind, Ready};

/// Largest message payload, either way.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

impl Engine {
    /// Checks a worker's `Hello` against the instance it claims to be.
    ///
    /// The token proves the worker was started by us for this slot; the socket's
    /// peer credentials (from the kernel, not the worker) prove the caller is that
    /// process or one in its process group, so a leaked token alone is not enough.
    ///
    /// A refusal is also recorded on the instance the caller belongs to (by its
    /// process group), so that when that worker exits, its exit says why.
    pub(super) fn attach(
        &mut self,
        hello: Hello,
        peer_pid: Option<i32>,
        channel: WorkerLink,
    ) -> Result<(WorkerKey, Welcome)> {
        let admitted = self.admit(hello, peer_pid, channel);
        if let (Err(Error::AttachRefused(why)), Some(peer)) = (&admitted, peer_pid) {
            let peer = Pid::from_raw(peer);
            let leader = nix::unistd::getpgid(Some(peer)).unwrap_or(peer);
            let owner = [peer, leader]
                .iter()
                .find_map(|pid| self.pids.get(pid).cloned());
            if let Some((name, id)) = owner {
                tracing::warn!(program = %name, worker = id, "attach refused: {why}");
                if let Some(instance) = self
                    .find(&name)
                    .ok()
                    .and_then(|index| self.programs[index].instance_mut(id))
                {
                    instance.notes_mut().attach_refused = Some(why.clone());
                }
            }
        }
        admitted
    }

    fn admit(
        &mut self,
        hello: Hello,
        peer_pid: Option<i32>,
        channel: WorkerLink,
    ) -> Result<(WorkerKey, Welcome)> {
        let refused = |why: String| Error::AttachRefused(why);
        let found = self.programs.iter().enumerate().find_map(|(index, p)| {
            p.instances
                .iter()
                .find(|i| i.id == hello.id && !i.token.is_empty() && i.token == hello.token)
                .map(|i| (index, i.id))
        });
        let Some((index, id)) = found else {
            return Err(refused(format!(
                "worker {}: unknown worker or wrong token",
                hello.id
            )));
        };
        let program = &mut self.programs[index];
        let spec = &program.spec;
        let welcome = Welcome {
            heartbeat: spec.heartbeat,
            max_connections: if spec.enhanced {
                spec.max_connections
            } else {
                0
            },
            stop_timeout: spec.stop_timeout,
            program: spec.name.clone(),
        };
        let name = spec.name.clone();
        let Some(instance) = program.instance_mut(id) else {
            return Err(refused(format!("worker {id}: gone")));
        };
        let Some(pid) = instance.pid else {
            return Err(refused(format!("worker {id} of `{name}` is not running")));
        };
        let Some(peer) = peer_pid else {
            return Err(refused("the peer's credentials are unavailable".into()));
        };
        let peer = Pid::from_raw(peer);
        let in_group = peer == pid || nix::unistd::getpgid(Some(peer)).ok() == Some(pid);
        if !in_group {
            return Err(refused(format!(
                "process {peer} is not worker {id} of `{name}` (pid {pid}) nor in its process group"
            )));
        }
        if instance.channel.is_some() {
            return Err(refused(format!(
                "worker {id} of `{name}` is already attached"
            )));
        }
        if let Some(reason) = instance.stopping {
            // It was asked to stop before it could listen; SDK workers ignore
            // SIGTERM under a daemon, so say it again on the channel.
            let _ = channel.try_send(ToWorker::Stop {
                reason,
                deadline: welcome.stop_timeout,
            });
        }
        instance.channel = Some(channel);
        instance.last_seen = tokio::time::Instant::now();
        self.programs[index].links_sdk = true;
        tracing::debug!(program = %name, worker = id, %pid, claimed_pid = hello.pid, "worker attached");
        let key = WorkerKey {
            program: name,
            id,
            token: hello.token,
        };
        Ok((key, welcome))
    }

    /// Finds the instance a key names, if it is still the same process.
    fn keyed(&self, key: &WorkerKey) -> Option<usize> {
        let index = self.find(&key.program).ok()?;
        let instance = self.programs[index].instance(key.id)?;
        (instance.token == key.token).then_some(index)
    }

    /// A message from an attached worker.
    pub(super) fn on_worker_message(&mut self, key: WorkerKey, message: FromWorker) {
        let Some(index) = self.keyed(&key) else {
            return; // a previous process of the slot, still closing its stream
        };
        let id = key.id;
        let (status, pid) = match self.programs[index].instance_mut(id) {
            Some(i) => {
                i.last_seen = tokio::time::Instant::now();
                (i.status, i.pid)
            }
            None => return,
        };
        match message {
            FromWorker::Ready => {
                // `grace`, `spawn` and `notify` have readiness of their own.
                let by_sdk = matches!(self.programs[index].spec.ready, Ready::Auto | Ready::Sdk);
                if status == InstanceStatus::Starting && by_sdk {
                    self.mark_ok(index, id);
                }
            }
            FromWorker::Failed(text) => match status {
                InstanceStatus::Starting => self.start_failed(index, id, text),
                // A running job's run failed: its exit reports the text (to
                // `Start` with `wait` and in the `error` event), once.
                InstanceStatus::Ok if self.programs[index].spec.kind == Kind::Once => {
                    if let Some(instance) = self.programs[index].instance_mut(id) {
                        instance.notes_mut().reported_error = Some(text);
                    }
                }
                // Counted `ok` without `Ready` (it attached after the start
                // grace), or failing after `Ready`: the text must not be lost.
                InstanceStatus::Ok => self.worker_failed(index, id, pid, text),
                _ => {
                    tracing::debug!(program = %key.program, worker = id, "ignoring Failed: {text}")
                }
            },
            FromWorker::Heartbeat {
                connections,
                requests,
            } => {
                if let Some(instance) = self.programs[index].instance_mut(id) {
                    instance.connections = connections;
                    instance.requests = requests;
                }
                // Crossing the limit is reported at once, not at the next tick.
                let spec = &self.programs[index].spec;
                if spec.enhanced && connections.max(requests) >= spec.max_connections {
                    self.check_recycle(index);
                }
            }
            FromWorker::Message(payload) => {
                let mut event = Event::new(&key.program, EventKind::Message).worker(id, pid);
                event.payload = payload;
                self.publish(event);
            }
            FromWorker::Stopped => {
                tracing::debug!(program = %key.program, worker = id, "stop hook finished");
                self.stopped_itself(index, id);
            }
            FromWorker::StopFailed(text) => {
                self.stopped_itself(index, id);
                let reason = format!("worker {id}: the stop hook failed: {text}");
                if let Some(instance) = self.programs[index].instance_mut(id) {
                    instance.notes_mut().reported_error = Some(text);
                }
                // The caller of `Stop` reads it in the program's error.
                self.programs[index].last_error = Some(reason.clone());
                self.publish(
                    Event::new(&key.program, EventKind::Error)
                        .worker(id, pid)
                        .reason(reason),
                );
            }
        }
    }

    /// Notes a `Stopped` the daemon did not ask for: the worker is leaving by
    /// itself, gracefully.
    fn stopped_itself(&mut self, index: usize, id: u64) {
        if let Some(instance) = self.programs[index].instance_mut(id) {
            if instance.stopping.is_none() {
                instance.stopped_itself = true;
            }
        }
    }

    /// A running worker reported a failure (`Failed` after it was `ok`): it is
    /// about to exit, and its text becomes the program's error.
    fn worker_failed(&mut self, index: usize, id: u64, pid: Option<Pid>, text: String) {
        let name = self.programs[index].spec.name.clone();
        let error = format!("worker {id} failed: {text}");
        if let Some(instance) = self.programs[index].instance_mut(id) {
            // Not `ok` any more; its exit then keeps this error.
            instance.status = InstanceStatus::Error;
        }
        self.programs[index].last_error = Some(error.clone());
        let mut event = Event::new(&name, EventKind::Status).worker(id, pid);
        event.instance_status = Some(InstanceStatus::Error);
        event.reason = text;
        self.publish(event);
        self.publish(
            Event::new(&name, EventKind::Error)
                .worker(id, pid)
                .reason(error),
        );
        self.settle(index);
    }

    /// An attached worker's stream ended. Its process may live on (it will be
    /// reaped or stopped as usual); it just cannot hear `Stop` any more, so a later
    /// stop falls back to SIGTERM.
    pub(super) fn detach(&mut self, key: WorkerKey) {
        let Some(index) = self.keyed(&key) else {
            return;
        };
        if let Some(instance) = self.programs[index].instance_mut(key.id) {
            instance.channel = None;
        }
    }

    /// `Send`: hands `payload` to one or every attached worker.
    pub(super) fn send(
        &mut self,
        name: &str,
        worker: Option<u64>,
        payload: Vec<u8>,
    ) -> Result<u32> {
        if payload.len() > MAX_PAYLOAD {
            return Err(Error::InvalidArgument {
                field: "payload",
                reason: format!("{} bytes is more than the 1 MiB limit", payload.len()),
            });
        }
        let index = self.find(name)?;
        let program = &self.programs[index];
        if let Some(id) = worker {
            if program.instance(id).is_none() {
                return Err(Error::UnknownWorker {
                    program: name.to_string(),
                    worker: id,
                });
            }
        }
        let mut delivered = 0;
        let mut full = 0;
        for instance in &program.instances {
            if worker.is_some_and(|id| id != instance.id) {
                continue;
            }
            if let Some(channel) = &instance.channel {
                match channel.try_send(ToWorker::Message(payload.clone())) {
                    Ok(()) => delivered += 1,
                    Err(_) => full += 1,
                }
            }
        }
        if delivered == 0 {
            let reason = if full > 0 {
                "its workers are not reading their messages (queue full)".to_string()
            } else if worker.is_some() {
                "that worker has no message channel (it does not link the infant SDK)".to_string()
            } else {
                "no worker has a message channel (plain programs do not link the infant SDK)"
                    .to_string()
            };
            return Err(Error::Precondition {
                program: name.to_string(),
                reason,
            });
        }
        Ok(delivered)
    }

    /// `Kill`: sends `signal` to one or every worker's process group. Not a stop: a
    /// worker that exits because of it is respawned (at once, the signal being no
    /// crash of its own) if the program respawns.
    pub(super) fn kill(&mut self, name: &str, worker: Option<u64>, signal: Signal) -> Result<u32> {
        let index = self.find(name)?;
        let program = &mut self.programs[index];
        if let Some(id) = worker {
            if program.instance(id).is_none() {
                return Err(Error::UnknownWorker {
                    program: name.to_string(),
                    worker: id,
                });
            }
        }
        let mut signalled = 0;
        for instance in &mut program.instances {
            if worker.is_some_and(|id| id != instance.id) {
                continue;
            }
            if let Some(pid) = instance.pid {
                self.os
                    .signal_group(pid, signal)
                    .map_err(|e| Error::io(format!("signal worker {}", instance.id), e))?;
                instance.signalled = Some(signal);
                signalled += 1;
            }
        }
        if signalled == 0 {
            return Err(Error::Precondition {
                program: name.to_string(),
                reason: "has no running process to signal".into(),
            });
        }
        Ok(signalled)
    }
}
