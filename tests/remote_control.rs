//! The control API over TCP (`infantd --control-listen`): TLS and a bearer token,
//! `infantctl --connect`, refusals of calls without the token, and refusals at
//! startup of every unsafe configuration.
//!
//! Certificates are made at test time with rcgen: a CA, and a server certificate
//! it signs for `localhost` and `127.0.0.1`.

pub mod common;

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use common::*;
use infant::control::{Authorization, Control};
use infant::proto::supervisor_client::SupervisorClient;
use infant::proto::worker_channel_client::WorkerChannelClient;
use infant::proto::{self, ListRequest};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;

const TOKEN: &str = "remote-control-test-token-0123456789";

/// A CA and a server certificate it signed, written as `ca.pem`, `cert.pem` and
/// `key.pem` into `dir`.
fn write_certificates(dir: &Path) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "infant test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().expect("server key");
    let mut server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .expect("server certificate");

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
    std::fs::write(dir.join("cert.pem"), server_cert.pem()).expect("write cert.pem");
    write_private(&dir.join("key.pem"), &server_key.serialize_pem(), 0o600);
}

/// Writes `content` to a new file created with `mode`.
fn write_private(path: &Path, content: &str, mode: u32) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .expect("create file");
    file.write_all(content.as_bytes()).expect("write file");
}

/// Certificates and a 0600 token file (with a trailing newline, as `echo` writes
/// it: the daemon trims it).
fn setup(dir: &Path) {
    write_certificates(dir);
    write_private(&dir.join("token"), &format!("{TOKEN}\n"), 0o600);
}

/// `infantd` serving the control API over TLS on 127.0.0.1 too, and its port.
async fn tls_daemon() -> (Daemon, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with(
        &[
            "--control-listen",
            &listen,
            "--token-file",
            "token",
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ],
        setup,
    )
    .await;
    (daemon, port)
}

/// Runs `infantctl --connect URL --token-file TOKEN_FILE --ca-cert DIR/ca.pem ARGS`
/// (no `--socket`: everything goes over TCP).
fn remote_ctl(
    daemon: &Daemon,
    url: &str,
    token_file: &Path,
    args: &[&str],
) -> (ExitStatus, String, String) {
    let out = Command::new(infantctl_bin())
        .arg("--connect")
        .arg(url)
        .arg("--token-file")
        .arg(token_file)
        .arg("--ca-cert")
        .arg(daemon.dir.path().join("ca.pem"))
        .args(args)
        .env_remove("INFANT_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("run infantctl");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn remote_ctl_ok(daemon: &Daemon, url: &str, args: &[&str]) -> String {
    let token_file = daemon.dir.path().join("token");
    let (status, stdout, stderr) = remote_ctl(daemon, url, &token_file, args);
    assert!(status.success(), "infantctl {args:?}: {status}\n{stderr}");
    stdout
}

/// A TLS channel to `port` that trusts the test CA, with no token attached.
async fn tls_channel(daemon: &Daemon, port: u16) -> Channel {
    let ca = std::fs::read(daemon.dir.path().join("ca.pem")).expect("ca.pem");
    Endpoint::from_shared(format!("https://localhost:{port}"))
        .expect("endpoint")
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .expect("tls config")
        .connect()
        .await
        .expect("TLS connect")
}

#[tokio::test]
async fn infantctl_over_tls_with_the_token_runs_every_kind_of_command() {
    let (daemon, port) = tls_daemon().await;
    let url = format!("https://localhost:{port}");

    let started = remote_ctl_ok(&daemon, &url, &["start", "nap", "--", "sleep", "300"]);
    assert!(started.contains("nap: ok"), "{started}");

    // The certificate is valid for the IP address too.
    let by_ip = format!("https://127.0.0.1:{port}");
    let status = remote_ctl_ok(&daemon, &by_ip, &["status"]);
    assert!(status.contains("nap") && status.contains("ok"), "{status}");

    let workers = remote_ctl_ok(&daemon, &url, &["--json", "workers", "nap"]);
    let worker: serde_json::Value =
        serde_json::from_str(workers.lines().next().expect("one worker")).expect("JSON");
    let pid = worker["pid"].as_u64().expect("pid") as u32;
    assert!(exists(pid));

    // A follower over TLS: it must end when the daemon shuts down.
    let mut follower = Command::new(infantctl_bin())
        .args(["--connect", &url, "--token-file"])
        .arg(daemon.dir.path().join("token"))
        .arg("--ca-cert")
        .arg(daemon.dir.path().join("ca.pem"))
        .args(["events", "--follow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn infantctl events --follow");

    let stopped = remote_ctl_ok(&daemon, &url, &["stop", "nap"]);
    assert!(stopped.contains("nap:"), "{stopped}");
    wait_gone(&[pid], DEADLINE).await;

    assert!(daemon.stop().await.success());
    let follower_status = wait_child(&mut follower, DEADLINE).await;
    let mut printed = String::new();
    if let Some(mut stdout) = follower.stdout.take() {
        stdout
            .read_to_string(&mut printed)
            .expect("follower output");
    }
    assert!(
        printed.contains("nap"),
        "the follower saw the events: {printed}"
    );
    // The daemon going away ends the stream; infantctl says so (exit 3) or
    // ends cleanly, but it does not hang.
    assert!(
        follower_status.success() || follower_status.code() == Some(3),
        "{follower_status}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the remote control port is closed after shutdown"
    );
}

#[tokio::test]
async fn calls_without_the_right_token_are_unauthenticated() {
    let (daemon, port) = tls_daemon().await;
    let channel = tls_channel(&daemon, port).await;

    // No authorization header at all: the generated client, as any gRPC client.
    let refused = SupervisorClient::new(channel.clone())
        .list(ListRequest::default())
        .await
        .expect_err("a call without a token is refused");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("authorization"), "{refused:?}");

    // Health is behind the token as well.
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect_err("health without a token is refused");
    assert_eq!(health.code(), Code::Unauthenticated);

    // A wrong token: refused, and the reply does not echo a token.
    let ca = std::fs::read(daemon.dir.path().join("ca.pem")).expect("ca.pem");
    let url = format!("https://localhost:{port}");
    let wrong = Control::connect_remote(&url, "not-the-token", Some(&ca))
        .await
        .expect("connect")
        .list(None)
        .await
        .expect_err("a wrong token is refused");
    assert_eq!(wrong.code(), Some(Code::Unauthenticated), "{wrong}");
    let text = wrong.to_string();
    assert!(
        !text.contains(TOKEN) && !text.contains("not-the-token"),
        "{text}"
    );

    // The same through infantctl: one line, exit status 1.
    let wrong_file = daemon.dir.path().join("wrong-token");
    write_private(&wrong_file, "not-the-token", 0o600);
    let (status, _, stderr) = remote_ctl(&daemon, &url, &wrong_file, &["status"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("wrong bearer token"), "{stderr}");

    // The right token works on the same daemon, and the worker channel is not
    // served over TCP even with it.
    let control = Control::connect_remote(&url, TOKEN, Some(&ca))
        .await
        .expect("connect");
    assert!(control.list(None).await.expect("List").is_empty());
    let authorization = Authorization::bearer(TOKEN).expect("token");
    let mut worker_channel = WorkerChannelClient::with_interceptor(channel, authorization);
    let attach = worker_channel
        .attach(tokio_stream::iter(Vec::<proto::WorkerMessage>::new()))
        .await
        .expect_err("no worker channel over TCP");
    assert_eq!(attach.code(), Code::Unimplemented, "{attach:?}");

    // A CA that did not sign the daemon's certificate: the TLS handshake fails.
    let other = short_tempdir();
    write_certificates(other.path());
    let out = Command::new(infantctl_bin())
        .args(["--connect", &url, "--token-file"])
        .arg(daemon.dir.path().join("token"))
        .arg("--ca-cert")
        .arg(other.path().join("ca.pem"))
        .arg("status")
        .stdin(Stdio::null())
        .output()
        .expect("run infantctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");

    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn infantctl_reports_bad_remote_options_naming_the_flag() {
    let (daemon, port) = tls_daemon().await;
    let token = daemon.dir.path().join("token");
    let url = format!("https://localhost:{port}");
    let cases: [(&str, &Path, &str); 3] = [
        ("ftp://localhost:1", &token, "--connect"),
        // Plain HTTP to a host that is not loopback would send the token in clear.
        ("http://10.0.0.1:7000", &token, "--connect"),
        (&url, Path::new("/nonexistent/token"), "--token-file"),
    ];
    for (url, token_file, flag) in cases {
        let (status, _, stderr) = remote_ctl(&daemon, url, token_file, &["status"]);
        assert_eq!(status.code(), Some(2), "{url}: {stderr}");
        assert!(
            stderr.starts_with("infantctl: ") && stderr.contains(flag),
            "{stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn plaintext_is_served_on_loopback_with_the_flag() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_with(
        &[
            "--control-listen",
            &listen,
            "--token-file",
            "token",
            "--insecure-plaintext",
        ],
        setup,
    )
    .await;
    let url = format!("http://127.0.0.1:{port}");
    let token = daemon.dir.path().join("token");
    let out = Command::new(infantctl_bin())
        .args(["--connect", &url, "--token-file"])
        .arg(&token)
        .args(["start", "nap", "--", "sleep", "300"])
        .stdin(Stdio::null())
        .output()
        .expect("run infantctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pids = daemon.control().await.ok_pids("nap").await;
    assert_eq!(pids.len(), 1);
    // Still no way in without the token.
    let channel = Endpoint::from_shared(url)
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let refused = SupervisorClient::new(channel)
        .list(ListRequest::default())
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(daemon.stop().await.success());
    wait_gone(&pids, DEADLINE).await;
}

#[tokio::test]
async fn unsafe_remote_configurations_are_refused_at_startup() {
    let port = free_port();
    let loopback = format!("127.0.0.1:{port}");
    let anywhere = format!("0.0.0.0:{port}");
    let listen = |address: &'static str, token: &'static str| {
        let address = if address == "loopback" {
            &loopback
        } else {
            &anywhere
        };
        vec![
            "--control-listen".to_owned(),
            address.clone(),
            "--token-file".to_owned(),
            token.to_owned(),
        ]
    };
    let with = |mut args: Vec<String>, more: &[&str]| {
        args.extend(more.iter().map(|s| s.to_string()));
        args
    };
    let tls = ["--tls-cert", "cert.pem", "--tls-key", "key.pem"];

    assert_refused(
        "plain TCP without the flag",
        listen("loopback", "token"),
        setup,
        &["--insecure-plaintext", "--tls-cert"],
    )
    .await;
    assert_refused(
        "plain TCP on a non-loopback address, even with the flag",
        with(listen("anywhere", "token"), &["--insecure-plaintext"]),
        setup,
        &["--insecure-plaintext", "loopback", "0.0.0.0"],
    )
    .await;
    assert_refused(
        "a token file others can read",
        with(listen("loopback", "open"), &tls),
        |dir| {
            setup(dir);
            write_private(&dir.join("open"), TOKEN, 0o644);
        },
        &["--token-file", "0644", "0600"],
    )
    .await;
    assert_refused(
        "a missing token file",
        with(listen("loopback", "absent"), &tls),
        setup,
        &["--token-file", "absent"],
    )
    .await;
    assert_refused(
        "an empty token file",
        with(listen("loopback", "empty"), &tls),
        |dir| {
            setup(dir);
            write_private(&dir.join("empty"), " \n", 0o600);
        },
        &["--token-file", "empty"],
    )
    .await;
    assert_refused(
        "a key that is not a key",
        with(
            listen("loopback", "token"),
            &["--tls-cert", "cert.pem", "--tls-key", "cert.pem"],
        ),
        setup,
        &["--tls-key", "PRIVATE KEY"],
    )
    .await;
}

/// Starts `infantd ARGS` with an inline program, in a folder `prepare` fills;
/// checks that it refuses to start, with a message containing every one of
/// `expected`, and that the inline program never ran.
async fn assert_refused(what: &str, args: Vec<String>, prepare: fn(&Path), expected: &[&str]) {
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let marker = format!("infant-refused-{}-{unique}", std::process::id());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stderr = refused_start(&args, prepare, &marker).await;
    for needle in expected {
        assert!(
            stderr.contains(needle),
            "{what}: {needle:?} not in {stderr}"
        );
    }
    assert!(
        processes_with(&marker).is_empty(),
        "{what}: the inline program was started"
    );
}

/// Runs `infantd --socket DIR/d.sock ARGS -- sh -c 'sleep 300' MARKER` in a new
/// folder prepared by `prepare`, expects it to exit unsuccessfully before serving,
/// and returns its stderr.
async fn refused_start(args: &[&str], prepare: fn(&Path), marker: &str) -> String {
    let dir = short_tempdir();
    prepare(dir.path());
    let socket = dir.path().join("d.sock");
    let mut child = Command::new(infantd_bin())
        .arg("--socket")
        .arg(&socket)
        .args(args)
        .args(["--", "sh", "-c", "sleep 300", marker])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn infantd");
    let status = wait_child(&mut child, DEADLINE).await;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr).expect("stderr");
    }
    assert!(!status.success(), "infantd {args:?} started: {stderr}");
    assert!(!socket.exists(), "infantd {args:?} bound its socket");
    stderr
}

/// Every process whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(marker))
        })
        .collect()
}
