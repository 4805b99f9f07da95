//! Where things are: the package's binaries and examples, short temp folders
//! (Unix socket paths are limited to 108 bytes) and free ports.

use std::path::{Path, PathBuf};

/// Path of `infantd`.
pub fn infantd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_infantd"))
}

/// Path of `infantctl`.
pub fn infantctl_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_infantctl"))
}

/// Path of an example binary (cargo builds examples for `cargo test`).
pub fn example_bin(name: &str) -> PathBuf {
    // tests run from target/<profile>/deps/<test>-<hash>
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples (cargo test builds them)",
        path.display()
    );
    path
}

/// A temp folder with a short path, so a socket inside it fits.
pub fn short_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("inf")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
