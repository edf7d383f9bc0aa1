//! RELIABILITY 20: a burst of lines written at once — none lost or reordered, ids consecutive,
//! memory bounded. 200 000 lines by default; `BURST_LINES=1000000` for the full case. Prints the
//! throughput and the peak resident memory (VmHWM) of the test process.
mod tail_support;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;
use tail_support::*;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) used by this process so far (`/proc/self/stat`, 100 ticks/s).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_is_delivered_whole_in_order_with_bounded_memory() {
    let n: u64 = std::env::var("BURST_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    File::create(&log).unwrap();
    let cfg = config(&[&log], &dir.path().join("state"), &["--history", "10000"]);
    let mut run = start(&cfg);
    let rss_before = peak_rss_kib();
    let t = Instant::now();
    let cpu0 = cpu_secs();
    {
        let mut w =
            BufWriter::with_capacity(1 << 20, File::options().append(true).open(&log).unwrap());
        for i in 1..=n {
            writeln!(w, "{}", squid(i)).unwrap();
        }
    }
    let mut next_seq = 1;
    let mut next_id = 1;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    while next_seq <= n {
        let batch = tokio::time::timeout_at(deadline, run.recv())
            .await
            .expect("burst not delivered in time");
        for r in batch.iter() {
            assert_eq!(r.id, next_id);
            assert_eq!(seq_of(r), next_seq);
            next_id += 1;
            next_seq += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let rss_after = peak_rss_kib();
    eprintln!(
        "burst: {n} lines in {secs:.2} s wall, {cpu:.2} s CPU incl. writer and checker ({:.0} lines/CPU-s); peak RSS {rss_before} KiB -> {rss_after} KiB",
        n as f64 / cpu.max(0.01)
    );
    let held = run.hub.last_id() + 1 - run.hub.oldest_id().expect("history");
    assert_eq!(held, 10_000, "history bounded");
    // Memory stays bounded: the history (10 000 records) plus bounded read batches, far below
    // what holding the burst would take (~1 KiB per record with its JSON). The peak also counts
    // records queued for this (slower) checker's subscription while it catches up.
    assert!(
        rss_after - rss_before < 200 * 1024,
        "peak RSS grew by {} KiB",
        rss_after - rss_before
    );
    run.stop().await;
}
