//! `infantd --metrics-listen`: the page parses as Prometheus text and carries,
//! for the same workers, the values `EachWorker` reports; a non-loopback address
//! is refused without `--metrics-behind-proxy`.

pub mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use common::*;
use infant::proto;

/// One sample: the metric name and its labels, and the value.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

/// Parses the Prometheus text exposition strictly enough to catch a malformed
/// page: `# HELP`/`# TYPE` comments, then `name{k="v",...} value` lines whose
/// names were declared by a `# TYPE` before them.
fn parse(page: &str) -> Samples {
    let mut declared: Vec<String> = Vec::new();
    let mut samples = Samples::new();
    for line in page.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.split_whitespace();
            match words.next() {
                Some("TYPE") => {
                    let name = words.next().expect("TYPE names a metric");
                    let kind = words.next().expect("TYPE gives a type");
                    assert!(
                        ["counter", "gauge"].contains(&kind),
                        "{kind} is not a type Prometheus text knows: {line}"
                    );
                    declared.push(name.to_owned());
                }
                Some("HELP") | Some("UNIT") => {}
                other => panic!("unexpected comment {other:?}: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').expect("labels end with }");
                let labels = rest
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once('=').expect("k=v");
                        let value = value
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("quoted label value");
                        (key.to_owned(), value.to_owned())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, Vec::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name}"
        );
        assert!(
            declared
                .iter()
                .any(|d| name == d || name.strip_suffix("_total") == Some(d)),
            "{name} has no # TYPE before it"
        );
        assert!(
            labels.iter().all(|(k, _)| k != "pid"),
            "pids are never labels: {line}"
        );
        samples.insert((name.to_owned(), labels), value);
    }
    samples
}

fn worker_labels(program: &str, id: u64) -> Vec<(String, String)> {
    vec![
        ("program".to_owned(), program.to_owned()),
        ("worker".to_owned(), id.to_string()),
    ]
}

/// GET /metrics with `accept`; (content type, body).
async fn get(port: u16, accept: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the metrics port");
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("read");
    let (head, body) = reply.split_once("\r\n\r\n").expect("HTTP head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .expect("a content type");
    (content_type, body.to_owned())
}

#[tokio::test]
async fn the_page_carries_what_each_worker_reports() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(&["--metrics-listen", &listen]).await;
    let mut client = daemon.client().await;
    // Workers that burn some CPU, then sleep: their CPU time and RSS hold still
    // while both readings are taken.
    let mut pool = spec(
        proto::ProgramKind::Cluster,
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; exec sleep 1000",
        ],
    );
    pool.count = Some(2);
    pool.start_grace_ms = Some(0);
    start_program(&mut client, "pool", pool).await;
    let pids = ok_pids(&mut client, "pool").await;
    wait_until("both workers sleep", DEADLINE, || {
        let pids = pids.clone();
        async move {
            pids.iter().all(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "sleep")
            })
        }
    })
    .await;

    // A watcher, and a call that fails, for the daemon's own series.
    let _watching = client
        .events(proto::EventsRequest {
            name: String::new(),
            replay: false,
            follow: Some(true),
            last: None,
        })
        .await
        .expect("Events");
    let ghost = client
        .stop(proto::StopRequest {
            name: "ghost".into(),
            timeout_ms: None,
        })
        .await
        .expect_err("no such program");
    assert_eq!(ghost.code(), tonic::Code::NotFound);

    let reported = workers(&mut client, "pool").await;
    let (content_type, page) = get(port, "text/plain").await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(!page.contains("# EOF"), "Prometheus text has no EOF marker");
    let samples = parse(&page);
    let value = |name: &str, labels: Vec<(String, String)>| {
        *samples
            .get(&(name.to_owned(), labels.clone()))
            .unwrap_or_else(|| panic!("{name}{labels:?} missing from\n{page}"))
    };
    assert_eq!(reported.len(), 2);
    for worker in &reported {
        let labels = || worker_labels("pool", worker.id);
        assert_eq!(value("infant_worker_up", labels()), 1.0);
        assert!(worker.rss_bytes > 0, "{worker:?}");
        assert_eq!(
            value("infant_worker_resident_memory_bytes", labels()),
            worker.rss_bytes as f64
        );
        assert!(worker.cpu_ms > 0, "the loop used some CPU: {worker:?}");
        let cpu = value("infant_worker_cpu_seconds_total", labels());
        assert!(
            (cpu - worker.cpu_ms as f64 / 1000.0).abs() < 0.0015,
            "{cpu} s against {} ms",
            worker.cpu_ms
        );
        assert_eq!(value("infant_worker_connections", labels()), 0.0);
        assert_eq!(value("infant_worker_requests", labels()), 0.0);
        let uptime = value("infant_worker_uptime_seconds", labels());
        assert!(uptime > 0.0 && uptime < 600.0, "{uptime}");
    }
    let program = || vec![("program".to_owned(), "pool".to_owned())];
    assert_eq!(value("infant_program_desired_instances", program()), 2.0);
    assert_eq!(value("infant_program_running_instances", program()), 2.0);
    assert_eq!(value("infant_program_restarts_total", program()), 0.0);
    assert_eq!(value("infant_program_recycles_total", program()), 0.0);
    assert_eq!(value("infant_program_starts_failed_total", program()), 0.0);
    let status = |s: &str| {
        value(
            "infant_program_status",
            vec![
                ("program".to_owned(), "pool".to_owned()),
                ("status".to_owned(), s.to_owned()),
            ],
        )
    };
    assert_eq!((status("ok"), status("error")), (1.0, 0.0));
    assert!(value("infant_daemon_resident_memory_bytes", Vec::new()) > 0.0);
    assert!(value("infant_daemon_open_fds", Vec::new()) >= 3.0);
    assert_eq!(value("infant_daemon_event_watchers", Vec::new()), 1.0);
    let rpc = |method: &str, code: &str| {
        value(
            "infant_daemon_rpcs_total",
            vec![
                (
                    "method".to_owned(),
                    format!("infant.v1.Supervisor/{method}"),
                ),
                ("code".to_owned(), code.to_owned()),
            ],
        )
    };
    assert_eq!(rpc("Start", "OK"), 1.0);
    assert_eq!(rpc("Stop", "NotFound"), 1.0);
    assert!(rpc("EachWorker", "OK") >= 2.0);

    // OpenMetrics on request.
    let (content_type, page) = get(port, "application/openmetrics-text; version=1.0.0").await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(page.ends_with("# EOF\n"), "{page}");

    assert!(daemon.stop().await.success(), "infantd exits 0");
}

/// A removed program's counters are forgotten with it: a new program of the
/// same name starts from zero, and the daemon keeps nothing per name it no
/// longer has (names of API-started programs may all differ).
#[tokio::test]
async fn a_removed_programs_counters_go_with_it() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(&["--metrics-listen", &listen]).await;
    let control = daemon.control().await;
    let failed = || {
        let labels = vec![("program".to_owned(), "flaky".to_owned())];
        async move {
            let (_, page) = get(port, "text/plain").await;
            parse(&page)
                .get(&("infant_program_starts_failed_total".to_owned(), labels))
                .copied()
        }
    };
    // Exits before its start grace is over: a failed start.
    let mut flaky = spec(proto::ProgramKind::Child, &["sh", "-c", "exit 3"]);
    flaky.start_grace_ms = Some(2_000);
    flaky.respawn = Some(false);
    let _ = control.start("flaky", Some(flaky), false).await;
    wait_until("the failed start is counted", DEADLINE, || async {
        failed().await.is_some_and(|n| n >= 1.0)
    })
    .await;

    control.remove("flaky", None).await.expect("Remove");
    assert_eq!(failed().await, None, "no series for a removed program");
    let mut steady = spec(proto::ProgramKind::Child, &["sleep", "1000"]);
    steady.start_grace_ms = Some(0);
    control
        .start("flaky", Some(steady), true)
        .await
        .expect("Start the new flaky");
    // The metrics watcher learns of the removal from the event stream.
    wait_until("the new program starts from zero", DEADLINE, || async {
        failed().await == Some(0.0)
    })
    .await;
    assert!(daemon.stop().await.success(), "infantd exits 0");
}

#[test]
fn a_public_address_needs_the_proxy_flag() {
    let dir = short_tempdir();
    let out = Command::new(infantd_bin())
        .arg("--socket")
        .arg(dir.path().join("d.sock"))
        .args(["--metrics-listen", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .expect("run infantd");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--metrics-listen") && stderr.contains("--metrics-behind-proxy"),
        "{stderr}"
    );
}
