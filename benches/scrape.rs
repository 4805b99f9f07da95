//! The cost of `GET /metrics`: the daemon CPU one scrape takes with 1,000
//! supervised instances (target: under 20 ms), and the daemon's idle CPU while
//! scraped every 15 s.
//!
//! `cargo bench --bench scrape`; `SCRAPE_INSTANCES` (default 1000),
//! `SCRAPE_ROUNDS` (default 20) and `SCRAPE_IDLE_SECS` (default 30) change the
//! sizes. The instances are plain `sleep` processes: what a scrape costs depends
//! on how many there are, not on what they run.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use infant::proto::{self, supervisor_client::SupervisorClient};
use support::{env_number, ms, thread_cpu, Binaries, DEADLINE};

/// The daemon, stopped on every way out (its workers die with it).
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        support::terminate(&mut self.0, DEADLINE);
    }
}

/// One scrape over a fresh connection; the body.
fn scrape(address: SocketAddr) -> Result<String> {
    let mut stream = TcpStream::connect(address).context("connecting to the metrics port")?;
    stream.set_read_timeout(Some(DEADLINE))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").context("no HTTP header end")?;
    ensure!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    Ok(body.to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let instances = env_number("SCRAPE_INSTANCES", 1000.0)? as u32;
    let rounds = env_number("SCRAPE_ROUNDS", 20.0)? as u32;
    let idle = Duration::from_secs_f64(env_number("SCRAPE_IDLE_SECS", 30.0)?);
    let bins = Binaries::locate("echo_worker")?;

    // A free port for the metrics listener.
    let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let dir = tempfile::Builder::new().prefix("is").tempdir_in("/tmp")?;
    let socket = dir.path().join("d.sock");
    let child = Command::new(&bins.infantd)
        .arg("--socket")
        .arg(&socket)
        .arg("--metrics-listen")
        .arg(address.to_string())
        .env("INFANT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("spawning infantd")?;
    let daemon = Guard(child);
    let pid = daemon.0.id() as i32;

    let began = Instant::now();
    let channel = loop {
        if let Ok(channel) = infant::transport::connect_unix(&socket).await {
            break channel;
        }
        if began.elapsed() > DEADLINE {
            bail!("infantd did not answer within {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut client = SupervisorClient::new(channel);
    client
        .start(proto::StartRequest {
            name: "pool".into(),
            spec: Some(proto::ProgramSpec {
                kind: proto::ProgramKind::Cluster.into(),
                command: vec!["sleep".into(), "3600".into()],
                count: Some(instances),
                start_grace_ms: Some(0),
                ..Default::default()
            }),
            wait: false,
        })
        .await
        .context("starting the pool")?;

    let page = scrape(address)?;
    let up = page
        .lines()
        .filter(|l| l.starts_with("infant_worker_up{"))
        .count();
    ensure!(
        up == instances as usize,
        "{up} instances on the page, not {instances}"
    );

    let before = thread_cpu(pid)?;
    for _ in 0..rounds {
        scrape(address)?;
    }
    let per_scrape = (thread_cpu(pid)? - before) / rounds;
    println!(
        "scrape of {instances} instances: {:.2} ms daemon CPU (mean of {rounds}), {} bytes",
        ms(per_scrape),
        page.len()
    );

    // Idle, scraped every 15 s.
    let before = thread_cpu(pid)?;
    let start = Instant::now();
    while start.elapsed() < idle {
        scrape(address)?;
        tokio::time::sleep(Duration::from_secs(15).min(idle.saturating_sub(start.elapsed()))).await;
    }
    let used = thread_cpu(pid)? - before;
    println!(
        "idle with {instances} instances, scraped every 15 s: {:.3} % of a core over {:.0} s",
        used.as_secs_f64() / start.elapsed().as_secs_f64() * 100.0,
        start.elapsed().as_secs_f64()
    );
    // Stop the daemon with this runtime still running: its graceful close
    // waits for every client connection to acknowledge the end (an HTTP/2
    // GOAWAY and PING), and a connection whose runtime is blocked in a
    // synchronous wait never does, which held the daemon's shutdown for its
    // whole 2 s deadline ("control server did not close within 2s").
    drop(client);
    tokio::task::spawn_blocking(move || drop(daemon)).await?;
    Ok(())
}
