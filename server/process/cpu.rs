//! CPU time and resident memory of supervised pids, read from `/proc/PID/stat`.
//!
//! Like [`super::rss`], a read touches only the pid asked about (about 5 µs), so a
//! listing or a metrics scrape costs in proportion to the instances supervised,
//! and nothing is sampled while nobody asks. [`usage`] takes both figures from
//! that one file, into a buffer on the stack: a listing or a scrape of 1,000
//! instances opens 1,000 files rather than 2,000 and allocates nothing per pid.
//!
//! `sysinfo`, refreshing only these pids, took two to three times the CPU per
//! pid of this direct read (40–50 µs against 16–24 µs over 500 pids), more than
//! a scrape of 1,000 instances can afford (see `docs/observability.md`).

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use nix::unistd::Pid;

/// What a process has used, from one read of its `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time, user and system.
    pub cpu: Duration,
    /// Resident set size in bytes (the `resident` of `/proc/PID/statm`).
    pub rss_bytes: u64,
}

/// The CPU time and resident memory of `pid`, or `None` if it is gone.
pub fn usage(pid: Pid) -> Option<Usage> {
    // The path formatted on the stack: "/proc/" + up to 10 digits + "/stat".
    let mut path = [0u8; 32];
    let mut cursor = std::io::Cursor::new(&mut path[..]);
    write!(cursor, "/proc/{pid}/stat").ok()?;
    let len = usize::try_from(cursor.position()).ok()?;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&path[..len]));
    let mut file = std::fs::File::open(path).ok()?;
    // A stat line is about 300 bytes; the command name in it at most 64.
    let mut buffer = [0u8; 1024];
    // The kernel produces the whole line at the first read: stop at its end
    // rather than spend a second system call to learn that nothing follows.
    let mut got = 0;
    while got < buffer.len() && !buffer[..got].ends_with(b"\n") {
        match file.read(&mut buffer[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let text = std::str::from_utf8(&buffer[..got]).ok()?;
    parse_usage(text, clock_ticks(), super::rss::page_size())
}

/// CPU time and RSS of a `/proc/PID/stat` line (ticks of `hz` per second,
/// pages of `page` bytes).
fn parse_usage(text: &str, hz: u64, page: u64) -> Option<Usage> {
    let cpu = parse_stat(text, hz)?;
    // After the name: utime is field 14, rss field 24.
    let rest = &text[text.rfind(')')? + 1..];
    let pages: u64 = rest.split_whitespace().nth(21)?.parse().ok()?;
    Some(Usage {
        cpu,
        rss_bytes: pages.saturating_mul(page),
    })
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
    fn parses_cpu_and_rss_from_one_line() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 1 0 1000 123456 77 18446744073709551615";
        assert_eq!(
            parse_usage(line, 100, 4096),
            Some(Usage {
                cpu: Duration::from_millis(3800),
                rss_bytes: 77 * 4096
            })
        );
        assert_eq!(
            parse_usage("1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1", 100, 4096),
            None
        );
    }

    #[test]
    fn usage_agrees_with_statm_and_the_cpu_time() {
        let me = nix::unistd::getpid();
        let usage = usage(me).expect("our own stat");
        let rss = crate::daemon::process::rss::rss_bytes(me).expect("our own statm");
        // The two reads are moments apart: the same within a few pages.
        assert!(
            usage.rss_bytes.abs_diff(rss) < 1 << 20,
            "{usage:?} against {rss}"
        );
        let later = super::usage(me).expect("our own stat again");
        assert!(usage.cpu <= later.cpu, "{usage:?} then {later:?}");
        assert!(super::usage(Pid::from_raw(i32::MAX)).is_none());
    }

    #[test]
    fn reads_our_own_cpu_time() {
        // Burn a little CPU so the count is not zero at the tick granularity.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let used = usage(nix::unistd::getpid()).expect("our own stat").cpu;
        assert!(used >= Duration::from_millis(10), "{used:?}");
    }
}
