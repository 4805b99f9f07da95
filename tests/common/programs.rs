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

/// A plain worker's command that leaves grandchildren of every kind: the
/// leader (`sleep 3000`) has a child in its process group (`sleep 3001`), one
/// in a new session (`setsid`, `sleep 3002`), a double-forked one in its group
/// (`sleep 3003`) and a double-forked one in a new session (`sleep 3004`).
pub const TREE: &str = "sleep 3001 & setsid sleep 3002 & sh -c 'sleep 3003 &'; \
                        setsid sh -c 'sleep 3004 &'; exec sleep 3000";

/// A child running `echo_worker` with `knobs` in its environment. Its stdout is
/// appended to `stdout`: a shell execs the worker with the redirection, so the
/// supervised pid is the worker's own. Its start grace is long enough that only
/// the worker's `Ready` can make it `ok`, even on a loaded machine.
pub fn echo_spec(stdout: &std::path::Path, knobs: &[(&str, &str)]) -> ProgramSpec {
    let worker = example_bin("echo_worker");
    let mut s = spec(
        ProgramKind::Child,
        &[
            "sh",
            "-c",
            r#"exec "$0" >> "$1""#,
            &worker.to_string_lossy(),
            &stdout.to_string_lossy(),
        ],
    );
    s.env = knobs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s.start_grace_ms = Some(10_000);
    s
}
