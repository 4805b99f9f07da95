//! `List` and `EachWorker`: snapshots of programs and instances; and which
//! programs are up, in the order to stop them.

use super::state::{ProgramInfo, Run, WorkerInfo};
use super::Engine;
use crate::daemon::error::Result;

impl Engine {
    /// One program, or every program in definition order.
    pub(super) fn list(&self, name: Option<&str>) -> Result<Vec<ProgramInfo>> {
        let mut infos = match name.filter(|n| !n.is_empty()) {
            Some(name) => vec![self.info(self.find(name)?)],
            None => self.programs.iter().map(|p| p.info()).collect(),
        };
        for info in &mut infos {
            info.log_dropped_bytes = self.config.logs.dropped(&info.name);
        }
        Ok(infos)
    }

    /// The programs not idle (running, starting or stopping), last started first.
    pub(super) fn running_last_first(&self) -> Vec<String> {
        self.start_order
            .iter()
            .rev()
            .filter(|name| {
                self.find(name)
                    .is_ok_and(|i| !matches!(self.programs[i].run, Run::Idle))
            })
            .cloned()
            .collect()
    }

    /// One program's instances, or every program's.
    pub(super) fn workers(&self, name: Option<&str>) -> Result<Vec<WorkerInfo>> {
        let programs = match name.filter(|n| !n.is_empty()) {
            Some(name) => vec![&self.programs[self.find(name)?]],
            None => self.programs.iter().collect(),
        };
        let mut out = Vec::new();
        for program in programs {
            let dropped = self.config.logs.dropped_by_worker(&program.spec.name);
            for instance in &program.instances {
                let usage = instance
                    .pid
                    .and_then(|pid| self.os.usage(pid))
                    .unwrap_or_default();
                out.push(WorkerInfo {
                    program: program.spec.name.clone(),
                    id: instance.id,
                    pid: instance.pid.map_or(0, |p| p.as_raw().unsigned_abs()),
                    status: instance.status,
                    restarts: instance.restarts,
                    connections: instance.connections,
                    requests: instance.requests,
                    rss_bytes: usage.rss_bytes,
                    uptime: instance.spawned_at.elapsed(),
                    attached: instance.channel.is_some(),
                    cpu: usage.cpu,
                    notify_status: instance.notify_status().to_owned(),
                    log_dropped_bytes: dropped.get(&instance.id).copied().unwrap_or(0),
                });
            }
        }
        Ok(out)
    }
}
