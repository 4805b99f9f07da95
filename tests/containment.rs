//! Nothing an instance starts outlives it: not when the instance stops, not when
//! `infantd` itself is SIGKILLed — whether the descendant stayed in the
//! instance's process group, started a session of its own (`setsid`) or was
//! double-forked. Each test runs twice: with cgroups (where the machine offers
//! a writable cgroup v2 hierarchy) and without (`INFANT_CGROUP=off`).
//!
//! The processes are found through `/proc`: every descendant of a daemon
//! carries that daemon's `INFANT_SOCKET` in its environment (none of these
//! commands clears it), which no other daemon's processes have.
//!
//! Like `daemon_loss`, this test process makes itself a child subreaper, so
//! that what a killed daemon orphans is reparented to it and reaped here rather
//! than left a zombie under a PID 1 that does not reap.

pub mod common;

use std::time::{Duration, Instant};

use common::*;
use infant::proto::{self, EventKind, ProgramKind};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The daemon's environment with cgroups as the machine allows.
const CGROUPS: &[(&str, &str)] = &[];
/// The daemon's environment with cgroups turned off: the fallback.
const NO_CGROUPS: &[(&str, &str)] = &[("INFANT_CGROUP", "off")];

/// Reaps `pid` if it is a zombie child of ours; true once it no longer exists.
/// Only ever waits for that pid: `waitpid(-1)` would steal the exit statuses of
/// the daemons this process owns.
fn reaped(pid: u32) -> bool {
    match waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => false,
        Ok(_) | Err(Errno::ECHILD) => !exists(pid),
        Err(e) => panic!("waitpid({pid}): {e}"),
    }
}

/// The tests take turns: the daemon-loss ones count *all* the children of this
/// process, which another test's daemon would otherwise look like.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts a two-worker cluster of [`TREE`]s listening on a TCP port, SIGKILLs
/// the daemon, and checks that every descendant is gone within 2 s and that the
/// port is free again.
async fn kill_9_leaves_nothing(env: &[(&str, &str)]) {
    let _turn = ONE_AT_A_TIME.lock().await;
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    let mut daemon = Daemon::start_env(&[], env).await;
    let mut client = daemon.client().await;
    let mut tree = spec(ProgramKind::Cluster, &["sh", "-c", TREE]);
    tree.count = Some(2);
    tree.listen = vec!["tcp://127.0.0.1:0".into()];
    start_program(&mut client, "tree", tree).await;
    let address = listen_addr(&mut client, "tree").await;
    let socket = daemon.socket.clone();
    wait_until("both trees fully grown", DEADLINE, || {
        let grown = (3000..=3004).all(|n| running(&socket, &format!("sleep {n}")) == 2);
        async move { grown }
    })
    .await;
    let tree: Vec<u32> = descendants(&daemon.socket)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(tree.len(), 10, "{:?}", descendants(&daemon.socket));
    drop(client);

    daemon.signal(Signal::SIGKILL);
    let killed = Instant::now();
    daemon.wait_exit(DEADLINE).await;
    // Everything the daemon left, the guardian included, is now our child.
    wait_until(
        "every descendant gone within 2 s of kill -9",
        Duration::from_secs(2),
        || {
            let left: Vec<u32> = tree.iter().copied().filter(|&p| !reaped(p)).collect();
            async move { left.is_empty() }
        },
    )
    .await;
    println!(
        "kill -9: every descendant gone {:?} after",
        killed.elapsed()
    );
    wait_until("the guardian is gone too", DEADLINE, || {
        let left: Vec<u32> = children_of(std::process::id())
            .into_iter()
            .filter(|&p| !reaped(p))
            .collect();
        async move { left.is_empty() }
    })
    .await;
    let port = address.trim_start_matches("tcp://");
    std::net::TcpListener::bind(port)
        .unwrap_or_else(|e| panic!("{port} is free once the daemon is gone: {e}"));
}

#[tokio::test]
async fn a_kill_9_of_infantd_leaves_no_descendant_of_a_plain_worker() {
    kill_9_leaves_nothing(CGROUPS).await;
}

#[tokio::test]
async fn a_kill_9_of_infantd_leaves_no_descendant_without_cgroups() {
    kill_9_leaves_nothing(NO_CGROUPS).await;
}

/// Starts and stops `sh -c 'setsid sleep 4001 & exec sleep 4002'` three times:
/// each stop kills the `setsid` grandchild before it returns, and says so in an
/// `error` event.
async fn a_stop_kills_what_the_instance_left(env: &[(&str, &str)]) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let daemon = Daemon::start_env(&[], env).await;
    let events = Recorder::new(&daemon).await;
    let mut client = daemon.client().await;
    let leaky = spec(
        ProgramKind::Child,
        &["sh", "-c", "setsid sleep 4001 & exec sleep 4002"],
    );
    for cycle in 1..=3 {
        let spec = (cycle == 1).then(|| leaky.clone());
        client
            .start(proto::StartRequest {
                name: "leaky".into(),
                spec,
                wait: false,
            })
            .await
            .expect("Start leaky");
        let socket = daemon.socket.clone();
        wait_until(
            "the grandchild runs in a session of its own",
            DEADLINE,
            || {
                let up = running(&socket, "sleep 4001") == 1 && running(&socket, "sleep 4002") == 1;
                async move { up }
            },
        )
        .await;
        client
            .stop(proto::StopRequest {
                name: "leaky".into(),
                timeout_ms: None,
            })
            .await
            .expect("Stop leaky");
        // Killed before the stop returned; gone (reaped by the daemon) soon after.
        wait_until(
            &format!("cycle {cycle}: no `sleep 4001` left after the stop"),
            Duration::from_secs(2),
            || {
                let left = running(&socket, "sleep 4001");
                async move { left == 0 }
            },
        )
        .await;
    }
    let reported = events
        .wait_for_n("an error event per cycle counting the leftover", 3, |e| {
            is(e, EventKind::Error) && e.reason.starts_with("left 1 process behind, killed")
        })
        .await;
    assert!(reported.iter().all(|e| e.program == "leaky" && e.pid != 0));
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_stop_kills_a_setsid_grandchild_every_cycle() {
    a_stop_kills_what_the_instance_left(CGROUPS).await;
}

#[tokio::test]
async fn a_stop_kills_a_setsid_grandchild_every_cycle_without_cgroups() {
    a_stop_kills_what_the_instance_left(NO_CGROUPS).await;
}

/// Starts [`TREE`] and stops it at once, 300 times, so that stops land at every
/// moment of its growth, children forking and exiting while the daemon looks
/// for them: nothing may be left once the stops have returned.
async fn a_stop_at_any_moment_leaves_nothing(env: &[(&str, &str)]) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let daemon = Daemon::start_env(&[], env).await;
    let control = daemon.control().await;
    let mut tree = spec(ProgramKind::Child, &["sh", "-c", TREE]);
    tree.start_grace_ms = Some(0);
    for _ in 0..300 {
        control
            .start("tree", Some(tree.clone()), false)
            .await
            .expect("Start");
        control.stop("tree", None).await.expect("Stop");
    }
    let socket = daemon.socket.clone();
    wait_until(
        "nothing left behind by 300 trees stopped while they grew",
        DEADLINE,
        || {
            let left = descendants(&socket);
            async move { left.is_empty() }
        },
    )
    .await;
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_stop_at_any_moment_of_a_growing_tree_leaves_nothing() {
    a_stop_at_any_moment_leaves_nothing(CGROUPS).await;
}

#[tokio::test]
async fn a_stop_at_any_moment_of_a_growing_tree_leaves_nothing_without_cgroups() {
    a_stop_at_any_moment_leaves_nothing(NO_CGROUPS).await;
}

/// A leftover whose environment reads empty (as that of a process halfway
/// through an exec does) for 300 ms: once in a session of its own, it makes
/// the page where its environment starts unreadable, then readable again once
/// the daemon is its parent. Its second argument, a long one, keeps that page
/// clear of anything the program still uses. Its pid goes to the file named by
/// its first argument once hidden.
const HIDER: &str = r#"
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
parent = os.getppid()
os.setsid()
with open("/proc/self/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
arg_start, env_start = int(fields[45]), int(fields[47])
page = os.sysconf("SC_PAGE_SIZE")
first = env_start - env_start % page
if first < arg_start or libc.mprotect(first, page, 0) != 0:
    open(sys.argv[1] + ".refused", "w").write(os.strerror(ctypes.get_errno()))
    sys.exit(0)
open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while os.getppid() == parent:
    time.sleep(0.01)
time.sleep(0.3)
libc.mprotect(first, page, 3)
time.sleep(3005)
"#;

/// Without cgroups, a leftover is known by the token in its environment. One
/// that cannot be read when its instance exits (halfway through an exec on a
/// loaded machine, or hiding it for a while) is looked at again until it can:
/// it dies, and is reported, even though no orphan is reaped after it.
#[tokio::test]
async fn a_leftover_whose_environment_cannot_be_read_yet_is_looked_at_again() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped: python3 is not on this machine");
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let daemon = Daemon::start_env(&[], NO_CGROUPS).await;
    let events = Recorder::new(&daemon).await;
    let control = daemon.control().await;
    let dir = daemon.dir.path().to_owned();
    std::fs::write(dir.join("hider.py"), HIDER).expect("write hider.py");
    let hidden = dir.join("hidden");
    let script = format!(
        "python3 {} {} {} & exec sleep 3000",
        dir.join("hider.py").display(),
        hidden.display(),
        "x".repeat(8192)
    );
    let hider_spec = spec(ProgramKind::Child, &["sh", "-c", &script]);
    control
        .start("hider", Some(hider_spec), false)
        .await
        .expect("Start hider");
    let refused = dir.join("hidden.refused");
    let marker = hidden.clone();
    wait_until("the leftover hides its environment", DEADLINE, || {
        let done = marker.exists() || refused.exists();
        async move { done }
    })
    .await;
    if let Ok(why) = std::fs::read_to_string(&refused) {
        println!("skipped: this machine does not let a process hide its environment ({why})");
        control.stop("hider", None).await.expect("Stop hider");
        assert!(daemon.stop().await.success());
        return;
    }
    let pid: u32 = std::fs::read_to_string(&hidden)
        .expect("read hidden")
        .trim()
        .parse()
        .expect("a pid in hidden");
    control.stop("hider", None).await.expect("Stop hider");
    wait_until(
        "the leftover is killed once its environment shows",
        DEADLINE,
        || {
            let gone = state(pid).is_none_or(|s| s == 'Z');
            async move { gone }
        },
    )
    .await;
    events
        .wait_for("the leftover reported", |e| {
            is(e, EventKind::Error)
                && e.program == "hider"
                && e.reason == format!("left 1 process behind, killed: {pid}")
        })
        .await;
    assert!(daemon.stop().await.success());
}
