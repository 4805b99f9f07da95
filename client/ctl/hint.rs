//! Help for the person at the keyboard: "did you mean `web`?" after a mistyped
//! program name, and the `--` a command line forgot before an inline command.

use clap::builder::StyledStr;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use infant::control::{Control, ControlError};
use tonic::Code;

use crate::args::Command;
use crate::run::Failure;

/// The program a command names, if it names one.
pub fn program_named(command: &Command) -> Option<String> {
    match command {
        Command::Start(args) => Some(args.name.clone()),
        Command::Stop(args) => Some(args.name.clone()),
        Command::Restart(args) => Some(args.name.clone()),
        Command::Scale(args) => Some(args.name.clone()),
        Command::Remove(args) => Some(args.name.clone()),
        Command::Send(args) => Some(args.target.name.clone()),
        Command::Kill(args) => Some(args.target.name.clone()),
        Command::Logs(args) => Some(args.target.name.clone()),
        Command::Workers(args) => args.name.clone(),
        Command::Events(args) => args.name.clone(),
        Command::Top(args) => args.name.clone(),
        // `status a b`: the first unknown one is the one reported.
        Command::Status(_) | Command::Reload(_) | Command::Completions(_) | Command::Man => None,
    }
}

/// `failure` with the closest program name the daemon knows, when the failure is
/// an unknown program and a known one is close enough to be a typo of it.
pub async fn suggest(control: &Control, failure: Failure, named: Option<&str>) -> Failure {
    let Failure::Control(error) = &failure else {
        return failure;
    };
    if error.code() != Some(Code::NotFound) || !is_unknown_program(error) {
        return failure;
    }
    let name = match named {
        Some(name) => name.to_owned(),
        None => match quoted(&error.to_string()) {
            Some(name) => name,
            None => return failure,
        },
    };
    let Ok(programs) = control.list(None).await else {
        return failure;
    };
    match closest(&name, programs.iter().map(|p| p.name.as_str())) {
        Some(suggestion) => Failure::Suggested {
            failure: Box::new(failure),
            suggestion: suggestion.to_owned(),
        },
        None => failure,
    }
}

/// The daemon says "program `NAME` not found" (a worker that is not found has its
/// program found: no suggestion for that).
fn is_unknown_program(error: &ControlError) -> bool {
    let text = error.to_string();
    text.contains("program `") && text.ends_with("not found") && !text.contains(": worker ")
}

/// The first `…`-quoted word of `text`.
fn quoted(text: &str) -> Option<String> {
    let start = text.find('`')? + 1;
    let end = start + text[start..].find('`')?;
    Some(text[start..end].to_owned())
}

/// The known name most like `name`, if it is like enough to be what was meant:
/// at most one edit (a swap of two letters counts as one) per three letters.
pub fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let allowed = (name.chars().count() / 3).max(1);
    known
        .filter(|candidate| *candidate != name)
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(edits, _)| *edits <= allowed)
        .min_by_key(|(edits, _)| *edits)
        .map(|(_, candidate)| candidate)
}

/// Adds a tip to a usage error where the mistake is a common one:
/// `start x sleep 100` means `start x -- sleep 100`.
pub fn usage(mut error: clap::Error, argv: &[String]) -> clap::Error {
    if error.kind() != ErrorKind::UnknownArgument {
        return error;
    }
    let Some(ContextValue::String(unexpected)) = error.get(ContextKind::InvalidArg).cloned() else {
        return error;
    };
    let Some(start) = argv
        .iter()
        .skip(1)
        .position(|arg| arg == "start")
        .map(|i| i + 1)
    else {
        return error;
    };
    if argv.iter().any(|arg| arg == "--") {
        return error;
    }
    let Some(at) = argv[start..]
        .iter()
        .position(|arg| *arg == unexpected)
        .map(|i| start + i)
    else {
        return error;
    };
    let mut fixed: Vec<&str> = vec!["infantctl"];
    fixed.extend(argv[1..at].iter().map(String::as_str));
    fixed.push("--");
    fixed.extend(argv[at..].iter().map(String::as_str));
    let tip = format!("an inline command goes after `--`: {}", fixed.join(" "));
    error.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![StyledStr::from(tip)]),
    );
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use clap::Parser;

    #[test]
    fn typos_find_the_program() {
        let known = ["web", "worker", "db-migrate"];
        assert_eq!(closest("wbe", known.iter().copied()), Some("web"));
        assert_eq!(
            closest("db-migrat", known.iter().copied()),
            Some("db-migrate")
        );
        assert_eq!(closest("zzz", known.iter().copied()), None);
        assert_eq!(closest("web", ["web"].iter().copied()), None);
    }

    #[test]
    fn start_without_dashes_gets_a_tip() {
        let argv: Vec<String> = ["infantctl", "start", "x", "sleep", "100"]
            .map(String::from)
            .to_vec();
        let error = Cli::try_parse_from(&argv).expect_err("not a valid command line");
        let message = usage(error, &argv).to_string();
        assert!(
            message.contains("infantctl start x -- sleep 100"),
            "{message}"
        );
    }

    #[test]
    fn quoted_names() {
        assert_eq!(
            quoted("stop wbe: program `wbe` not found").as_deref(),
            Some("wbe")
        );
        assert_eq!(quoted("nothing"), None);
    }
}
