//! CPU time of supervised pids, read from `/proc/PID/stat`.
//!
//! Like [`super::rss`], a read touches only the pid asked about (about 5 µs), so a
//! listing or a metrics scrape costs in proportion to the instances supervised,
//! and nothing is sampled while nobody asks. `sysinfo`, refreshing only these
//! pids, took two to three times the CPU per pid of this direct read (40–50 µs
//! against 16–24 µs over 500 pids), more than a scrape of 1,000 instances can
//! afford (see `docs/observability.md`).

use std::time::Duration;

use nix::unistd::Pid;

/// The CPU time (user + system) `pid` has used, or `None` if it is gone.
pub fn cpu_time(pid: Pid) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text, clock_ticks())
}

/// `utime + stime` of a `/proc/PID/stat` line, in clock ticks of `hz` per second.
fn parse_stat(text: &str, hz: u64) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces and `)`:
    // the fields that follow start after the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: state is field 3, utime field 14, stime field 15.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.saturating_add(stime);
    let hz = hz.max(1);
    Some(Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_name_with_spaces_and_parentheses() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 1 0 1000 0 0";
        assert_eq!(parse_stat(line, 100), Some(Duration::from_millis(3800)));
        assert_eq!(parse_stat("garbage", 100), None);
        assert_eq!(parse_stat("1 (x) S 1", 100), None);
    }

    #[test]
    fn reads_our_own_cpu_time() {
        // Burn a little CPU so the count is not zero at the tick granularity.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let used = cpu_time(nix::unistd::getpid()).expect("our own stat");
        assert!(used >= Duration::from_millis(10), "{used:?}");
        assert!(cpu_time(Pid::from_raw(i32::MAX)).is_none());
    }
}
