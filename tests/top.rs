//! `infantctl top`: `--once` prints one frame with a row per program and per
//! worker and the latest events; without a terminal, plain `top` does the same.

pub mod common;

use common::*;

#[tokio::test]
async fn top_once_prints_one_frame_of_programs_workers_and_events() {
    let daemon = Daemon::start(&[]).await;
    let (status, _, stderr) = daemon.ctl(&[
        "start",
        "pool",
        "--kind",
        "cluster",
        "--count",
        "2",
        "--start-grace",
        "0ms",
        "--",
        "sleep",
        "1000",
    ]);
    assert!(status.success(), "{stderr}");
    let mut client = daemon.client().await;
    let pids = ok_pids(&mut client, "pool").await;
    assert_eq!(pids.len(), 2);

    for args in [&["top", "--once"][..], &["top"]] {
        let (status, frame, stderr) = daemon.ctl(args);
        assert!(status.success(), "{args:?}: {stderr}");
        assert!(
            frame.starts_with("infantctl top: 1 programs, 2 workers"),
            "{frame}"
        );
        assert!(frame.contains("NAME"), "{frame}");
        assert!(frame.contains("pool (2/2)"), "{frame}");
        for pid in &pids {
            let row = frame
                .lines()
                .find(|line| line.contains(&format!(" {pid} ")))
                .unwrap_or_else(|| panic!("no row for pid {pid}:\n{frame}"));
            assert!(row.trim_start().starts_with("pool/"), "{row}");
            assert!(row.contains(" ok "), "{row}");
        }
        assert!(frame.contains("events"), "{frame}");
        assert!(frame.contains("online"), "the latest events: {frame}");
        assert!(!frame.contains('\u{1b}'), "plain text: {frame:?}");
    }

    // --json: the programs, then the workers, as objects.
    let (status, lines, _) = daemon.ctl(&["top", "--once", "--json"]);
    assert!(status.success());
    let objects: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(objects.len(), 3, "{lines}");
    assert!(objects[1].get("cpu_ms").is_some(), "{lines}");
    assert!(daemon.stop().await.success(), "infantd exits 0");
}
