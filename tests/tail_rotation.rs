//! `Tailer::run` end to end with its real inotify watcher: a writer thread appends thousands of
//! lines while it rotates the log (rename + create, copytruncate, delete + recreate); every line
//! must arrive exactly once, in order, with consecutive ids.
mod tail_support;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use tail_support::*;

#[derive(Clone, Copy, Debug)]
enum Kind {
    RenameCreate,
    CopyTruncate,
    DeleteRecreate,
}

const GENERATIONS: u64 = 5;
const PER_GEN: u64 = 1000;

/// Highest seq the collector has seen, for the writer to wait on (an event, with a bound).
type Seen = Arc<(Mutex<u64>, Condvar)>;

fn wait_seen(seen: &Seen, at_least: u64) {
    let (m, cv) = &**seen;
    let g = m.lock().unwrap();
    let (g, timeout) = cv.wait_timeout_while(g, BOUND, |s| *s < at_least).unwrap();
    assert!(
        !timeout.timed_out(),
        "tailer never delivered seq {at_least} (seen {})",
        *g
    );
}

/// The Squid stand-in: writes generations of lines in small bursts, rotating between them. Each
/// rotation happens once the tailer has shown it follows the current generation (it delivered the
/// generation's first burst), while the rest of the generation may still be unread.
fn writer(log: PathBuf, kind: Kind, seen: Option<Seen>) {
    let mut seq = 1;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    for g in 1..=GENERATIONS {
        let first = seq;
        let last = seq + PER_GEN - 1;
        while seq <= last {
            let end = (seq + 49).min(last);
            f.write_all(lines(seq..=end).as_bytes()).unwrap();
            seq = end + 1;
            if seq > first + 49 && seq <= first + 100 {
                if let Some(seen) = &seen {
                    wait_seen(seen, first);
                }
            }
        }
        if g == GENERATIONS {
            break;
        }
        match kind {
            Kind::RenameCreate => {
                fs::rename(&log, rotated(&log, g)).unwrap();
                drop(f);
                f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap();
            }
            Kind::CopyTruncate => {
                // The writer is paused across copy + truncate (logrotate's window closed).
                fs::copy(&log, rotated(&log, g)).unwrap();
                f.set_len(0).unwrap();
            }
            Kind::DeleteRecreate => {
                fs::remove_file(&log).unwrap();
                drop(f);
                f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap();
            }
        }
    }
}

async fn rotation_case(kind: Kind, paced: bool) {
    let (_dir, log, _state, cfg) = scratch(&["--history", "100000"]);
    let mut run = start(&cfg);
    let seen: Seen = Arc::new((Mutex::new(0), Condvar::new()));
    let w = {
        let (log, seen) = (log.clone(), seen.clone());
        std::thread::spawn(move || writer(log, kind, paced.then_some(seen)))
    };
    let total = (GENERATIONS * PER_GEN) as usize;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + BOUND;
    while got.len() < total {
        let batch = match tokio::time::timeout_at(deadline, run.recv()).await {
            Ok(b) => b,
            Err(_) => {
                let have: std::collections::BTreeSet<u64> = got.iter().map(seq_of).collect();
                let missing: Vec<u64> = (1..=total as u64).filter(|s| !have.contains(s)).collect();
                panic!(
                    "{kind:?}: {} of {total} delivered; missing {} from {:?} to {:?}",
                    got.len(),
                    missing.len(),
                    missing.first(),
                    missing.last()
                );
            }
        };
        let max = batch.iter().map(seq_of).max().unwrap_or(0);
        got.extend(batch);
        let (m, cv) = &*seen;
        let mut s = m.lock().unwrap();
        *s = (*s).max(max);
        cv.notify_all();
    }
    w.join().unwrap();
    assert_exact(&got, 1, 1..=GENERATIONS * PER_GEN);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_create_under_continuous_writes_delivers_every_line_once() {
    rotation_case(Kind::RenameCreate, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_under_continuous_writes_delivers_every_line_once() {
    rotation_case(Kind::CopyTruncate, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_recreate_under_continuous_writes_delivers_every_line_once() {
    rotation_case(Kind::DeleteRecreate, true).await;
}

/// Unpaced stress, beyond RELIABILITY's cases: rotations follow each other within milliseconds,
/// several between two looks of the tailer (skipped generations found by creation time, copies by
/// fingerprint). Passes 20 of 20 runs alone; with two copies running at once on a loaded machine
/// about 1 run in 20 still loses generations created within the same file-system clock tick.
/// Run with `--ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stress beyond the spec; not yet reliable (see comment)"]
async fn back_to_back_renames_deliver_every_line_once() {
    rotation_case(Kind::RenameCreate, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stress beyond the spec; not yet reliable (see above)"]
async fn back_to_back_copytruncates_deliver_every_line_once() {
    rotation_case(Kind::CopyTruncate, false).await;
}

/// RELIABILITY 13: the log directory removed and recreated; the watch follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_directory_removed_and_recreated_is_watched_again() {
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("squid");
    fs::create_dir(&logdir).unwrap();
    let log = logdir.join("access.log");
    File::create(&log).unwrap();
    let cfg = config(&[&log], &dir.path().join("state"), &[]);
    let mut run = start(&cfg);
    append(&log, lines([1]).as_bytes());
    assert_exact(&run.collect(1).await, 1, [1]);
    fs::remove_dir_all(&logdir).unwrap();
    fs::create_dir(&logdir).unwrap();
    append(&log, lines([2]).as_bytes());
    assert_exact(&run.collect(1).await, 2, [2]);
    run.stop().await;
}

/// A missing directory at start is waited for (watching its ancestor).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_log_directory_at_start_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("later/squid/access.log");
    let cfg = config(&[&log], &dir.path().join("state"), &[]);
    let mut run = start(&cfg);
    fs::create_dir_all(log.parent().unwrap()).unwrap();
    append(&log, lines([1, 2]).as_bytes());
    assert_exact(&run.collect(2).await, 1, [1, 2]);
    run.stop().await;
}

/// RELIABILITY 32: polling mode (no inotify) still delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_mode_delivers_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    File::create(&log).unwrap();
    let cfg = config(&[&log], &dir.path().join("state"), &["--poll"]);
    let mut run = start(&cfg);
    assert_eq!(run.hub.last_id(), 0, "nothing before the first write");
    append(&log, lines(1..=3).as_bytes());
    assert_exact(&run.collect(3).await, 1, 1..=3);
    run.stop().await;
}

/// Several sources share one id sequence; each entry names its source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_share_ids_and_carry_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a/access.log");
    let b = dir.path().join("b/access.log");
    fs::create_dir_all(a.parent().unwrap()).unwrap();
    fs::create_dir_all(b.parent().unwrap()).unwrap();
    File::create(&a).unwrap();
    File::create(&b).unwrap();
    let cfg = config(&[&a, &b], &dir.path().join("state"), &[]);
    let mut run = start(&cfg);
    append(&a, lines([1]).as_bytes());
    let r1 = run.collect(1).await;
    append(&b, lines([2]).as_bytes());
    let r2 = run.collect(1).await;
    assert_eq!((r1[0].id, r2[0].id), (1, 2));
    let src = |r: &proxytail::hub::Record| -> PathBuf {
        let v: serde_json::Value = serde_json::from_slice(&r.json).unwrap();
        PathBuf::from(v["source"].as_str().unwrap())
    };
    assert_eq!(src(&r1[0]), a);
    assert_eq!(src(&r2[0]), b);
    run.stop().await;
}

/// One source: no `source` field; unparseable lines take no id and are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_lines_take_no_id_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    File::create(&log).unwrap();
    let cfg = config(&[&log], &dir.path().join("state"), &[]);
    let mut run = start(&cfg);
    append(&log, b"garbage line\n");
    append(&log, lines([1]).as_bytes());
    let r = run.collect(1).await;
    assert_exact(&r, 1, [1]);
    let v: serde_json::Value = serde_json::from_slice(&r[0].json).unwrap();
    assert!(v.get("source").is_none());
    let h = run.health.snapshot();
    assert_eq!(h["sources"][0]["parse_errors"], 1, "{h}");
    assert_eq!(h["sources"][0]["lines"], 2, "{h}");
    assert_eq!(h["sources"][0]["state"], "following", "{h}");
    run.stop().await;
}

/// RELIABILITY 2 and 3: Squid keeps writing to the renamed file after the rename (it reopens
/// the log late), and the new file appears only afterwards: every line from both is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_writes_to_the_renamed_file_and_a_late_new_file_are_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut squid_fd = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let cfg = config(&[&log], &dir.path().join("state"), &[]);
    let mut run = start(&cfg);
    squid_fd.write_all(lines([1]).as_bytes()).unwrap();
    assert_exact(&run.collect(1).await, 1, [1]);
    fs::rename(&log, rotated(&log, 1)).unwrap();
    // No new file yet: Squid still writes through its old descriptor.
    squid_fd.write_all(lines([2]).as_bytes()).unwrap();
    assert_exact(&run.collect(1).await, 2, [2]);
    squid_fd.write_all(lines([3]).as_bytes()).unwrap();
    assert_exact(&run.collect(1).await, 3, [3]);
    assert_eq!(run.health.snapshot()["sources"][0]["state"], "waiting");
    // Squid reopens: the new file is read from 0.
    drop(squid_fd);
    append(&log, lines([4, 5]).as_bytes());
    assert_exact(&run.collect(2).await, 4, [4, 5]);
    run.stop().await;
}
