//! Programs for tests to start: spec builders and the shared application
//! config.

use infant::proto::{ProgramKind, ProgramSpec};

use super::paths::example_bin;

/// A `ProgramSpec` for `command` with everything else default.
pub fn spec(kind: ProgramKind, command: &[&str]) -> ProgramSpec {
    ProgramSpec {
        kind: kind as i32,
        command: command.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A cluster of `count` `http_worker`s (SDK HTTP workers) on a daemon-owned
/// socket at a free port; plain, not enhanced.
pub fn http_cluster(count: u32) -> ProgramSpec {
    let worker = example_bin("http_worker");
    let mut s = spec(ProgramKind::Cluster, &[&worker.to_string_lossy()]);
    s.count = Some(count);
    s.listen = vec!["tcp://127.0.0.1:0".into()];
    s
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
