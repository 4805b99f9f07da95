//! An SDK HTTP worker for enhanced clusters, used by the tests and benchmarks.
//! It answers `pid <pid>` on the socket the daemon hands it, counts connections
//! and requests, and drains in-flight requests in its stop hook.
//!
//! Knobs (environment):
//! - `HTTP_ADDR`: the address it binds when not given a socket by infant
//!   (standalone; default `127.0.0.1:0`), e.g. for the cluster bench's baseline;
//! - `HTTP_DELAY_MS`: every request takes this long (graceful-drain tests);
//! - `HTTP_WORK_US`: every request first burns this many microseconds of CPU,
//!   spinning on the worker thread's CPU clock (default 0: no work), for the
//!   cluster bench's CPU-bound scaling;
//! - `HTTP_LEAK_KB`: every request allocates and keeps this much memory
//!   (memory-recycling tests);
//! - `HTTP_FAIL_IF_EXISTS=<path>`: the start hook fails while that file exists
//!   (a bad deploy during a rolling restart);
//! - `HTTP_STOP_MARKER=<path>`: the stop hook appends `stopped <pid> <reason>`;
//! - the message `hang` freezes the whole process (SIGSTOP to itself), so it
//!   stops heartbeating while staying alive (hung-worker tests). Blocking the
//!   runtime would not do: the SDK heartbeats from a thread of its own.

#[path = "support/http.rs"]
mod http;

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infant::worker::{CountingListener, Handle, Worker};
use tokio_util::sync::CancellationToken;

fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Spins until this thread has spent `work` on the CPU: a CPU-bound request.
///
/// It spins on the thread's CPU clock, not the wall clock: a worker preempted in
/// the middle of a request (more runnable threads than cores) still does all of
/// its work, where a wall-clock spin would do less and flatter the throughput
/// of an oversubscribed cluster.
fn burn_cpu(work: Duration) {
    let Some(began) = thread_cpu_time() else {
        return;
    };
    let mut spins = 0u64;
    while thread_cpu_time().is_some_and(|now| now.saturating_sub(began) < work) {
        // Opaque to the optimiser: the loop cannot be folded away.
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`, monotonic).
fn thread_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    (rc == 0).then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let stop = CancellationToken::new();
    let server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>> = Arc::default();
    let (stop_in_start, server_in_start) = (stop.clone(), Arc::clone(&server));
    let result = Worker::new("http-worker")
        .on_message(|payload, _handle| async move {
            if payload == b"hang" {
                // Freeze the whole process: heartbeats come from a thread of the
                // SDK's own, which a blocked runtime would not stop.
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
            }
        })
        .run(
            move |handle: Handle| async move {
                if let Ok(path) = std::env::var("HTTP_FAIL_IF_EXISTS") {
                    if std::path::Path::new(&path).exists() {
                        return Err(format!("refusing to start: {path} exists"));
                    }
                }
                let fallback = std::env::var("HTTP_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
                let listener = infant::worker::tcp_listener(&fallback)
                    .await
                    .map_err(|e| format!("no listener (standalone: {fallback}): {e}"))?;
                let listener = CountingListener::new(listener, handle.clone());
                let delay = Duration::from_millis(env_u64("HTTP_DELAY_MS"));
                let work = Duration::from_micros(env_u64("HTTP_WORK_US"));
                let leak = env_u64("HTTP_LEAK_KB") as usize * 1024;
                let kept: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
                let task = tokio::spawn(http::serve(
                    listener,
                    handle,
                    stop_in_start,
                    Duration::from_secs(30),
                    move |_request| {
                        let kept = Arc::clone(&kept);
                        async move {
                            if !work.is_zero() {
                                // On the runtime's only thread, as CPU-bound
                                // code would run: one request at a time.
                                burn_cpu(work);
                            }
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            if leak > 0 {
                                if let Ok(mut kept) = kept.lock() {
                                    kept.push(vec![1u8; leak]);
                                }
                            }
                            http::text(format!("pid {}", std::process::id()))
                        }
                    },
                ));
                if let Ok(mut slot) = server_in_start.lock() {
                    *slot = Some(task);
                }
                Ok(())
            },
            move |handle: Handle| async move {
                stop.cancel();
                let task = server.lock().ok().and_then(|mut slot| slot.take());
                if let Some(task) = task {
                    let _ = task.await;
                }
                if let Ok(path) = std::env::var("HTTP_STOP_MARKER") {
                    let reason = format!("{:?}", handle.stop_reason());
                    if let Ok(mut file) = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                    {
                        let _ = writeln!(file, "stopped {} {reason}", std::process::id());
                    }
                }
                Ok::<(), String>(())
            },
        )
        .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http_worker: {e}");
            ExitCode::FAILURE
        }
    }
}
