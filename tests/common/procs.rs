//! Process checks read from `/proc`: is a pid still there (a zombie counts),
//! its state, its children, its process group, and a wait for none to survive.

use std::path::Path;
use std::time::Duration;

use super::wait::wait_until;

/// True while `/proc/PID` exists — including as a zombie (not yet reaped).
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The process state letter from `/proc/PID/stat` (`Z` for a zombie).
pub fn state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// Waits until none of `pids` exists any more, not even as a zombie: no
/// survivors.
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
    processes_where(|fields| field(fields, 2) == Some(pgid))
}

/// The pids whose parent is `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    processes_where(|fields| field(fields, 1) == Some(parent))
}

/// Every pid in `/proc` whose stat fields (after the command name) match.
fn processes_where(matches: impl Fn(&[String]) -> bool) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|fields| matches(&fields)))
        .collect()
}

/// The fields of `/proc/PID/stat` after the command name, which may itself hold
/// spaces and parentheses: state, ppid, pgrp, …
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Field `index` (0 is the state) as a number.
fn field(fields: &[String], index: usize) -> Option<u32> {
    fields.get(index)?.parse().ok()
}
