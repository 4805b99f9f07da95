//! Progress of the long operations (stop, restart, scale): one step per worker
//! replaced, started or stopped, then a summary, read from the `Events` stream
//! while the call runs.
//!
//! Shown on a terminal, and with `--json` as objects with a `step` key (before
//! the program object the command always prints). In a pipe without `--json`
//! nothing is subscribed to and the command prints what it always did.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant};

use infant::control::{Control, ControlError};
use infant::proto::{Event, EventKind, InstanceStatus, ProgramInfo};
use serde_json::json;

use crate::output::Output;
use crate::run::Failure;

/// The events of an operation are published before its reply, but travel on
/// another stream: after the reply, wait this long at most for the last ones.
const STRAGGLERS: Duration = Duration::from_secs(3);

/// What the operation is expected to do, to know when its steps are all in.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// Every worker present before exits.
    StopAll,
    /// Every worker present before exits, and as many new ones come up.
    ReplaceAll,
    /// The cluster goes to this many workers.
    ScaleTo(u32),
}

/// Runs `call` on program `name`, printing its steps if `out` shows progress.
pub async fn run<F>(
    control: &Control,
    name: &str,
    expect: Expect,
    out: &mut Output,
    call: F,
) -> Result<ProgramInfo, Failure>
where
    F: Future<Output = Result<ProgramInfo, ControlError>>,
{
    if !out.progress {
        return Ok(call.await?);
    }
    // The workers before, then the stream: a worker that comes up in between is
    // counted as new, which is what it is.
    let before: Vec<(u64, u32)> = control
        .workers(Some(name))
        .await?
        .iter()
        .filter(|w| w.status() != InstanceStatus::Dead)
        .map(|w| (w.id, w.pid))
        .collect();
    let mut stream = control.events(Some(name), false, true).await?;
    let mut steps = Steps::new(name, &before, expect);
    let began = Instant::now();

    tokio::pin!(call);
    let mut stream_open = true;
    let reply = loop {
        tokio::select! {
            reply = &mut call => break reply?,
            next = stream.message(), if stream_open => match next {
                Ok(Some(event)) => steps.event(&event, out)?,
                // The daemon went away or the stream broke: the reply tells.
                Ok(None) | Err(_) => stream_open = false,
            },
        }
    };
    let deadline = tokio::time::Instant::now() + STRAGGLERS;
    while stream_open && !steps.complete() {
        match tokio::time::timeout_at(deadline, stream.message()).await {
            Ok(Ok(Some(event))) => steps.event(&event, out)?,
            Ok(_) | Err(_) => break,
        }
    }
    steps.finish(began.elapsed(), out)?;
    Ok(reply)
}

/// The steps seen so far.
struct Steps {
    program: String,
    expect: Expect,
    /// Workers there before the operation, by id, with their pids.
    old: HashSet<u64>,
    old_count: usize,
    exited: usize,
    /// New workers up, not yet paired with an old one that left.
    fresh: VecDeque<(u64, u32)>,
    started: usize,
    replaced: usize,
    stopped: usize,
}

impl Steps {
    fn new(program: &str, before: &[(u64, u32)], expect: Expect) -> Steps {
        Steps {
            program: program.to_owned(),
            expect,
            old: before.iter().map(|(id, _)| *id).collect(),
            old_count: before.len(),
            exited: 0,
            fresh: VecDeque::new(),
            started: 0,
            replaced: 0,
            stopped: 0,
        }
    }

    fn event(&mut self, event: &Event, out: &mut Output) -> Result<(), Failure> {
        if event.worker == 0 {
            return Ok(());
        }
        match event.kind() {
            EventKind::Online if !self.old.contains(&event.worker) => {
                self.started += 1;
                if matches!(self.expect, Expect::ReplaceAll) {
                    // Printed when the worker it replaces has gone.
                    self.fresh.push_back((event.worker, event.pid));
                } else {
                    self.step(out, "started", event.worker, event.pid, None, "")?;
                }
            }
            EventKind::Exit if self.old.remove(&event.worker) => {
                self.exited += 1;
                match self.fresh.pop_front() {
                    Some((new, pid)) => {
                        self.replaced += 1;
                        self.step(out, "replaced", event.worker, pid, Some(new), "")?;
                    }
                    None => {
                        self.stopped += 1;
                        self.step(out, "stopped", event.worker, event.pid, None, &event.reason)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Every step the operation should take has been seen.
    fn complete(&self) -> bool {
        match self.expect {
            Expect::StopAll => self.exited >= self.old_count,
            Expect::ReplaceAll => self.exited >= self.old_count && self.started >= self.old_count,
            Expect::ScaleTo(count) => {
                let count = count as usize;
                if count >= self.old_count {
                    self.started >= count - self.old_count
                } else {
                    self.exited >= self.old_count - count
                }
            }
        }
    }

    fn step(
        &self,
        out: &mut Output,
        step: &str,
        worker: u64,
        pid: u32,
        by: Option<u64>,
        reason: &str,
    ) -> Result<(), Failure> {
        let program = &self.program;
        if out.json {
            let mut object = json!({
                "step": step,
                "program": program,
                "worker": worker,
                "pid": pid,
            });
            if let Some(by) = by {
                object["by"] = json!(by);
            }
            if !reason.is_empty() {
                object["reason"] = json!(reason);
            }
            out.object(&object)?;
        } else {
            let line = match by {
                Some(by) => format!("  {program}/{worker} replaced by {program}/{by} (pid {pid})"),
                None if reason.is_empty() => format!("  {program}/{worker} {step} (pid {pid})"),
                None => format!("  {program}/{worker} {step}: {reason}"),
            };
            out.line(&line)?;
        }
        Ok(())
    }

    /// New workers never paired with a leaving one (a full restart brings them up
    /// after the old ones left), then the summary.
    fn finish(&mut self, elapsed: Duration, out: &mut Output) -> Result<(), Failure> {
        while let Some((worker, pid)) = self.fresh.pop_front() {
            self.step(out, "started", worker, pid, None, "")?;
        }
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if out.json {
            out.object(&json!({
                "step": "done",
                "program": self.program,
                "replaced": self.replaced,
                "started": self.started - self.replaced,
                "stopped": self.stopped,
                "elapsed_ms": elapsed_ms,
            }))?;
            return Ok(());
        }
        let mut parts = Vec::new();
        for (count, what) in [
            (self.replaced, "replaced"),
            (self.started - self.replaced, "started"),
            (self.stopped, "stopped"),
        ] {
            if count > 0 {
                let plural = if count == 1 { "worker" } else { "workers" };
                parts.push(format!("{count} {plural} {what}"));
            }
        }
        if parts.is_empty() {
            parts.push("nothing to do".to_owned());
        }
        out.line(&format!(
            "{}: {} in {:.1}s",
            self.program,
            parts.join(", "),
            elapsed.as_secs_f64()
        ))?;
        Ok(())
    }
}
