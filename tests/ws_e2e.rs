//! End to end through the whole daemon (`app::run`): lines appended to a real access log reach a
//! WebSocket client that got its token from `/api/ws-token` with Basic credentials; `since` after a
//! reconnect replays exactly what was missed; the stop signal closes the subscriber with 1001.
mod common;

use common::*;
use std::io::Write;
use std::path::Path;

/// A Squid native line whose URL ends in `seq`.
fn squid_line(seq: u64) -> String {
    format!(
        "1795835993.{:03}     85 192.168.1.10 TCP_MISS/200 4096 GET http://example.com/{seq} - HIER_DIRECT/93.184.216.34 text/html\n",
        seq % 1000
    )
}

fn append(path: &Path, seqs: std::ops::RangeInclusive<u64>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open access log");
    for seq in seqs {
        f.write_all(squid_line(seq).as_bytes()).expect("append");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_reach_a_token_holder_and_since_resumes_exactly() {
    let files = TestConfig::with_users(&["--from-start"]);
    let log = files.access_log();
    append(&log, 1..=3);
    let daemon = Daemon::start(&files).await;

    let mut ws = daemon.subscribe("&since=0").await;
    assert_eq!(read_ids(&mut ws, 3).await, vec![1, 2, 3]);
    append(&log, 4..=6);
    let entries = read_entries(&mut ws, 3).await;
    let entry = &entries[0];
    assert_eq!(entry["id"], 4);
    assert_eq!(entry["client_ip"], "192.168.1.10");
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["destination"], "http://example.com/4");
    assert_eq!(entry["status"], "200 OK");
    assert_eq!(entry["bytes"], 4096);
    assert_eq!(entries[2]["id"], 6);

    // The client drops; lines keep coming; a new token with since=6 gets exactly the missed ones.
    drop(ws);
    append(&log, 7..=10);
    let mut again = daemon.subscribe("&since=6").await;
    assert_eq!(read_ids(&mut again, 4).await, vec![7, 8, 9, 10]);

    let health = http_get(daemon.addr, "/api/health", &[]).await;
    assert_eq!(health.json()["last_id"], 10);

    // Stop while the client reads, so it answers the server's Close.
    let stop = tokio::spawn(daemon.stop());
    assert_eq!(
        expect_close(&mut again).await,
        (1001, "going away".to_owned())
    );
    stop.await.expect("stop task").expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_after_a_restart_replays_every_missed_line_exactly_once() {
    let files = TestConfig::with_users(&["--from-start"]);
    let log = files.access_log();
    append(&log, 1..=50);
    let first = Daemon::start(&files).await;
    let mut ws = first.subscribe("&since=0").await;
    // All 50 are published (the client saw them), but the client only processed 20 before the
    // daemon went away.
    assert_eq!(read_ids(&mut ws, 50).await, (1..=50).collect::<Vec<_>>());
    drop(ws);
    first.stop().await.expect("clean stop");
    // Lines written while the daemon is down.
    append(&log, 51..=60);
    let second = Daemon::start(&files).await;
    let mut ws = second.subscribe("&since=20").await;
    let entries = read_entries(&mut ws, 40).await;
    let ids: Vec<u64> = entries
        .iter()
        .map(|e| e["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, (21..=60).collect::<Vec<_>>());
    // Same ids name the same lines as before the restart.
    for e in &entries {
        let id = e["id"].as_u64().expect("id");
        assert_eq!(e["destination"], format!("http://example.com/{id}"));
    }
    drop(ws);
    second.stop().await.expect("clean stop");
}
