//! Node infant's examples, rebuilt in Rust under examples/, run as a user would run
//! them: each prints what the original prints, serves what it serves, and leaves no
//! process behind.

pub mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

/// A running example with its stdout lines collected.
struct Example {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Example {
    fn start(name: &str, env: &[(&str, &str)]) -> Example {
        let mut child = Command::new(example_bin(name))
            .envs(env.iter().copied())
            .env_remove("INFANT_WORKER_ID")
            .env("INFANT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn example");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Example {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout line containing `text`.
    fn expect_line(&mut self, text: &str) {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if self.seen.iter().any(|l| l.contains(text)) {
                return;
            }
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(line);
            }
        }
        panic!("no line with {text:?}; saw {:?}", self.seen);
    }

    fn count(&mut self, text: &str) -> usize {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.iter().filter(|l| l.contains(text)).count()
    }

    /// The example's own workers (its children).
    fn workers(&self) -> Vec<u32> {
        children_of(self.child.id())
    }

    fn interrupt(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            Signal::SIGINT,
        )
        .expect("SIGINT");
    }

    async fn wait_success(&mut self) {
        let status = wait_child(&mut self.child, DEADLINE).await;
        assert!(
            status.success(),
            "exit status {status}; output {:?}",
            self.seen
        );
    }
}

impl Drop for Example {
    /// Ctrl-C, as a user would end it; SIGKILL past the deadline.
    fn drop(&mut self) {
        stop_child(&mut self.child, Signal::SIGINT, DEADLINE);
    }
}

#[tokio::test]
async fn hello_serves_hello_from_two_workers_and_stops_on_ctrl_c() {
    let port = free_port().to_string();
    let mut hello = Example::start("hello", &[("PORT", &port)]);
    hello.expect_line("Cluster started!");
    let workers = hello.workers();
    assert_eq!(workers.len(), 2, "two workers");
    for _ in 0..10 {
        let body = http_get(&format!("127.0.0.1:{port}")).await.expect("GET /");
        assert_eq!(body, "Hello!");
    }
    hello.interrupt();
    hello.expect_line("Cluster stopped!");
    hello.wait_success().await;
    assert_eq!(hello.count("Stopped"), 2, "each worker's stop hook ran");
    wait_gone(&workers, DEADLINE).await;
}

#[tokio::test]
async fn parent_child_starts_and_stops_the_child() {
    let mut example = Example::start("parent_child", &[]);
    example.expect_line("Child started successfully");
    example.expect_line("Child stopped successfully");
    example.wait_success().await;
}

#[tokio::test]
async fn the_plain_cluster_serves_foo_without_the_sdk() {
    let port = free_port().to_string();
    let mut cluster = Example::start("cluster", &[("PORT", &port)]);
    cluster.expect_line("cluster started");
    let workers = cluster.workers();
    assert!(!workers.is_empty());
    assert_eq!(
        http_get(&format!("127.0.0.1:{port}")).await.expect("GET"),
        "foo"
    );
    cluster.interrupt();
    cluster.expect_line("cluster stopped");
    cluster.wait_success().await;
    wait_gone(&workers, DEADLINE).await;
}

#[tokio::test]
async fn the_enhanced_cluster_serves_foo_and_recycles() {
    let port = free_port().to_string();
    let mut cluster = Example::start(
        "enhanced_cluster",
        &[("PORT", &port), ("MAX_CONNECTIONS", "5")],
    );
    cluster.expect_line("cluster started");
    let first = cluster.workers();
    assert_eq!(first.len(), 4);
    for _ in 0..40 {
        assert_eq!(
            http_get(&format!("127.0.0.1:{port}")).await.expect("GET"),
            "foo"
        );
    }
    // 40 requests over 4 workers with max_connections 5: some were recycled.
    wait_until("a worker was recycled", DEADLINE, || {
        let now = cluster.workers();
        let first = first.clone();
        async move { now.iter().any(|p| !first.contains(p)) }
    })
    .await;
    let all: Vec<u32> = first.into_iter().chain(cluster.workers()).collect();
    cluster.interrupt();
    cluster.expect_line("cluster stopped");
    cluster.wait_success().await;
    wait_gone(&all, DEADLINE).await;
}

#[tokio::test]
async fn fork_once_runs_the_child_job_and_reports_its_outcome() {
    let mut ok = Example::start("fork_once", &[]);
    ok.expect_line("Child completed successfully");
    ok.wait_success().await;

    let failed = Command::new(example_bin("fork_once"))
        .env("ONCE_FAIL", "1")
        .env("INFANT_LOG", "warn")
        .env_remove("INFANT_WORKER_ID")
        .output()
        .expect("run fork_once");
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    // The child half is `infant::worker::once`, whose failure is exit status 1;
    // the parent sees that code.
    assert!(
        stderr.contains("Child failed") && stderr.contains("exited with code 1"),
        "{stderr}"
    );

    let slow = Command::new(example_bin("fork_once"))
        .env("ONCE_TIMEOUT_MS", "200")
        .env("ONCE_WORK_MS", "60000")
        .env("INFANT_LOG", "warn")
        .env_remove("INFANT_WORKER_ID")
        .output()
        .expect("run fork_once");
    assert!(!slow.status.success());
    let stderr = String::from_utf8_lossy(&slow.stderr);
    assert!(stderr.contains("timed out after 200ms"), "{stderr}");
}

#[test]
fn lifecycle_starts_and_stops_its_steps_in_order() {
    let out = Command::new(example_bin("lifecycle"))
        .output()
        .expect("run lifecycle");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "Starting step 1",
            "Startup complete",
            "Stopping step 1",
            "Shutdown complete"
        ]
    );
}
