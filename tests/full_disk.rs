//! A full disk under the state directory: the daemon holds the batch it cannot journal or
//! checkpoint (nothing is sent that is not recorded), reports it in /api/health, and once space
//! is back delivers every line exactly once with consecutive ids — and a restart rebuilds the same
//! history. The state directory is a small tmpfs mounted for the test (needs root, as CI runs).
mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tmpfs of `size` mounted at a fresh directory; unmounted when dropped.
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk { at: at.to_owned() })
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.at)
            .status()
            .expect("mount");
        assert!(ok.success(), "remount {size}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn append(path: &Path, seqs: std::ops::RangeInclusive<u64>) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .expect("log");
    let mut text = String::new();
    for seq in seqs {
        let ms = 1_795_835_993_065 + seq;
        text.push_str(&format!(
            "{}.{:03}      2 ::1 TCP_MISS/200 {seq} GET http://h/x/{seq} - HIER_DIRECT/127.0.0.1 text/plain\n",
            ms / 1000,
            ms % 1000
        ));
    }
    f.write_all(text.as_bytes()).expect("append");
}

/// Every entry's id is one more than the last, and names the line with that sequence number.
fn assert_consecutive(entries: &[serde_json::Value], first: u64) {
    for (i, e) in entries.iter().enumerate() {
        let want = first + i as u64;
        assert_eq!(e["id"], want, "entry {i}: {e}");
        assert_eq!(e["bytes"], want, "id {want} names line {}", e["bytes"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_disk_holds_the_batch_and_loses_nothing_once_space_returns() {
    let mut files = TestConfig::with_users(&["--from-start"]);
    let Some(disk) = SmallDisk::mount(&files.dir.path().join("small"), "96k") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and can mount a tmpfs"
        );
        eprintln!("skipping: cannot mount a tmpfs here (not root?)");
        return;
    };
    files.config.state_dir = disk.at.join("state");
    let log = files.access_log();
    const LINES: u64 = 3_000; // ~1 MiB of journal: far more than 96 KiB
    append(&log, 1..=LINES);
    let daemon = Daemon::start(&files).await;
    let mut ws = daemon.subscribe("&since=0").await;

    // The disk fills: the daemon reports write errors and sends nothing it has not recorded.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let health = http_get(daemon.addr, "/api/health", &[]).await.json();
        if health["state_write_errors"].as_u64().unwrap_or(0) > 0 {
            assert!(health["last_id"].as_u64().unwrap_or(0) < LINES, "{health}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no write error reported: {health}"
        );
        // Polling a condition the daemon only reports through /api/health (no event to await).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Space comes back: everything arrives, once, in order.
    disk.resize("64m");
    let entries = read_entries(&mut ws, LINES as usize).await;
    assert_consecutive(&entries, 1);
    daemon.stop().await.expect("clean stop");

    // The journal written around the failures rebuilds the same history after a restart.
    let daemon = Daemon::start(&files).await;
    let mut ws = daemon.subscribe("&since=0").await;
    let replayed = read_entries(&mut ws, LINES as usize).await;
    assert_consecutive(&replayed, 1);
    assert_eq!(
        replayed, entries,
        "the rebuilt history is byte-for-byte what was sent"
    );
    daemon.stop().await.expect("clean stop");
    drop(disk);
}
