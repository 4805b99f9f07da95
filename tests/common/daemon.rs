//! The `Daemon` fixture: a real `infantd` on a private socket in a private
//! folder, the clients that reach it, and a clean end however the test ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use infant::control::Control;
use infant::proto::supervisor_client::SupervisorClient;
use nix::sys::signal::Signal;
use tonic::transport::Channel;

use super::paths::{infantctl_bin, infantd_bin, short_tempdir};
use super::wait::{poll, stop_child, wait_child, DEADLINE};

/// A running `infantd` with its own private folder and socket. Dropping it
/// stops the daemon (SIGTERM, SIGKILL past the deadline).
pub struct Daemon {
    child: Option<Child>,
    /// A private 0700 folder for this daemon (socket, config, marker files).
    pub dir: tempfile::TempDir,
    /// The control socket.
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts `infantd --socket DIR/d.sock ARGS…` and waits until it answers.
    pub async fn start(args: &[&str]) -> Daemon {
        Self::start_with(args, |_| {}).await
    }

    /// Like [`Daemon::start`], with a chance to add a config file to the folder
    /// first (`setup` gets the folder).
    pub async fn start_with(args: &[&str], setup: impl FnOnce(&Path)) -> Daemon {
        let dir = short_tempdir();
        setup(dir.path());
        let socket = dir.path().join("d.sock");
        let mut command = Command::new(infantd_bin());
        command.arg("--socket").arg(&socket).args(args);
        Self::launch(command, dir, socket).await
    }

    /// Starts `infantd --config app.toml` with `text` as that file, in the
    /// daemon's private folder (also its working directory, so relative paths in
    /// commands land there).
    pub async fn with_config(text: &str) -> Daemon {
        Daemon::start_with(&["--config", "app.toml"], |dir| {
            std::fs::write(dir.join("app.toml"), text).expect("write app.toml");
        })
        .await
    }

    /// Like [`Daemon::start`], with `env` added to the daemon's environment.
    pub async fn start_env(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let dir = short_tempdir();
        let socket = dir.path().join("d.sock");
        let mut command = Command::new(infantd_bin());
        command.arg("--socket").arg(&socket).args(args);
        command.envs(env.iter().copied());
        Self::launch(command, dir, socket).await
    }

    /// Starts `WRAPPER… infantd --socket DIR/d.sock ARGS…`: infantd run by
    /// another program (`unshare`, a shell). `pid` is then the wrapper's.
    pub async fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Daemon {
        let dir = short_tempdir();
        let socket = dir.path().join("d.sock");
        let mut command = Command::new(wrapper[0]);
        command
            .args(&wrapper[1..])
            .arg(infantd_bin())
            .arg("--socket")
            .arg(&socket)
            .args(args);
        Self::launch(command, dir, socket).await
    }

    /// Starts `infantd ARGS…` without `--socket`, as a user would: it takes its
    /// default socket, `$XDG_RUNTIME_DIR/infant/infantd.sock`, with
    /// `$XDG_RUNTIME_DIR` set to the daemon's private folder and `$INFANT_SOCKET`
    /// unset.
    pub async fn start_default_socket(args: &[&str]) -> Daemon {
        let dir = short_tempdir();
        let socket = dir.path().join("infant").join("infantd.sock");
        let mut command = Command::new(infantd_bin());
        command
            .args(args)
            .env("XDG_RUNTIME_DIR", dir.path())
            .env_remove("INFANT_SOCKET");
        Self::launch(command, dir, socket).await
    }

    /// Spawns `command`, an infantd set up by the caller (its environment, its
    /// fds), in `dir`, and waits until it answers on `socket`.
    pub async fn start_command(
        command: Command,
        dir: tempfile::TempDir,
        socket: PathBuf,
    ) -> Daemon {
        Self::launch(command, dir, socket).await
    }

    /// Spawns `command` (infantd with its arguments) in `dir` and waits until it
    /// answers on `socket`.
    pub async fn launch(mut command: Command, dir: tempfile::TempDir, socket: PathBuf) -> Daemon {
        // A command that sets its own INFANT_LOG keeps it.
        if !command.get_envs().any(|(key, _)| key == "INFANT_LOG") {
            command.env(
                "INFANT_LOG",
                std::env::var("INFANT_TEST_LOG").unwrap_or_else(|_| "info".into()),
            );
        }
        // Program output lands in the daemon's private folder (`infant/logs`),
        // not in the home of whoever runs the tests.
        if !command.get_envs().any(|(key, _)| key == "XDG_STATE_HOME") {
            command.env("XDG_STATE_HOME", dir.path());
        }
        let child = command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn infantd");
        let daemon = Daemon {
            child: Some(child),
            dir,
            socket,
        };
        let answered = poll(DEADLINE, || daemon.try_control()).await;
        assert!(
            answered.is_some(),
            "infantd did not answer on {} within {DEADLINE:?}",
            daemon.socket.display()
        );
        daemon
    }

    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// The project's own control client, on a new connection: what tests use.
    pub async fn control(&self) -> Control {
        self.try_control().await.expect("connect to infantd")
    }

    async fn try_control(&self) -> Option<Control> {
        Control::connect(Some(self.socket.clone())).await.ok()
    }

    /// The generated gRPC client, on a new connection: for requests
    /// [`Control`] would not send (malformed ones) and for tests written
    /// against it.
    pub async fn client(&self) -> SupervisorClient<Channel> {
        let channel = infant::transport::connect_unix(&self.socket)
            .await
            .expect("connect to infantd");
        SupervisorClient::new(channel)
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .expect("signal infantd");
    }

    /// Waits (with a deadline) for the daemon to exit and returns its status.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("daemon already waited for");
        wait_child(&mut child, deadline).await
    }

    /// SIGTERM and wait: the graceful path every test should end with.
    pub async fn stop(mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        self.wait_exit(DEADLINE).await
    }

    /// Runs `infantctl --socket … ARGS` and returns (status, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let out = Command::new(infantctl_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run infantctl");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `infantctl start NAME --kind cluster --count COUNT --start-grace 0ms --
    /// sleep 1000`: a cluster of idle workers, `ok` as soon as they run.
    pub fn start_sleepers(&self, name: &str, count: u32) {
        let count = count.to_string();
        let (status, _, stderr) = self.ctl(&[
            "start",
            name,
            "--kind",
            "cluster",
            "--count",
            &count,
            "--start-grace",
            "0ms",
            "--",
            "sleep",
            "1000",
        ]);
        assert!(status.success(), "start {name}: {stderr}");
    }
}

impl Drop for Daemon {
    /// A test that panicked still cleans up: SIGTERM lets the daemon stop and reap
    /// every process it started (SIGKILL would leave grandchildren to PID 1);
    /// SIGKILL only if it does not exit in time.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Signal::SIGTERM, DEADLINE);
        }
    }
}

/// [`Daemon::with_config`], by the name tests used first.
pub async fn daemon_with_config(text: &str) -> Daemon {
    Daemon::with_config(text).await
}
