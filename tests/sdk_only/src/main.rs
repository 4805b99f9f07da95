//! The smallest worker built on the SDK alone: it attaches to `infantd`, becomes
//! ready, answers each message, heartbeats while it runs, and stops gracefully.
//!
//! It prints `started <pid>` when its start hook ends and `stopped <pid>` when its
//! stop hook ends, so a test reading its stdout sees both sides of its life.

use infant::worker::{Handle, Worker, WorkerError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), WorkerError> {
    Worker::new("sdk_only")
        .on_message(|payload, handle| {
            let mut reply = b"echo: ".to_vec();
            reply.extend_from_slice(&payload);
            let _ = handle.send(reply);
        })
        .run(start, stop)
        .await
}

async fn start(handle: Handle) -> Result<(), String> {
    println!(
        "started {} supervised={}",
        std::process::id(),
        handle.is_supervised()
    );
    Ok(())
}

async fn stop(_handle: Handle) -> Result<(), String> {
    println!("stopped {}", std::process::id());
    Ok(())
}
