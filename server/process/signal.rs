//! Signalling instances: always their whole process group.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Sends `signal` to the process group led by `pgid`. A group that is already gone
/// is not an error: the instance raced us to its exit.
pub fn signal_group(pgid: Pid, signal: Signal) -> std::io::Result<()> {
    match killpg(pgid, signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Parses a signal given as `SIGTERM`, `TERM`, `term` or a number; empty is SIGTERM.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Signal::SIGTERM);
    }
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| format!("{number} is not a signal number"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| format!("{text:?} is not a signal name (try TERM, HUP, KILL, USR1)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_in_every_spelling() {
        assert_eq!(parse_signal(""), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("SIGHUP"), Ok(Signal::SIGHUP));
        assert_eq!(parse_signal("usr1"), Ok(Signal::SIGUSR1));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("999").is_err());
    }
}
