//! Questions tests ask the daemon, as methods on the project's own
//! [`Control`] client: `control.ok_pids("web")`, `control.program("web")`.
//! A failed call fails the test with the client's own message, which names the
//! action and the program.

use std::time::Duration;

use infant::control::Control;
use infant::proto::{InstanceStatus, ProgramInfo, ProgramSpec, WorkerInfo};

use super::wait::wait_until;

/// Test queries on [`Control`]; each panics if the daemon cannot answer.
// `async fn` in a public trait cannot promise `Send` futures to generic callers;
// its one implementor is `Control` and its callers name that type.
#[allow(async_fn_in_trait)]
pub trait Queries {
    /// Starts `spec` as program `name` and returns the reply once it is `ok`.
    async fn start_spec(&self, name: &str, spec: ProgramSpec) -> ProgramInfo;

    /// Program `name`'s entry in `List`.
    async fn program(&self, name: &str) -> ProgramInfo;

    /// The workers of `program`.
    async fn workers_of(&self, program: &str) -> Vec<WorkerInfo>;

    /// The pids of `program`'s workers that are `ok`.
    async fn ok_pids(&self, program: &str) -> Vec<u32>;

    /// The first bound `listen` address of `program` (`tcp://127.0.0.1:PORT`).
    async fn listen_addr(&self, program: &str) -> String;

    /// Waits until `program`'s entry in `List` satisfies `check`; panics naming
    /// `what` after `deadline`.
    async fn wait_program(
        &self,
        program: &str,
        what: &str,
        deadline: Duration,
        check: impl Fn(&ProgramInfo) -> bool,
    );
}

impl Queries for Control {
    async fn start_spec(&self, name: &str, spec: ProgramSpec) -> ProgramInfo {
        self.start(name, Some(spec), false)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn program(&self, name: &str) -> ProgramInfo {
        let mut programs = self
            .list(Some(name))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(programs.len(), 1, "list {name}: one program");
        programs.remove(0)
    }

    async fn workers_of(&self, program: &str) -> Vec<WorkerInfo> {
        self.workers(Some(program))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn ok_pids(&self, program: &str) -> Vec<u32> {
        ok_pids_of(self.workers_of(program).await)
    }

    async fn listen_addr(&self, program: &str) -> String {
        first_listen(self.program(program).await)
    }

    async fn wait_program(
        &self,
        program: &str,
        what: &str,
        deadline: Duration,
        check: impl Fn(&ProgramInfo) -> bool,
    ) {
        let check = &check;
        wait_until(what, deadline, || async move {
            self.list(Some(program))
                .await
                .is_ok_and(|programs| programs.first().is_some_and(check))
        })
        .await;
    }
}

/// The pids of the workers that are `ok`.
pub(super) fn ok_pids_of(workers: Vec<WorkerInfo>) -> Vec<u32> {
    workers
        .into_iter()
        .filter(|w| w.status == InstanceStatus::Ok as i32)
        .map(|w| w.pid)
        .collect()
}

/// The program's first bound `listen` address.
pub(super) fn first_listen(program: ProgramInfo) -> String {
    let name = program.name.clone();
    program
        .listen
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("program {name} has a listen address"))
}
