//! Fuzz target: the config parser must answer any input with specs or an error
//! message, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = infant::daemon::config::parse(text);
    }
});
