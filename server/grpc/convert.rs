//! Translations between `infant.v1` messages and engine types, with the checks that
//! only exist on the wire (negative durations, unknown enum values).

use std::time::Duration;

use crate::daemon::engine::events::{Event, EventKind};
use crate::daemon::engine::plan::PlanEntry;
use crate::daemon::engine::state::{InstanceStatus, ProgramInfo, ProgramStatus, WorkerInfo};
use crate::daemon::error::Error;
use crate::daemon::process::reaper::ExitStatus;
use crate::daemon::spec::{Kind, LimitValue, ProgramDef, Restart, MAX_DURATION};
use crate::proto;

/// A `*_ms` field: absent stays absent, negative is an error naming the field.
fn millis(
    program: &str,
    field: &'static str,
    value: Option<i64>,
) -> Result<Option<Duration>, Error> {
    match value {
        None => Ok(None),
        Some(ms) if ms < 0 => Err(Error::InvalidField {
            program: program.to_string(),
            field,
            reason: format!("{ms} ms is negative"),
        }),
        Some(ms) => Ok(Some(Duration::from_millis(ms.unsigned_abs()))),
    }
}

/// A request's optional timeout field.
pub fn timeout(field: &'static str, value: Option<i64>) -> Result<Option<Duration>, Error> {
    match value {
        Some(ms) if ms < 0 => Err(Error::InvalidArgument {
            field,
            reason: format!("{ms} ms is negative"),
        }),
        Some(ms) if Duration::from_millis(ms.unsigned_abs()) > MAX_DURATION => {
            Err(Error::InvalidArgument {
                field,
                reason: format!("{ms} ms is longer than 7 days"),
            })
        }
        other => Ok(other.map(|ms| Duration::from_millis(ms.unsigned_abs()))),
    }
}

/// A wire `ProgramSpec` as the engine's raw definition; `validate` does the rest.
pub fn program_def(name: &str, spec: proto::ProgramSpec) -> Result<ProgramDef, Error> {
    let kind = match proto::ProgramKind::try_from(spec.kind) {
        Ok(proto::ProgramKind::Unspecified | proto::ProgramKind::Child) => Kind::Child,
        Ok(proto::ProgramKind::Cluster) => Kind::Cluster,
        Ok(proto::ProgramKind::Once) => Kind::Once,
        Err(_) => {
            return Err(Error::InvalidField {
                program: name.to_string(),
                field: "kind",
                reason: format!("{} is not a program kind", spec.kind),
            })
        }
    };
    Ok(ProgramDef {
        kind: Some(kind),
        command: Some(spec.command),
        cwd: (!spec.cwd.is_empty()).then(|| spec.cwd.into()),
        env: Some(spec.env.into_iter().collect()),
        title: (!spec.title.is_empty()).then_some(spec.title),
        count: spec.count,
        enhanced: Some(spec.enhanced),
        listen: Some(spec.listen),
        respawn: spec.respawn,
        respawn_delay: millis(name, "respawn_delay", spec.respawn_delay_ms)?,
        stop_timeout: millis(name, "stop_timeout", spec.stop_timeout_ms)?,
        recycle_timeout: millis(name, "recycle_timeout", spec.recycle_timeout_ms)?,
        max_connections: spec.max_connections,
        max_memory_gain: spec.max_memory_gain,
        heartbeat: millis(name, "heartbeat", spec.heartbeat_ms)?,
        timeout: millis(name, "timeout", spec.timeout_ms)?,
        after: Some(spec.after),
        start_grace: millis(name, "start_grace", spec.start_grace_ms)?,
        max_retries: spec.max_retries,
        max_restarts: spec.max_restarts,
        max_recycling: spec.max_recycling,
        restart_window: millis(name, "restart_window", spec.restart_window_ms)?,
        ready: ready(name, &spec.ready)?,
        user: (!spec.user.is_empty()).then_some(spec.user),
        group: (!spec.group.is_empty()).then_some(spec.group),
        umask: (!spec.umask.is_empty()).then_some(spec.umask),
        stop_signal: (!spec.stop_signal.is_empty()).then_some(spec.stop_signal),
        restart: restart(name, &spec.restart)?,
        success_exit_codes: (!spec.success_exit_codes.is_empty())
            .then_some(spec.success_exit_codes),
        env_file: (!spec.env_file.is_empty()).then(|| spec.env_file.into()),
        rlimits: (!spec.rlimits.is_empty()).then(|| {
            spec.rlimits
                .into_iter()
                .map(|(key, value)| (key, LimitValue::Text(value)))
                .collect()
        }),
        nice: spec.nice,
        max_memory: size(name, "max_memory", &spec.max_memory)?,
        start_timeout: millis(name, "start_timeout", spec.start_timeout_ms)?,
        log: log_mode(name, &spec.log)?,
        log_max_size: spec.log_max_size_bytes,
        log_keep: spec.log_keep,
    })
}

/// `log`: empty is the default.
fn log_mode(program: &str, value: &str) -> Result<Option<crate::daemon::spec::LogMode>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    crate::daemon::spec::LogMode::parse(value)
        .map(Some)
        .ok_or_else(|| Error::InvalidField {
            program: program.to_string(),
            field: "log",
            reason: format!("{value:?} is not one of file, inherit, off"),
        })
}

/// A line of a program's output.
pub fn log_line(program: &str, line: crate::daemon::logs::LogLine) -> proto::LogLine {
    let time_ms = line
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    proto::LogLine {
        time_ms,
        program: program.to_owned(),
        worker: line.worker,
        stream: log_stream(line.stream) as i32,
        line: line.line,
        missed: line.missed,
    }
}

fn log_stream(stream: crate::daemon::logs::Stream) -> proto::LogStream {
    match stream {
        crate::daemon::logs::Stream::Out => proto::LogStream::Out,
        crate::daemon::logs::Stream::Err => proto::LogStream::Err,
    }
}

/// `ready`: empty is the default.
fn ready(program: &str, value: &str) -> Result<Option<crate::daemon::spec::Ready>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    crate::daemon::spec::Ready::parse(value)
        .map(Some)
        .ok_or_else(|| Error::InvalidField {
            program: program.to_string(),
            field: "ready",
            reason: format!("{value:?} is not one of auto, spawn, grace, sdk, notify"),
        })
}

/// A size field: empty is unset.
fn size(program: &str, field: &'static str, value: &str) -> Result<Option<u64>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    crate::size::parse(value)
        .map(Some)
        .map_err(|reason| Error::InvalidField {
            program: program.to_string(),
            field,
            reason,
        })
}

/// `restart`: empty is the default.
fn restart(program: &str, value: &str) -> Result<Option<Restart>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    Restart::parse(value)
        .map(Some)
        .ok_or_else(|| Error::InvalidField {
            program: program.to_string(),
            field: "restart",
            reason: format!("{value:?} is not one of always, on-failure, never"),
        })
}

fn kind(kind: Kind) -> proto::ProgramKind {
    match kind {
        Kind::Child => proto::ProgramKind::Child,
        Kind::Cluster => proto::ProgramKind::Cluster,
        Kind::Once => proto::ProgramKind::Once,
    }
}

fn program_status(status: ProgramStatus) -> proto::ProgramStatus {
    match status {
        ProgramStatus::Ready => proto::ProgramStatus::Ready,
        ProgramStatus::Starting => proto::ProgramStatus::Starting,
        ProgramStatus::Ok => proto::ProgramStatus::Ok,
        ProgramStatus::Stopping => proto::ProgramStatus::Stopping,
        ProgramStatus::Error => proto::ProgramStatus::Error,
        ProgramStatus::Fatal => proto::ProgramStatus::Fatal,
    }
}

fn instance_status(status: InstanceStatus) -> proto::InstanceStatus {
    match status {
        InstanceStatus::Starting => proto::InstanceStatus::Starting,
        InstanceStatus::Ok => proto::InstanceStatus::Ok,
        InstanceStatus::Stopping => proto::InstanceStatus::Stopping,
        InstanceStatus::Dead => proto::InstanceStatus::Dead,
        InstanceStatus::Backoff => proto::InstanceStatus::Backoff,
        InstanceStatus::Error => proto::InstanceStatus::Error,
    }
}

/// A program snapshot on the wire.
pub fn program_info(info: ProgramInfo) -> proto::ProgramInfo {
    proto::ProgramInfo {
        name: info.name,
        kind: kind(info.kind).into(),
        status: program_status(info.status).into(),
        count: info.count,
        running: info.running,
        restarts: info.restarts,
        error: info.error,
        listen: info.listen,
        command: info.command,
        enhanced: info.enhanced,
        exit_code: match info.outcome {
            Some(ExitStatus::Code(code)) => Some(code),
            _ => None,
        },
        exit_signal: match info.outcome {
            Some(ExitStatus::Signal(sig)) => Some(sig),
            _ => None,
        },
        log_dropped_bytes: info.log_dropped_bytes,
    }
}

/// A worker snapshot on the wire.
pub fn worker_info(info: WorkerInfo) -> proto::WorkerInfo {
    proto::WorkerInfo {
        program: info.program,
        id: info.id,
        pid: info.pid,
        status: instance_status(info.status).into(),
        restarts: info.restarts,
        connections: info.connections,
        requests: info.requests,
        rss_bytes: info.rss_bytes,
        uptime_ms: u64::try_from(info.uptime.as_millis()).unwrap_or(u64::MAX),
        attached: info.attached,
        cpu_ms: u64::try_from(info.cpu.as_millis()).unwrap_or(u64::MAX),
        notify_status: info.notify_status,
        log_dropped_bytes: info.log_dropped_bytes,
    }
}

/// An event on the wire; `missed` is what this watcher lost just before it.
pub fn event(event: &Event, missed: u64) -> proto::Event {
    let kind = match event.kind {
        EventKind::Status => proto::EventKind::Status,
        EventKind::Online => proto::EventKind::Online,
        EventKind::Started => proto::EventKind::Started,
        EventKind::Exit => proto::EventKind::Exit,
        EventKind::Respawn => proto::EventKind::Respawn,
        EventKind::Recycle => proto::EventKind::Recycle,
        EventKind::Stopping => proto::EventKind::Stopping,
        EventKind::Stopped => proto::EventKind::Stopped,
        EventKind::Message => proto::EventKind::Message,
        EventKind::Error => proto::EventKind::Error,
        EventKind::Scale => proto::EventKind::Scale,
        EventKind::Reload => proto::EventKind::Reload,
        EventKind::Removed => proto::EventKind::Removed,
    };
    let (code, signal) = match event.exit {
        Some(ExitStatus::Code(code)) => (Some(code), None),
        Some(ExitStatus::Signal(sig)) => (None, Some(sig)),
        None => (None, None),
    };
    proto::Event {
        seq: event.seq,
        time_ms: event.time_ms,
        program: event.program.clone(),
        worker: event.worker,
        pid: event.pid,
        kind: kind.into(),
        program_status: event.program_status.map_or(0, |s| program_status(s).into()),
        instance_status: event
            .instance_status
            .map_or(0, |s| instance_status(s).into()),
        code,
        signal,
        reason: event.reason.clone(),
        payload: event.payload.clone(),
        connections: event.connections,
        count: event.count,
        delay_ms: event.delay_ms,
        missed,
        plan: event.plan.iter().map(plan_entry).collect(),
    }
}

/// One program's line of a reload plan on the wire.
pub fn plan_entry(entry: &PlanEntry) -> proto::PlanEntry {
    proto::PlanEntry {
        program: entry.program.clone(),
        change: entry.change.as_str().to_owned(),
        fields: entry.fields.iter().map(|f| (*f).to_owned()).collect(),
        action: entry.action.as_str().to_owned(),
        error: entry.error.clone().unwrap_or_default(),
    }
}
