//! Reading the `INFANT_*` variables the daemon starts each instance with.
//!
//! `INFANT_WORKER_ID` is what marks an instance as supervised. `INFANT_SOCKET`
//! alone does not: the control tools read the same variable for the daemon's
//! control socket, so a user who exported it for `infantctl` and then runs a worker
//! by hand must get a standalone worker, not a failed attach.

use std::ffi::OsString;
use std::path::PathBuf;

use super::WorkerError;

/// Path of the worker channel's Unix socket.
pub(super) const SOCKET: &str = "INFANT_SOCKET";
/// The instance's id.
pub(super) const WORKER_ID: &str = "INFANT_WORKER_ID";
/// The instance's secret, presented in `Hello`.
pub(super) const TOKEN: &str = "INFANT_TOKEN";
/// The program's name.
pub(super) const PROGRAM: &str = "INFANT_PROGRAM";
/// The program's configured `title`, which names the process under the daemon.
pub(super) const TITLE: &str = "INFANT_TITLE";

/// Who this instance is and where its daemon listens, as the daemon told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Supervision {
    pub socket: PathBuf,
    pub id: u64,
    pub token: String,
    /// Also sent in `Welcome`, which wins.
    pub program: Option<String>,
    /// The operator's title for the program; overrides the one in the code.
    pub title: Option<String>,
}

/// Every variable the daemon sets for the SDK.
const ALL: [&str; 5] = [SOCKET, WORKER_ID, TOKEN, PROGRAM, TITLE];

/// Reads the process environment: `None` when not started by `infantd`. Under a
/// daemon the variables are then removed, so that the worker's own children (an
/// SDK-linked helper, a shell) do not take themselves for this supervised worker.
///
/// Removal happens once, as the first thing the worker does (before the SDK
/// starts any thread of its own). Rust's `std::env` functions serialize with
/// each other through the standard library's environment lock, so Rust code on
/// other threads reading the environment meanwhile is safe; what is not
/// synchronized is foreign code calling `getenv` on another thread at this very
/// moment, which is why the module docs ask to call `run` early.
pub(super) fn take_from_process() -> Result<Option<Supervision>, WorkerError> {
    let found = parse(|name| std::env::var_os(name))?;
    if found.is_some() {
        for var in ALL {
            std::env::remove_var(var);
        }
    }
    Ok(found)
}

/// Parses the variables found by `lookup`; separate from [`from_process`] so it can
/// be tested without touching the process environment.
pub(super) fn parse(
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Result<Option<Supervision>, WorkerError> {
    let Some(id) = lookup(WORKER_ID) else {
        return Ok(None);
    };
    let id = text(WORKER_ID, id)?;
    let id = id.trim().parse::<u64>().map_err(|error| WorkerError::Env {
        var: WORKER_ID,
        reason: format!("{id:?} is not a worker id: {error}"),
    })?;

    let socket = lookup(SOCKET)
        .filter(|path| !path.is_empty())
        .ok_or_else(|| missing(SOCKET))?;
    let token = text(TOKEN, lookup(TOKEN).ok_or_else(|| missing(TOKEN))?)?;
    let program = optional(PROGRAM, lookup(PROGRAM))?;
    let title = optional(TITLE, lookup(TITLE))?;

    Ok(Some(Supervision {
        socket: PathBuf::from(socket),
        id,
        token,
        program,
        title,
    }))
}

/// An optional variable: unset and empty are the same.
fn optional(var: &'static str, value: Option<OsString>) -> Result<Option<String>, WorkerError> {
    match value {
        Some(value) if !value.is_empty() => text(var, value).map(Some),
        _ => Ok(None),
    }
}

fn text(var: &'static str, value: OsString) -> Result<String, WorkerError> {
    value.into_string().map_err(|value| WorkerError::Env {
        var,
        reason: format!("{value:?} is not UTF-8"),
    })
}

fn missing(var: &'static str) -> WorkerError {
    WorkerError::Env {
        var,
        reason: format!("not set, but {WORKER_ID} is: the daemon sets both"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_vars(vars: &[(&str, &str)]) -> Result<Option<Supervision>, WorkerError> {
        parse(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        })
    }

    #[test]
    fn no_worker_id_is_standalone() {
        assert!(matches!(parse_vars(&[]), Ok(None)));
        // The control socket variable alone does not make a worker supervised.
        assert!(matches!(
            parse_vars(&[(SOCKET, "/tmp/infantd.sock")]),
            Ok(None)
        ));
    }

    #[test]
    fn full_environment_is_supervised() {
        let found = parse_vars(&[
            (SOCKET, "/tmp/w.sock"),
            (WORKER_ID, "42"),
            (TOKEN, "s3cret"),
            (PROGRAM, "web"),
            (TITLE, "web server"),
        ]);
        let expected = Supervision {
            socket: PathBuf::from("/tmp/w.sock"),
            id: 42,
            token: "s3cret".into(),
            program: Some("web".into()),
            title: Some("web server".into()),
        };
        assert_eq!(found.ok().flatten(), Some(expected));
    }

    #[test]
    fn program_and_title_are_optional_and_token_may_be_empty() {
        let found = parse_vars(&[(SOCKET, "/s"), (WORKER_ID, "1"), (TOKEN, ""), (TITLE, "")]);
        let found = found.ok().flatten();
        assert_eq!(found.as_ref().map(|s| s.program.clone()), Some(None));
        assert_eq!(found.as_ref().map(|s| s.title.clone()), Some(None));
        assert_eq!(found.map(|s| s.token), Some(String::new()));
    }

    #[test]
    fn bad_id_names_the_variable() {
        let error = parse_vars(&[(SOCKET, "/s"), (WORKER_ID, "x1"), (TOKEN, "t")]);
        let Err(WorkerError::Env { var, reason }) = error else {
            panic!("expected an Env error, got {error:?}");
        };
        assert_eq!(var, WORKER_ID);
        assert!(reason.contains("\"x1\""), "{reason}");
    }

    #[test]
    fn missing_socket_or_token_is_an_error() {
        let no_socket = parse_vars(&[(WORKER_ID, "1"), (TOKEN, "t")]);
        assert!(matches!(
            no_socket,
            Err(WorkerError::Env { var: SOCKET, .. })
        ));
        let empty_socket = parse_vars(&[(SOCKET, ""), (WORKER_ID, "1"), (TOKEN, "t")]);
        assert!(matches!(
            empty_socket,
            Err(WorkerError::Env { var: SOCKET, .. })
        ));
        let no_token = parse_vars(&[(SOCKET, "/s"), (WORKER_ID, "1")]);
        assert!(matches!(no_token, Err(WorkerError::Env { var: TOKEN, .. })));
    }
}
