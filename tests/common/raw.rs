//! The same questions on the generated gRPC client, for tests that hold one:
//! those that send requests [`infant::control::Control`] would not, and those
//! written before the harness used `Control`. New tests use
//! [`super::Queries`].

use std::time::Duration;

use infant::proto::supervisor_client::SupervisorClient;
use infant::proto::{self, ProgramInfo, ProgramSpec, WorkerInfo};
use tonic::transport::Channel;

use super::control::{first_listen, ok_pids_of};
use super::wait::wait_until;

/// The workers of `program`, via `EachWorker`.
pub async fn workers(client: &mut SupervisorClient<Channel>, program: &str) -> Vec<WorkerInfo> {
    let mut stream = client
        .each_worker(proto::EachWorkerRequest {
            name: program.to_string(),
        })
        .await
        .expect("EachWorker")
        .into_inner();
    let mut out = Vec::new();
    while let Some(w) = stream.message().await.expect("EachWorker stream") {
        out.push(w);
    }
    out
}

/// The pids of `program`'s workers that are `ok`.
pub async fn ok_pids(client: &mut SupervisorClient<Channel>, program: &str) -> Vec<u32> {
    ok_pids_of(workers(client, program).await)
}

/// The first bound `listen` address of `program` (`tcp://127.0.0.1:PORT`).
pub async fn listen_addr(client: &mut SupervisorClient<Channel>, program: &str) -> String {
    let mut reply = client
        .list(proto::ListRequest {
            name: program.to_string(),
        })
        .await
        .expect("List")
        .into_inner();
    first_listen(reply.programs.remove(0))
}

/// Starts `s` as program `name`; the reply or the status.
pub async fn start_program_result(
    client: &mut SupervisorClient<Channel>,
    name: &str,
    s: ProgramSpec,
) -> Result<ProgramInfo, tonic::Status> {
    client
        .start(proto::StartRequest {
            name: name.into(),
            spec: Some(s),
            wait: false,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Starts `s` as program `name` and returns the reply; panics naming the program.
pub async fn start_program(
    client: &mut SupervisorClient<Channel>,
    name: &str,
    s: ProgramSpec,
) -> ProgramInfo {
    start_program_result(client, name, s)
        .await
        .unwrap_or_else(|e| panic!("Start {name}: {e}"))
}

/// Waits until `program`'s entry in `List` satisfies `check`; panics naming
/// `what` after `deadline`.
pub async fn wait_program(
    client: &SupervisorClient<Channel>,
    program: &str,
    what: &str,
    deadline: Duration,
    check: impl Fn(&ProgramInfo) -> bool,
) {
    let check = &check;
    wait_until(what, deadline, || {
        let mut client = client.clone();
        let name = program.to_string();
        async move {
            client
                .list(proto::ListRequest { name })
                .await
                .is_ok_and(|l| l.into_inner().programs.first().is_some_and(check))
        }
    })
    .await;
}
