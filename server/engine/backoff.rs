//! Respawn hold-down for crash loops.
//!
//! A worker's first crash, and the first crash after a stable run, respawn at
//! once; crashes in a row wait 100 ms, 200 ms, 400 ms … up to the program's
//! `respawn_delay`. A run counts as stable once the instance has been `ok` for
//! [`STABLE_RUN`].

use std::time::Duration;

/// How long an instance must stay `ok` for its next crash to count as a first.
pub const STABLE_RUN: Duration = Duration::from_secs(5);
/// The first hold-down in a crash loop.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);

/// The hold-down before respawning after a crash, given the unstable crashes in a
/// row before this one (`streak`, 0 after a stable run) and the cap.
pub fn delay(streak: u32, cap: Duration) -> Duration {
    if streak == 0 {
        return Duration::ZERO;
    }
    // 100 ms · 2^(streak-1); the shift is bounded so it cannot overflow.
    let factor = 1u32 << (streak - 1).min(20);
    FIRST_DELAY.saturating_mul(factor).min(cap)
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
}
