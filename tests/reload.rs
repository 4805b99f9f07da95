//! Config reload: `infantctl reload`, the `Reload` RPC and SIGHUP reread the
//! `--config` file and apply exactly its plan: added programs start, removed
//! ones stop and are forgotten, changed ones restart, roll or scale as their
//! fields need, unchanged ones keep their processes. A bad file changes
//! nothing; programs started over the API are left alone; `remove` forgets one
//! program; a service manager hears `RELOADING=1` … `READY=1`.

pub mod common;

use std::process::Command;

use common::*;
use infant::control::Control;
use infant::proto::{EventKind, PlanEntry, ProgramKind, ProgramStatus, ReloadReply};
use nix::sys::signal::Signal;
use tonic::Code;

const BEFORE: &str = r#"
[program.keep]
command = ["sleep", "1000"]
start_grace = "50ms"

[program.child]
command = ["sleep", "1000"]
start_grace = "50ms"

[program.live]
command = ["sleep", "1000"]
start_grace = "50ms"
stop_timeout = "5s"

[program.gone]
command = ["sleep", "1000"]
start_grace = "50ms"

[program.needs_gone]
command = ["sleep", "1000"]
start_grace = "50ms"
after = ["gone"]

[program.scaled]
kind = "cluster"
count = 2
command = ["sleep", "1000"]
start_grace = "50ms"
"#;

/// `BEFORE` with `child`'s command changed, `live`'s stop window changed,
/// `gone` and `needs_gone` removed, `scaled` grown, and `fresh` added after
/// `keep`.
const AFTER: &str = r#"
[program.keep]
command = ["sleep", "1000"]
start_grace = "50ms"

[program.child]
command = ["sleep", "1001"]
start_grace = "50ms"

[program.live]
command = ["sleep", "1000"]
start_grace = "50ms"
stop_timeout = "2s"

[program.scaled]
kind = "cluster"
count = 3
command = ["sleep", "1000"]
start_grace = "50ms"

[program.fresh]
command = ["sleep", "1002"]
start_grace = "50ms"
after = ["keep"]
"#;

/// Replaces the daemon's config file.
fn write_config(daemon: &Daemon, text: &str) {
    std::fs::write(daemon.dir.path().join("app.toml"), text).expect("write app.toml");
}

/// The plan entry for `program`.
fn entry<'a>(reply: &'a ReloadReply, program: &str) -> &'a PlanEntry {
    reply
        .plan
        .iter()
        .find(|e| e.program == program)
        .unwrap_or_else(|| panic!("no plan entry for {program}: {:?}", reply.plan))
}

/// (change, fields, action) of `program`'s entry.
fn line(reply: &ReloadReply, program: &str) -> (String, Vec<String>, String) {
    let e = entry(reply, program);
    (e.change.clone(), e.fields.clone(), e.action.clone())
}

fn expect(change: &str, fields: &[&str], action: &str) -> (String, Vec<String>, String) {
    (
        change.to_owned(),
        fields.iter().map(|f| f.to_string()).collect(),
        action.to_owned(),
    )
}

/// Every program name `List` shows.
async fn names(control: &Control) -> Vec<String> {
    let mut names: Vec<String> = control
        .list(None)
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    names.sort();
    names
}

/// Waits until every program of `names` is `ok`.
async fn wait_ok(control: &Control, names: &[&str]) {
    for name in names {
        control
            .wait_program(name, &format!("{name} ok"), DEADLINE, |p| {
                p.status == ProgramStatus::Ok as i32
            })
            .await;
    }
}

#[tokio::test]
async fn dry_run_changes_nothing_and_reload_applies_exactly_the_plan() {
    let daemon = Daemon::with_config(BEFORE).await;
    let control = daemon.control().await;
    wait_ok(
        &control,
        &["keep", "child", "live", "gone", "needs_gone", "scaled"],
    )
    .await;
    let pids_of = |name: &'static str| {
        let control = control.clone();
        async move { control.ok_pids(name).await }
    };
    let keep = pids_of("keep").await;
    let child = pids_of("child").await;
    let live = pids_of("live").await;
    let gone = [pids_of("gone").await, pids_of("needs_gone").await].concat();
    let scaled = pids_of("scaled").await;
    let before_names = names(&control).await;
    write_config(&daemon, AFTER);

    // The dry run prints the plan and changes nothing.
    let (status, stdout, stderr) = daemon.ctl(&["reload", "--dry-run"]);
    assert!(status.success(), "reload --dry-run: {stderr}");
    for expected in [
        "child",
        "changed",
        "command",
        "restart",
        "live",
        "stop_timeout",
        "update",
        "gone",
        "removed",
        "remove",
        "scaled",
        "count",
        "scale",
        "fresh",
        "added",
        "start",
        "keep",
        "unchanged",
    ] {
        assert!(stdout.contains(expected), "{expected} in:\n{stdout}");
    }
    assert!(stdout.contains("nothing was changed"), "{stdout}");
    let dry = control.reload(true).await.expect("Reload dry_run");
    assert!(!dry.applied);
    assert_eq!(
        names(&control).await,
        before_names,
        "a dry run adds or removes nothing"
    );
    for (name, pids) in [("keep", &keep), ("child", &child), ("scaled", &scaled)] {
        assert_eq!(
            &pids_of(name).await,
            pids,
            "{name} untouched by the dry run"
        );
    }

    // The reload applies exactly that plan.
    let events = Recorder::new(&daemon).await;
    let reply = control.reload(false).await.expect("Reload");
    assert!(reply.applied);
    assert_eq!(reply.plan, dry.plan, "the plan applied is the plan shown");
    assert_eq!(line(&reply, "keep"), expect("unchanged", &[], "none"));
    assert_eq!(
        line(&reply, "child"),
        expect("changed", &["command"], "restart")
    );
    assert_eq!(
        line(&reply, "live"),
        expect("changed", &["stop_timeout"], "update")
    );
    assert_eq!(
        line(&reply, "scaled"),
        expect("changed", &["count"], "scale")
    );
    assert_eq!(line(&reply, "fresh"), expect("added", &[], "start"));
    assert_eq!(line(&reply, "gone"), expect("removed", &[], "remove"));
    assert_eq!(line(&reply, "needs_gone"), expect("removed", &[], "remove"));
    assert!(
        reply.plan.iter().all(|e| e.error.is_empty()),
        "{:?}",
        reply.plan
    );

    // Unchanged and live-updated programs keep their processes.
    assert_eq!(pids_of("keep").await, keep, "unchanged: same pid");
    assert_eq!(
        pids_of("live").await,
        live,
        "a stop window needs no restart"
    );
    // The changed child runs its new command in a new process.
    let new_child = pids_of("child").await;
    assert_eq!(new_child.len(), 1);
    assert_ne!(new_child, child, "child restarted");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", new_child[0])).expect("cmdline");
    assert!(String::from_utf8_lossy(&cmdline).contains("1001"));
    // Scaled: the two workers it had, and a third.
    let new_scaled = pids_of("scaled").await;
    assert_eq!(new_scaled.len(), 3, "scaled to 3");
    assert!(
        scaled.iter().all(|p| new_scaled.contains(p)),
        "scaling keeps the workers"
    );
    // Removed: gone from the list, their processes dead; added: started.
    wait_ok(&control, &["fresh"]).await;
    assert_eq!(
        names(&control).await,
        ["child", "fresh", "keep", "live", "scaled"]
    );
    wait_gone(&gone, DEADLINE).await;

    // The reload event carries the plan; removals are events of their own.
    let announced = events
        .wait_for("reload event", |e| is(e, EventKind::Reload))
        .await;
    assert_eq!(announced.plan, reply.plan);
    for name in ["gone", "needs_gone"] {
        events
            .wait_for(&format!("{name} removed"), |e| {
                is(e, EventKind::Removed) && e.program == name
            })
            .await;
    }
    // What needed `gone` stopped before it.
    let all = events.all();
    let stopped = |name: &str| {
        all.iter()
            .position(|e| is(e, EventKind::Stopped) && e.program == name)
            .unwrap_or_else(|| panic!("{name} stopped"))
    };
    assert!(stopped("needs_gone") < stopped("gone"), "dependents first");

    // Reloading the same file again changes nothing.
    let again = control.reload(false).await.expect("Reload again");
    assert!(
        again.plan.iter().all(|e| e.change == "unchanged"),
        "{:?}",
        again.plan
    );
    assert_eq!(pids_of("child").await, new_child);

    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&[pids, keep, live].concat(), DEADLINE).await;
}

#[tokio::test]
async fn a_changed_enhanced_cluster_rolls_with_no_failed_request() {
    let worker = example_bin("http_worker");
    let port = free_port();
    let config = |version: &str| {
        format!(
            r#"
[program.web]
kind = "cluster"
enhanced = true
count = 3
command = ["{}"]
listen = ["tcp://127.0.0.1:{port}"]
env = {{ VERSION = "{version}" }}
"#,
            worker.display()
        )
    };
    let daemon = Daemon::with_config(&config("1")).await;
    let control = daemon.control().await;
    wait_ok(&control, &["web"]).await;
    let before = control.ok_pids("web").await;
    assert_eq!(before.len(), 3);
    let addr = control.listen_addr("web").await;

    let load = Load::start(&addr, 4, 1_000_000);
    let kept = Load::keep_alive(&addr, 4, 1_000_000);
    load.wait_answered(20).await;
    kept.wait_answered(20).await;
    write_config(&daemon, &config("2"));
    let reply = control.reload(false).await.expect("Reload");
    assert_eq!(
        line(&reply, "web"),
        expect("changed", &["env"], "rolling restart")
    );
    assert!(entry(&reply, "web").error.is_empty(), "{:?}", reply.plan);
    let after = control.ok_pids("web").await;
    assert_eq!(after.len(), 3);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "every worker replaced"
    );
    let environ = std::fs::read(format!("/proc/{}/environ", after[0])).expect("environ");
    assert!(
        environ.split(|&b| b == 0).any(|v| v == b"VERSION=2"),
        "the new workers run on the new definition"
    );
    // Traffic on the new workers too.
    load.wait_answered(40).await;
    let (ok, failed, errors, _) = load.finish().await;
    println!("reload rolling restart under load: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "no failed or refused request: {errors:?}");
    let (ok_kept, failed, errors, _) = kept.finish().await;
    println!("the same on keep-alive connections: {ok_kept} ok, {failed} failed");
    assert_eq!(failed, 0, "no failed keep-alive request: {errors:?}");
    assert!(ok > 20 && ok_kept > 20, "the load ran: {ok}, {ok_kept}");

    assert!(daemon.stop().await.success());
    wait_gone(&[before, after].concat(), DEADLINE).await;
}

#[tokio::test]
async fn sighup_reloads_like_the_rpc() {
    let daemon = Daemon::with_config(BEFORE).await;
    let control = daemon.control().await;
    wait_ok(&control, &["keep", "gone", "scaled"]).await;
    let keep = control.ok_pids("keep").await;
    let gone = control.ok_pids("gone").await;
    let events = Recorder::new(&daemon).await;
    write_config(&daemon, AFTER);

    daemon.signal(Signal::SIGHUP);
    let announced = events
        .wait_for("reload event", |e| is(e, EventKind::Reload))
        .await;
    let dry = control
        .reload(true)
        .await
        .expect("dry run after the reload");
    assert!(
        dry.plan.iter().all(|e| e.change == "unchanged"),
        "the SIGHUP applied the file: {:?}",
        dry.plan
    );
    let change_of = |name: &str| {
        announced
            .plan
            .iter()
            .find(|e| e.program == name)
            .map(|e| e.change.clone())
    };
    assert_eq!(change_of("fresh").as_deref(), Some("added"));
    assert_eq!(change_of("gone").as_deref(), Some("removed"));
    wait_ok(&control, &["fresh", "child"]).await;
    control
        .wait_program("scaled", "scaled to 3", DEADLINE, |p| p.running == 3)
        .await;
    assert_eq!(
        names(&control).await,
        ["child", "fresh", "keep", "live", "scaled"]
    );
    assert_eq!(control.ok_pids("keep").await, keep, "unchanged: same pid");
    wait_gone(&gone, DEADLINE).await;

    let pids = events.pids();
    assert!(daemon.stop().await.success());
    wait_gone(&[pids, keep].concat(), DEADLINE).await;
}

#[tokio::test]
async fn a_bad_file_changes_nothing_and_names_the_line() {
    let daemon = Daemon::with_config(BEFORE).await;
    let control = daemon.control().await;
    wait_ok(&control, &["keep", "gone"]).await;
    let keep = control.ok_pids("keep").await;
    let before_names = names(&control).await;
    // Valid up to the last table, whose fifth line has a bad value: nothing of
    // the valid part may be applied either.
    let bad = format!("{AFTER}\n[program.broken]\ncommand = [\"x\"]\nstop_timeout = \"soon\"\n");
    let bad_line = bad.lines().count();
    write_config(&daemon, &bad);

    let error = control
        .reload(false)
        .await
        .expect_err("a bad file is refused");
    assert_eq!(error.code(), Some(Code::InvalidArgument), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("line {bad_line}")) && message.contains("stop_timeout"),
        "names the line and the field: {message}"
    );
    let (status, _, stderr) = daemon.ctl(&["reload"]);
    assert_eq!(
        status.code(),
        Some(2),
        "a bad file is a usage error: {stderr}"
    );
    assert!(stderr.contains(&format!("line {bad_line}")), "{stderr}");
    // SIGHUP with the bad file: logged, nothing changes, the daemon lives on.
    daemon.signal(Signal::SIGHUP);
    let error = control.reload(true).await.expect_err("still bad");
    assert!(error.to_string().contains("stop_timeout"), "{error}");
    assert_eq!(
        names(&control).await,
        before_names,
        "nothing added or removed"
    );
    assert_eq!(control.ok_pids("keep").await, keep);

    // A file that parses but would take an API program's name is refused too.
    let api = control
        .start_spec("api", spec(ProgramKind::Child, &["sleep", "1000"]))
        .await;
    write_config(
        &daemon,
        &format!("{BEFORE}\n[program.api]\ncommand = [\"sleep\", \"5\"]\n"),
    );
    let error = control
        .reload(false)
        .await
        .expect_err("a name taken over the API");
    assert!(error.to_string().contains("`api`"), "{error}");
    assert_eq!(control.program("api").await.command, api.command);

    let pids = [keep, control.ok_pids("api").await].concat();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn programs_started_over_the_api_are_left_alone_and_remove_forgets_one() {
    let daemon = Daemon::with_config(BEFORE).await;
    let control = daemon.control().await;
    wait_ok(&control, &["keep", "gone", "needs_gone"]).await;
    control
        .start_spec("api", spec(ProgramKind::Child, &["sleep", "1000"]))
        .await;
    let api = control.ok_pids("api").await;
    write_config(&daemon, AFTER);
    let reply = control.reload(false).await.expect("Reload");
    assert!(
        reply.plan.iter().all(|e| e.program != "api"),
        "{:?}",
        reply.plan
    );
    assert_eq!(
        control.ok_pids("api").await,
        api,
        "the API's program untouched"
    );

    // `remove` refuses a program another needs, stopping nothing.
    let (status, _, stderr) = daemon.ctl(&["remove", "keep"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("fresh") && stderr.contains("after"),
        "{stderr}"
    );
    assert_eq!(
        control.program("keep").await.status,
        ProgramStatus::Ok as i32
    );

    // It stops and forgets one.
    let (status, stdout, stderr) = daemon.ctl(&["remove", "api"]);
    assert!(status.success(), "remove api: {stderr}");
    assert!(stdout.contains("api removed"), "{stdout}");
    assert!(!names(&control).await.contains(&"api".to_owned()));
    wait_gone(&api, DEADLINE).await;
    let (status, _, stderr) = daemon.ctl(&["remove", "api"]);
    assert_eq!(status.code(), Some(4), "gone: not found: {stderr}");

    // A configured program removed by hand comes back with the next reload.
    let fresh = control.ok_pids("fresh").await;
    control.remove("fresh", None).await.expect("remove fresh");
    wait_gone(&fresh, DEADLINE).await;
    let reply = control.reload(false).await.expect("Reload");
    assert_eq!(line(&reply, "fresh"), expect("added", &[], "start"));
    wait_ok(&control, &["fresh"]).await;

    let pids = [
        control.ok_pids("keep").await,
        control.ok_pids("fresh").await,
        control.ok_pids("scaled").await,
    ]
    .concat();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn reload_needs_a_config_file() {
    let daemon = Daemon::start(&[]).await;
    let control = daemon.control().await;
    let error = control.reload(false).await.expect_err("no file");
    assert_eq!(error.code(), Some(Code::FailedPrecondition), "{error}");
    assert!(error.to_string().contains("--config"), "{error}");
    // SIGHUP is ignored rather than fatal.
    daemon.signal(Signal::SIGHUP);
    assert!(control.list(None).await.is_ok());
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_service_manager_hears_reloading_then_ready() {
    let dir = short_tempdir();
    std::fs::write(dir.path().join("app.toml"), BEFORE).expect("write app.toml");
    let notify_path = dir.path().join("notify.sock");
    let mut manager = NotifySocket::bind(&notify_path);
    let socket = dir.path().join("d.sock");
    let mut command = Command::new(infantd_bin());
    command
        .arg("--socket")
        .arg(&socket)
        .args(["--config", "app.toml"])
        .env("NOTIFY_SOCKET", &notify_path);
    let daemon = Daemon::start_command(command, dir, socket).await;
    manager.wait_for("READY=1 after start-up", |l| l == "READY=1");

    write_config(&daemon, AFTER);
    daemon.signal(Signal::SIGHUP);
    let reloading = manager.wait_for("RELOADING=1", |l| l == "RELOADING=1");
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "RELOADING=1 carries MONOTONIC_USEC: {reloading:?}"
    );
    let ready = manager.wait_for("READY=1 after the reload", |l| l == "READY=1");
    assert!(
        ready
            .lines()
            .any(|l| l == "STATUS=5 programs, 7 instances ok"),
        "READY=1 with the new summary: {ready:?}"
    );
    // By then the plan has been applied.
    let control = daemon.control().await;
    assert_eq!(
        control.program("fresh").await.status,
        ProgramStatus::Ok as i32
    );

    // A refused reload ends with READY=1 too, and says so.
    write_config(&daemon, "[program.x]\nbogus = 1\n");
    daemon.signal(Signal::SIGHUP);
    manager.wait_for("RELOADING=1 again", |l| l == "RELOADING=1");
    let ready = manager.wait_for("READY=1 after the refusal", |l| l == "READY=1");
    assert!(
        ready
            .lines()
            .any(|l| l.contains("reload refused") && l.contains("line 2")),
        "{ready:?}"
    );

    let pids = descendants(&daemon.socket);
    assert!(daemon.stop().await.success());
    wait_gone(&pids.iter().map(|(p, _)| *p).collect::<Vec<_>>(), DEADLINE).await;
}

#[tokio::test]
async fn a_new_listen_address_or_kind_restarts_the_program_whole() {
    let worker = example_bin("http_worker");
    let (old_port, new_port) = (free_port(), free_port());
    let config = |port: u16, solo: &str| {
        format!(
            r#"
[program.web]
kind = "cluster"
count = 2
command = ["{}"]
listen = ["tcp://127.0.0.1:{port}"]

[program.solo]
command = ["sleep", "1000"]
start_grace = "50ms"
{solo}
"#,
            worker.display()
        )
    };
    let daemon = Daemon::with_config(&config(old_port, "")).await;
    let control = daemon.control().await;
    wait_ok(&control, &["web", "solo"]).await;
    let before = [control.ok_pids("web").await, control.ok_pids("solo").await].concat();
    http_get(&format!("tcp://127.0.0.1:{old_port}"))
        .await
        .expect("served on the old port");

    write_config(&daemon, &config(new_port, "kind = \"cluster\"\ncount = 2"));
    let reply = control.reload(false).await.expect("Reload");
    assert_eq!(
        line(&reply, "web"),
        expect("changed", &["listen"], "full restart")
    );
    // Definitions are compared with their defaults applied: a cluster's
    // default stop window is not a child's.
    assert_eq!(
        line(&reply, "solo"),
        expect(
            "changed",
            &["kind", "count", "stop_timeout"],
            "full restart"
        )
    );
    assert!(
        reply.plan.iter().all(|e| e.error.is_empty()),
        "{:?}",
        reply.plan
    );

    let new_addr = format!("tcp://127.0.0.1:{new_port}");
    assert_eq!(control.listen_addr("web").await, new_addr);
    http_get(&new_addr).await.expect("served on the new port");
    assert!(
        http_get(&format!("tcp://127.0.0.1:{old_port}"))
            .await
            .is_err(),
        "the old socket is closed"
    );
    let solo = control.program("solo").await;
    assert_eq!(solo.kind, ProgramKind::Cluster as i32);
    assert_eq!((solo.count, solo.running), (2, 2), "{solo:?}");
    wait_gone(&before, DEADLINE).await;

    let after = [control.ok_pids("web").await, control.ok_pids("solo").await].concat();
    assert!(daemon.stop().await.success());
    wait_gone(&after, DEADLINE).await;
}

#[tokio::test]
async fn a_failed_rollout_keeps_the_old_workers_and_is_reported() {
    let config = |command: &str| {
        format!(
            "[program.web]\nkind = \"cluster\"\ncount = 2\ncommand = {command}\n\
             start_grace = \"50ms\"\n\n[program.other]\ncommand = [\"sleep\", \"1000\"]\n\
             start_grace = \"50ms\"\n"
        )
    };
    let daemon = Daemon::with_config(&config(r#"["sleep", "1000"]"#)).await;
    let control = daemon.control().await;
    wait_ok(&control, &["web", "other"]).await;
    let before = control.ok_pids("web").await;

    // The new command cannot run: the first replacement fails and the rollout
    // stops there.
    write_config(&daemon, &config(r#"["/nonexistent/web"]"#));
    let (status, stdout, stderr) = daemon.ctl(&["reload"]);
    assert_eq!(
        status.code(),
        Some(1),
        "a failed step fails the command: {stderr}"
    );
    assert!(
        stdout.contains("rolling restart"),
        "the plan is printed: {stdout}"
    );
    assert!(
        stderr.contains("web:") && stderr.contains("previous definition"),
        "the reason, for the program: {stderr}"
    );
    assert_eq!(
        control.ok_pids("web").await,
        before,
        "the old workers keep serving"
    );
    // The program keeps the definition it runs on: the next reload tries again.
    let dry = control.reload(true).await.expect("dry run");
    assert_eq!(
        line(&dry, "web"),
        expect("changed", &["command"], "rolling restart")
    );
    assert_eq!(line(&dry, "other"), expect("unchanged", &[], "none"));

    let pids = [before, control.ok_pids("other").await].concat();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn the_inline_program_is_not_the_files() {
    let daemon = Daemon::start_with(
        &[
            "--config", "app.toml", "--name", "inline", "--", "sleep", "1000",
        ],
        |dir| std::fs::write(dir.join("app.toml"), BEFORE).expect("write app.toml"),
    )
    .await;
    let control = daemon.control().await;
    wait_ok(&control, &["inline", "keep"]).await;
    let inline = control.ok_pids("inline").await;
    let reply = control.reload(false).await.expect("Reload");
    assert!(
        reply.plan.iter().all(|e| e.program != "inline"),
        "{:?}",
        reply.plan
    );
    assert!(
        reply.plan.iter().all(|e| e.change == "unchanged"),
        "{:?}",
        reply.plan
    );
    assert_eq!(control.ok_pids("inline").await, inline);

    let pids = [inline, control.ok_pids("keep").await].concat();
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn a_removed_program_leaves_the_health_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let daemon = Daemon::with_config(BEFORE).await;
    let control = daemon.control().await;
    wait_ok(&control, &["gone", "needs_gone"]).await;
    let channel = infant::transport::connect_unix(&daemon.socket)
        .await
        .expect("connect");
    let health = HealthClient::new(channel);
    let check = |service: &'static str| {
        let mut health = health.clone();
        async move {
            health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .map(|reply| reply.into_inner().status())
        }
    };
    wait_until("gone SERVING", DEADLINE, || async {
        check("gone").await.ok() == Some(ServingStatus::Serving)
    })
    .await;
    let gone = control.ok_pids("gone").await;

    write_config(&daemon, AFTER);
    control.reload(false).await.expect("Reload");
    wait_until("gone unknown to the health service", DEADLINE, || async {
        check("gone")
            .await
            .is_err_and(|status| status.code() == Code::NotFound)
    })
    .await;
    wait_until("the daemon healthy", DEADLINE, || async {
        check("").await.ok() == Some(ServingStatus::Serving)
    })
    .await;

    let pids = descendants(&daemon.socket);
    assert!(daemon.stop().await.success());
    wait_gone(
        &[gone, pids.iter().map(|(p, _)| *p).collect()].concat(),
        DEADLINE,
    )
    .await;
}
