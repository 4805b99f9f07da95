//! The lowercase names users see for the proto's enums.
//!
//! The proto spells its enums `PROGRAM_STATUS_OK`, `EVENT_KIND_RESPAWN`, …; the docs,
//! the config file, `infantctl` and its `--json` output say `ok`, `respawn`. These
//! functions are the one mapping between the two, shared by the CLI and the tests.
//!
//! An `UNSPECIFIED` value (or a number this build does not know, which prost decodes
//! as the default) is `unknown`, except for [`kind_name`]: the proto defines an unset
//! kind as `child`.

use crate::proto::{EventKind, InstanceStatus, ProgramKind, ProgramStatus, StopReason};

/// A program's status: `ready`, `starting`, `ok`, `stopping`, `error`, `fatal`.
pub fn status_name(status: ProgramStatus) -> &'static str {
    match status {
        ProgramStatus::Unspecified => "unknown",
        ProgramStatus::Ready => "ready",
        ProgramStatus::Starting => "starting",
        ProgramStatus::Ok => "ok",
        ProgramStatus::Stopping => "stopping",
        ProgramStatus::Error => "error",
        ProgramStatus::Fatal => "fatal",
    }
}

/// An instance's status: `starting`, `ok`, `stopping`, `dead`, `backoff`, `error`.
pub fn instance_status_name(status: InstanceStatus) -> &'static str {
    match status {
        InstanceStatus::Unspecified => "unknown",
        InstanceStatus::Starting => "starting",
        InstanceStatus::Ok => "ok",
        InstanceStatus::Stopping => "stopping",
        InstanceStatus::Dead => "dead",
        InstanceStatus::Backoff => "backoff",
        InstanceStatus::Error => "error",
    }
}

/// A program's kind: `child`, `cluster`, `once`.
pub fn kind_name(kind: ProgramKind) -> &'static str {
    match kind {
        // The proto treats an unset kind as a child.
        ProgramKind::Unspecified | ProgramKind::Child => "child",
        ProgramKind::Cluster => "cluster",
        ProgramKind::Once => "once",
    }
}

/// The kind named `child`, `cluster` or `once`; `None` for anything else.
pub fn kind_from_name(name: &str) -> Option<ProgramKind> {
    match name {
        "child" => Some(ProgramKind::Child),
        "cluster" => Some(ProgramKind::Cluster),
        "once" => Some(ProgramKind::Once),
        _ => None,
    }
}

/// An event's kind: `status`, `online`, `started`, `exit`, `respawn`, `recycle`,
/// `stopping`, `stopped`, `message`, `error`, `scale`, `reload`, `removed`.
pub fn event_kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Unspecified => "unknown",
        EventKind::Status => "status",
        EventKind::Online => "online",
        EventKind::Started => "started",
        EventKind::Exit => "exit",
        EventKind::Respawn => "respawn",
        EventKind::Recycle => "recycle",
        EventKind::Stopping => "stopping",
        EventKind::Stopped => "stopped",
        EventKind::Message => "message",
        EventKind::Error => "error",
        EventKind::Scale => "scale",
        EventKind::Reload => "reload",
        EventKind::Removed => "removed",
    }
}

/// Why a worker is told to stop: `stop`, `restart`, `recycle`, `scale`, `shutdown`.
pub fn stop_reason_name(reason: StopReason) -> &'static str {
    match reason {
        StopReason::Unspecified => "unknown",
        StopReason::Stop => "stop",
        StopReason::Restart => "restart",
        StopReason::Recycle => "recycle",
        StopReason::Scale => "scale",
        StopReason::Shutdown => "shutdown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_designs() {
        assert_eq!(status_name(ProgramStatus::Ok), "ok");
        assert_eq!(status_name(ProgramStatus::Fatal), "fatal");
        assert_eq!(instance_status_name(InstanceStatus::Backoff), "backoff");
        assert_eq!(kind_name(ProgramKind::Unspecified), "child");
        assert_eq!(event_kind_name(EventKind::Respawn), "respawn");
        assert_eq!(stop_reason_name(StopReason::Recycle), "recycle");
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in [ProgramKind::Child, ProgramKind::Cluster, ProgramKind::Once] {
            assert_eq!(kind_from_name(kind_name(kind)), Some(kind));
        }
        assert_eq!(kind_from_name("worker"), None);
    }
}
