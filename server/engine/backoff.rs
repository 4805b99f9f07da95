//! Respawn hold-down for crash loops.
//!
//! A worker's first crash, and the first crash after a stable run, respawn at
//! once; crashes in a row wait 100 ms, 200 ms, 400 ms … up to the program's
//! `respawn_delay`, and never less than [`MIN_DELAY`], even with a
//! `respawn_delay` of zero: a program that dies at once would otherwise be
//! respawned thousands of times a second. A run counts as stable once the
//! instance has been `ok` for [`STABLE_RUN`].

use std::time::Duration;

/// How long an instance must stay `ok` for its next crash to count as a first.
pub const STABLE_RUN: Duration = Duration::from_secs(5);
/// The first hold-down in a crash loop.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The shortest hold-down between crashes in a row, whatever the cap: at most
/// 100 respawns a second per worker.
pub const MIN_DELAY: Duration = Duration::from_millis(10);

/// The hold-down before respawning after a crash, given the unstable crashes in a
/// row before this one (`streak`, 0 after a stable run) and the cap.
pub fn delay(streak: u32, cap: Duration) -> Duration {
    if streak == 0 {
        return Duration::ZERO;
    }
    // 100 ms · 2^(streak-1); the shift is bounded so it cannot overflow.
    let factor = 1u32 << (streak - 1).min(20);
    FIRST_DELAY.saturating_mul(factor).min(cap).max(MIN_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let cap = Duration::from_secs(15);
        assert_eq!(delay(0, cap), Duration::ZERO);
        assert_eq!(delay(1, cap), Duration::from_millis(100));
        assert_eq!(delay(2, cap), Duration::from_millis(200));
        assert_eq!(delay(5, cap), Duration::from_millis(1600));
        assert_eq!(delay(9, cap), cap);
        assert_eq!(delay(u32::MAX, cap), cap);
        assert_eq!(
            delay(3, Duration::from_millis(250)),
            Duration::from_millis(250)
        );
    }

    #[test]
    fn a_zero_cap_keeps_the_floor_for_crashes_in_a_row() {
        assert_eq!(delay(0, Duration::ZERO), Duration::ZERO);
        assert_eq!(delay(1, Duration::ZERO), MIN_DELAY);
        assert_eq!(delay(30, Duration::from_millis(3)), MIN_DELAY);
    }
}
