//! Generates the Rust code for `proto/infant.proto`.
//!
//! `protox` compiles the proto in pure Rust, so a clean clone builds with nothing
//! but the Rust toolchain (no system `protoc`). The encoded descriptor set is also
//! written to `OUT_DIR` so the daemon can serve gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/infant.proto";
    // compile_fds does not track inputs itself.
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-changed=build.rs");

    let fds = protox::compile([proto], ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("infant_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Small stream buffers: see client/codec.rs.
        .codec_path("crate::codec::SmallCodec")
        .compile_fds(fds)?;
    Ok(())
}
