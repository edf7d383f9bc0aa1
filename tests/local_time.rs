//! `--local-time`: `timestamp` is written in the machine's zone (here `TZ`, a POSIX rule two hours
//! east of UTC, so no zone database is needed), `ts` stays the exact instant.
mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_time_writes_timestamp_in_the_configured_zone() {
    // Read by the time-zone lookup on first use; this binary holds this one test only.
    std::env::set_var("TZ", "XST-2");
    let files = TestConfig::with_users(&["--from-start", "--local-time"]);
    std::fs::write(
        files.access_log(),
        "1774449130.123     85 192.168.1.10 TCP_TUNNEL/200 4096 CONNECT example.com:443 - HIER_DIRECT/93.184.216.34 -\n",
    )
    .expect("log");
    let daemon = Daemon::start(&files).await;
    let mut ws = daemon.subscribe("&since=0").await;
    let e = read_entries(&mut ws, 1).await.remove(0);
    assert_eq!(e["timestamp"], "2026-03-25 16:32:10", "{e}");
    assert_eq!(e["ts"], 1774449130.123);
    daemon.stop().await.expect("clean stop");
}
